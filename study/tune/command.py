"""``vidcolor tune STUDY.toml``: run or resume a study and print its trials."""

from __future__ import annotations

from pathlib import Path

from models.errors import VidcolorError
from study.config.spec import StudySpec, load_spec
from study.report import fmt, format_table
from study.trackers import tracker_options
from study.tune.front import format_front
from study.tune.objectives import judged_words
from study.tune.runner import DEFAULT_STORAGE, StudyResult, override_spec, run_study


def print_summary(result: StudyResult, spec: StudySpec) -> None:
    """The study's trials as the results store has them, its best trial and where results are."""
    df = result.trials
    metric = spec.objective.metric
    params = [p.name for p in spec.search]
    rows = [
        [
            str(r["trial_id"]),
            str(r["status"]),
            str(r["epochs"]),
            fmt(r["objective"], 4, style="g"),
            *(fmt(r.get(f"param_{p}"), 4, style="g") for p in params),
        ]
        for _, r in df.iterrows()
    ]
    print(
        f"\nstudy {result.name}: {len(df)} trials "
        f"({', '.join(f'{n} {s.lower()}' for s, n in df['status'].value_counts().items())})"
    )
    print(format_table(["trial", "status", "epochs", f"best {metric}", *params], rows))
    if result.best:
        print(
            f"best: trial {result.best['trial_id']} {metric}={fmt(result.best['objective'], 4, style='g')} "
            f"checkpoint {result.best['checkpoint']}"
        )
    if spec.multi_objective:
        print(f"\n{judged_words(spec)}")
        print(format_front(df, [(o.metric, o.mode) for o in spec.objectives]))
    if result.human is not None:
        print_verdict(result, spec)
    print(f"results database: {result.db}\nRay results: {result.experiment_path}")


def print_verdict(result: StudyResult, spec: StudySpec) -> None:
    """A [human] round: every finished trial's objective and human score, and the Pareto front of the two."""
    human, table = spec.human, result.human
    metric = spec.objective.metric
    where = f" in campaign {human.campaign!r}" if human.campaign else ""
    rows = []
    for _, r in table.sort_values(["pareto", "objective"], ascending=[False, spec.objective.mode == "min"]).iterrows():
        new = r["trial_id"] in result.new_trials
        score = fmt(r["score"], 3, style="g") if r["counted"] else f"waiting ({r['votes']}/{human.min_votes})"
        rows.append(
            [
                str(r["trial_id"]),
                "this round" if new else "",
                fmt(r["objective"], 4, style="g"),
                score,
                "*" if r["pareto"] else "",
            ]
        )
    print(
        f"\nhuman verdict: {human.score}{where}, counted from {human.min_votes} votes; "
        f"{int(table['counted'].sum())} of {len(table)} finished trials scored, "
        f"{int(table['pareto'].sum())} on the Pareto front (*)"
    )
    print(format_table(["trial", "round", metric, human.score, "pareto"], rows))
    if result.new_trials:
        print(
            f"next: build CTT items of this round's trials (vidcolor ctt build --db {result.db} "
            f"--study {spec.name} --trials "
            f"{','.join(result.new_trials)}), collect votes, then run this spec again"
        )


def main(args) -> int:
    """Handler of ``vidcolor tune STUDY.toml [--shards] [--db] [--storage] [--address] [--trials] [--resume]``."""
    if not args.stall_after > 0:
        raise VidcolorError(f"--stall-after: must be > 0 seconds, got {args.stall_after:g}")
    spec = override_spec(load_spec(args.spec), trials=args.trials)
    storage = args.storage or DEFAULT_STORAGE  # the logs go beside a local storage, else under ./
    logs = Path("vidcolor_logs" if "://" in storage else storage).expanduser() / f"{spec.name}-logs"
    trackers = tracker_options(args, default_dir=logs)  # before Ray starts: a tracker not installed
    if trackers is not None and args.resume:
        raise VidcolorError(
            "--log with --resume: a resumed study keeps the callbacks it was started with (Tune restores "
            "them), so trackers cannot be added or changed now; a study started with --log goes on "
            "logging to them without the flag"
        )
    result = run_study(
        spec,
        shards=args.shards,
        db=args.db,
        storage=args.storage,
        address=args.address,
        resume=args.resume,
        stall_after_s=args.stall_after,
        trackers=trackers,
    )
    print_summary(result, spec)
    return 0
