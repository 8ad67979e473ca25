"""Damaged results databases into `report`, `ctt export`, `ctt build` and `ctt campaign list`, and
damaged study specs (TOML) into the spec reader `tune` uses before Ray starts.

A database is damaged as bytes (the file) or as values (one cell of a study, trial or epoch row
set to malformed JSON, JSON of the wrong shape, NULL, a number or a blob). Commands that only read
must leave the file as it was; `ctt build` may add rows, so there only the base inputs are watched.
"""

from __future__ import annotations

import json
import sqlite3
import tomllib

from hypothesis import given
from hypothesis import strategies as st

from models.errors import VidcolorError
from study.config.spec import StudySpec, load_spec, parse_spec

CELLS = [
    ("vc_studies", "spec"),
    ("vc_studies", "objective"),
    ("vc_studies", "mode"),
    ("vc_studies", "created"),
    ("vc_studies", "status"),
    ("vc_studies", "shards"),
    ("vc_studies", "name"),
    ("vc_trials", "config"),
    ("vc_trials", "params"),
    ("vc_trials", "status"),
    ("vc_trials", "started"),
    ("vc_trials", "best_metrics"),
    ("vc_trials", "last_metrics"),
    ("vc_trials", "best_epoch"),
    ("vc_trials", "checkpoint"),
    ("vc_trials", "experiment"),
    ("vc_trials", "trial_id"),
    ("vc_epochs", "metrics"),
    ("vc_epochs", "epoch"),
    ("vc_epochs", "time"),
]
CELL_VALUES = st.one_of(
    st.none(),
    st.sampled_from(["{", "[1,", "not json", "", "NaN", "{}", "[]", "null", "1e999", '"x"', "2026-13-45 99:99:99"]),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.binary(max_size=8),
    st.text(max_size=12),
)
COMMANDS = st.sampled_from(["report", "export", "build", "campaign list"])


def _argv(fz, command, url, case):
    if command == "report":
        return ["report", "fuzz", "--db", url], None
    if command == "export":
        return ["ctt", "export", "--db", url, "--study", "fuzz", "--out", case / "votes.csv"], case / "votes.csv"
    if command == "campaign list":
        return ["ctt", "campaign", "list", "--db", url], None
    argv = ["ctt", "build", "--db", url, "--clips", "1", "--out", case / "media", "--shards", fz.base.shards]
    return argv, None


def _beside(command, out) -> tuple:
    """What `ctt export --out FILE.csv` writes next to FILE.csv (FILE-agreement.csv ...)."""
    from study.ctt.export import side_paths

    return tuple(side_paths(out).values()) if command == "export" and out is not None else ()


@given(data=st.data(), command=COMMANDS)
def test_damaged_database_file(fz, data, command):
    with fz.case() as case:
        db = case / "results.db"
        db.write_bytes(fz.damage(data, fz.base.db.read_bytes()))
        argv, out = _argv(fz, command, f"sqlite:///{db}", case)
        watch = [fz.base.root] if command == "build" else [case, fz.base.root]
        fz.check(argv, watch=watch, out=out, beside=_beside(command, out))


@given(data=st.data(), command=COMMANDS)
def test_damaged_database_values(fz, data, command):
    with fz.case() as case:
        db = fz.copy(fz.base.db, case / "results.db")
        with sqlite3.connect(db) as con:
            for i in range(data.draw(st.integers(1, 2), "cells")):
                table, column = data.draw(st.sampled_from(CELLS), f"cell {i}")
                value = data.draw(CELL_VALUES, f"value {i}")
                if data.draw(st.booleans(), f"json {i}") and column in ("spec", "config", "params", "metrics"):
                    value = json.dumps(data.draw(fz.json_values, f"json value {i}"))
                try:
                    con.execute(f"UPDATE {table} SET {column} = ?", (value,))
                except sqlite3.IntegrityError:  # NOT NULL, UNIQUE: a database SQLite itself keeps from being
                    pass
        con.close()
        argv, out = _argv(fz, command, f"sqlite:///{db}", case)
        watch = [fz.base.root] if command == "build" else [case, fz.base.root]
        fz.check(argv, watch=watch, out=out, beside=_beside(command, out))


@given(data=st.data())
def test_damaged_spec_file(fz, data):
    """A study spec damaged as bytes: read (`load_spec`, what `tune` does first) or refused by name."""
    with fz.case() as case:
        spec = case / "study.toml"
        spec.write_bytes(fz.damage(data, fz.base.spec.read_bytes()))
        try:
            assert isinstance(load_spec(spec), StudySpec)
        except VidcolorError as exc:
            assert str(spec) in str(exc) or "study spec" in str(exc)


@given(data=st.data())
def test_spec_fields(fz, data):
    """A study spec whose fields are replaced, deleted or added (TOML values only: no null)."""
    doc = tomllib.loads(fz.base.spec.read_text())
    doc = fz.mutate_json(data, doc, "spec")
    if not isinstance(doc, dict):
        doc = {"name": doc}
    try:
        assert isinstance(parse_spec(doc, source="fuzz.toml"), StudySpec)
    except VidcolorError as exc:
        assert "fuzz.toml" in str(exc), str(exc)
