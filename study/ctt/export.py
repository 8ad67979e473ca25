"""`vidcolor ctt export`: Color Turing Test results per trial and per experiment, as a CSV file
or a printed table (the same figures the dashboard's results page shows).

`--out` is checked before the store is opened (`data_shards.outdir.check_file`: an existing file
is refused unless `--overwrite`), and the CSV is written under a temporary name and renamed, so a
bad path costs nothing and an existing file is replaced only by a whole one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from data_shards import outdir
from study.ctt import stats as ctt_stats
from study.report import format_table, write_atomically
from study.store import Store

# the columns of the printed table (the CSV file has every column of `results`)
SHOWN_COLUMNS = (
    "level",
    "name",
    "votes",
    "fooling_rate",
    "fool_lo",
    "fool_hi",
    "ratings",
    "mean_rating",
    "raters",
    "attention_failures",
)


def results(store: Store, study: str, exclude_failed: bool = False) -> pd.DataFrame:
    """Per trial and per experiment CTT results (column `level`; the trial id or experiment in
    `name`), with the columns of `study.ctt.stats.aggregate`."""
    votes = ctt_stats.votes_from_store(store.votes(study))
    parts = []
    for level in ("trial", "experiment"):
        agg = ctt_stats.aggregate(votes, by=level, exclude_failed=exclude_failed)
        agg = agg.rename(columns={level: "name"})
        agg.insert(0, "level", level)
        parts.append(agg)
    return pd.concat(parts, ignore_index=True)


def results_table(res: pd.DataFrame) -> str:
    """`results` as a plain-text table of `SHOWN_COLUMNS` (rates and ratings with 3 decimals)."""
    rows = res[list(SHOWN_COLUMNS)].astype(object).values.tolist()  # Python ints stay ints
    return format_table(SHOWN_COLUMNS, rows, digits=3)


def write_csv(res: pd.DataFrame, path: Path) -> None:
    """`res` as CSV at `path` (parents created), via a temporary file renamed when complete."""
    write_atomically(path, lambda tmp: res.to_csv(tmp, index=False), "CSV file")


def main_export(args) -> int:
    """`vidcolor ctt export`: write the results to `--out` (CSV) or print them."""
    out = None
    if args.out:  # before any store is opened or vote read
        out = outdir.check_file(args.out, "--out", getattr(args, "overwrite", False), expected="a CSV file name")
    store = Store(args.db, create=False)
    study = store.resolve_study(args.study)
    res = results(store, study, exclude_failed=args.exclude_failed)
    if out is not None:
        write_csv(res, out)
        print(f"wrote {len(res)} rows to {args.out}")
        return 0
    if res.empty:
        print(f"study {study}: no CTT votes yet")
        return 0
    excluded = " (raters who failed attention checks excluded)" if args.exclude_failed else ""
    print(f"study {study}: Color Turing Test{excluded}")
    print(results_table(res))
    return 0
