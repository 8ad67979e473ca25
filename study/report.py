"""Output for people and files: one table printer, one number format, one JSON cleaner, one Pareto filter.

A study's front (:func:`trials_front`) holds only trials that ran to the end: one that ASHA stopped,
that failed or that still runs is never on it (a sepia that did not learn to colour yet does not
flicker either). :func:`spec_objectives` reads a study's objectives from its stored spec record.

Every command that prints a table (``vidcolor train``, ``evaluate``, ``experiments``, ``tune``,
``colorize``, ``ctt export``) goes through :func:`format_table`; every figure written to JSON or
to the results store goes through :func:`json_clean` (strict JSON: NaN and infinities become
``null``, which PostgreSQL's JSON type and ``json.loads`` both accept). Imports neither torch nor
Ray: the results store and the dashboard use it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MISSING = "-"


def fmt(value: Any, digits: int = 3, *, style: str = "f") -> str:
    """A cell: ``-`` for None and NaN, floats with ``digits`` decimals (``style="g"``: significant
    digits), anything else as ``str``."""
    if value is None:
        return MISSING
    if isinstance(value, float) or (hasattr(value, "item") and not isinstance(value, (str, bytes, int))):
        try:
            x = float(value)
        except (TypeError, ValueError):
            return str(value)
        if math.isnan(x):
            return MISSING
        return f"{x:.{digits}{style}}"
    return str(value)


def format_table(
    head: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    numeric_right: bool = True,
    footer: Sequence[Sequence[Any]] = (),
    digits: int = 3,
    style: str = "f",
) -> str:
    """A plain-text table: a header, a rule, the rows, and (after a second rule) ``footer`` rows
    such as a ``mean`` line. Cells that are not strings are formatted with :func:`fmt`. With
    ``numeric_right`` every column but the first is right-aligned when all its cells are numbers."""
    cells = [[c if isinstance(c, str) else fmt(c, digits, style=style) for c in row] for row in (*rows, *footer)]
    head = [str(h) for h in head]
    for row in cells:
        if len(row) != len(head):
            raise ValueError(f"format_table: a row has {len(row)} cells, the header {len(head)}")
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(head)]
    right = [numeric_right and i > 0 and bool(cells) and all(_numeric(r[i]) for r in cells) for i in range(len(head))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [line(head), rule, *(line(r) for r in cells[: len(rows)])]
    if footer:
        out += [rule, *(line(r) for r in cells[len(rows) :])]
    return "\n".join(out)


def _numeric(cell: str) -> bool:
    if cell == MISSING:
        return True
    try:
        float(cell)
    except ValueError:
        return False
    return True


def json_clean(value: Any) -> Any:
    """Plain JSON values, recursively: NaN/inf -> None, numpy/torch scalars -> Python numbers,
    tuples -> lists, paths -> strings, datetimes -> ISO text, anything else -> ``str``."""
    if isinstance(value, Mapping):
        return {str(k): json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_clean(v) for v in value]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        try:
            return json_clean(value.item())
        except (TypeError, ValueError, RuntimeError):  # arrays of several elements: their text
            pass
    return str(value)


def write_atomically(path: str | os.PathLike, write, what: str) -> Path:
    """Call ``write(tmp)`` on a temporary name beside ``path`` (parent folders created), then rename
    it to ``path``: the file appears complete or not at all. An OS error is a VidcolorError naming
    the path and ``what`` it was to hold; nothing is left behind."""
    from models.errors import VidcolorError

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise VidcolorError(f"{path}: cannot write the {what} ({exc.strerror or exc})") from None
    return path


def write_json(path: str | os.PathLike, doc: Any) -> Path:
    """Write ``json_clean(doc)`` to ``path`` atomically (see :func:`write_atomically`)."""
    text = json.dumps(json_clean(doc), indent=2) + "\n"
    return write_atomically(path, lambda tmp: tmp.write_text(text), "JSON file")


def pareto_front(df, objectives: dict[str, str]):
    """Boolean mask of the non-dominated rows for `objectives` ({column: "min"|"max"}), by Optuna.

    The rows become the complete trials of an in-memory Optuna study with one direction per
    objective, and its `best_trials` (Optuna's own Pareto front) are the rows on the front: a row
    is dominated when another row is at least as good on every objective and strictly better on
    one, so equal rows are all on the front or all off it. Rows with a missing (or non-numeric)
    objective are never on the front.
    """
    import numpy as np
    import optuna
    import pandas as pd
    from optuna.trial import create_trial

    cols = list(objectives)
    values = df[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    rows = np.flatnonzero(~np.isnan(values).any(axis=1))
    on_front = np.zeros(len(df), dtype=bool)
    if len(rows):
        directions = ["minimize" if objectives[c] == "min" else "maximize" for c in cols]
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" line
        try:
            study = optuna.create_study(directions=directions)
        finally:
            optuna.logging.set_verbosity(verbosity)
        study.add_trials([create_trial(values=values[i].tolist(), user_attrs={"row": int(i)}) for i in rows])
        on_front[[t.user_attrs["row"] for t in study.best_trials]] = True
    return pd.Series(on_front, index=df.index, name="pareto")


#: The trial status of the trials that may be on a study's front: they ran every epoch.
FRONT_STATUS = "TERMINATED"


def trials_front(trials, objectives: Mapping[str, str]):
    """:func:`pareto_front` of the trials whose ``status`` is ``TERMINATED``; a stopped (ASHA),
    failed or running trial is never on the front, whatever its numbers."""
    finished = trials["status"] == FRONT_STATUS
    front = pareto_front(trials[finished], dict(objectives))
    return front.reindex(trials.index, fill_value=False).astype(bool).rename("pareto")


def spec_objectives(
    spec: Mapping[str, Any] | None, objective: str | None = None, mode: str = "min"
) -> list[tuple[str, str]]:
    """``[(metric, mode)]`` of a study from its stored spec record: its ``objectives`` list, or its
    one ``objective`` table (records written before the list), else ``objective``/``mode`` (the
    study row's)."""
    spec = spec or {}
    tables = spec.get("objectives") or ([spec["objective"]] if isinstance(spec.get("objective"), Mapping) else [])
    found = [
        (str(t["metric"]), str(t.get("mode", "min"))) for t in tables if isinstance(t, Mapping) and t.get("metric")
    ]
    if not found and objective:
        found = [(objective, mode)]
    return found
