"""`vidcolor ctt export`: Color Turing Test results per trial and per experiment, and how far the
votes can be trusted, as CSV files or printed (the same figures the dashboard's results page shows;
docs/ctt-analysis.md).

`--out FILE.csv` writes four files:

- FILE.csv: per trial and per experiment (`results`: fooling rate, Wilson interval, ratings, ...);
- FILE-agreement.csv: one row per task with votes (2afc, rating, pairwise): Krippendorff's alpha
  with its bootstrap 95% interval, the items and votes behind it, and for 2afc and pairwise votes
  the left/right position bias (`study.ctt.trust.AGREEMENT_COLUMNS`);
- FILE-raters.csv: one row per rater and task: votes, attention checks passed, consensus agreement,
  Crowd-BT reliability for pairwise raters (`RATER_COLUMNS`);
- FILE-ranking.csv: the pairwise ranking, plain Bradley-Terry beside Crowd-BT (`RANKING_COLUMNS`;
  a header only without pairwise votes).

Without `--out` it prints the per-trial table and a few lines on agreement, position bias and the
raters. `--exclude-failed` leaves out the raters who failed an attention check in every figure.

Every file is checked before the store is opened (`data_shards.outdir.check_file`: an existing file
is refused unless `--overwrite`), and each is written under a temporary name and renamed, so a bad
path costs nothing and an existing file is replaced only by a whole one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from data_shards import outdir
from study.ctt import stats as ctt_stats
from study.ctt import trust as ctt_trust
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
#: the files `--out FILE.csv` writes beside FILE.csv: FILE-agreement.csv, FILE-raters.csv, FILE-ranking.csv
SIDE_FILES = ("agreement", "raters", "ranking")


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


def side_paths(out: Path) -> dict[str, Path]:
    """The files written beside `out` (FILE.csv): {"agreement": FILE-agreement.csv, ...}."""
    suffix = out.suffix or ".csv"
    return {kind: out.with_name(f"{out.stem}-{kind}{suffix}") for kind in SIDE_FILES}


def rater_lines(raters: pd.DataFrame) -> list[str]:
    """One line per task on its raters: how many, the attention pass rate and the consensus agreement
    (the lowest of the raters who have one, and the mean)."""
    out = []
    for task, group in raters.groupby("task", sort=False):
        checks, passed = int(group["attention_checks"].sum()), int(group["attention_passed"].sum())
        line = f"raters, {task}: {len(group)}"
        if checks:
            line += f"; attention checks passed {passed} of {checks}"
        agree = group["consensus_agreement"].dropna()
        if len(agree):
            line += f"; consensus agreement mean {agree.mean():.0%}, lowest {agree.min():.0%}"
        rel = group["reliability"].dropna()
        if len(rel):
            line += f"; Crowd-BT reliability lowest {rel.min():.2f}"
        out.append(line)
    return out


def main_export(args) -> int:
    """`vidcolor ctt export`: write the results and the trust figures to `--out` and its side files
    (CSV), or print them."""
    out = sides = None
    if args.out:  # before any store is opened or vote read
        overwrite = getattr(args, "overwrite", False)
        out = outdir.check_file(args.out, "--out", overwrite, expected="a CSV file name")
        sides = {
            k: outdir.check_file(p, "--out", overwrite, expected="a CSV file name") for k, p in side_paths(out).items()
        }
    store = Store(args.db, create=False)
    study = store.resolve_study(args.study)
    res = results(store, study, exclude_failed=args.exclude_failed)
    figures = ctt_trust.from_store(store, study, exclude_failed=args.exclude_failed)
    if out is not None:
        write_csv(res, out)
        tables = {"agreement": figures.agreement, "raters": figures.raters, "ranking": figures.ranking}
        for kind, path in sides.items():
            write_csv(tables[kind], path)
        shown = side_paths(Path(args.out))  # as the user wrote --out
        print(f"wrote {len(res)} rows to {args.out}")
        print(
            f"wrote agreement and position bias (tasks: {len(figures.agreement)}) to {shown['agreement']}, "
            f"raters (rows: {len(figures.raters)}) to {shown['raters']}, "
            f"the pairwise ranking (trials: {len(figures.ranking)}) to {shown['ranking']}"
        )
        return 0
    if res.empty and figures.empty:
        print(f"study {study}: no CTT votes yet")
        return 0
    excluded = " (raters who failed attention checks excluded)" if args.exclude_failed else ""
    print(f"study {study}: Color Turing Test{excluded}")
    if not res.empty:
        print(results_table(res))
    lines = ctt_trust.reading(figures) + rater_lines(figures.raters)
    if lines:
        print()
        print("\n".join(lines))
    return 0
