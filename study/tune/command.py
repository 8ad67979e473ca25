"""``vidcolor tune STUDY.toml``: run or resume a study and print its trials."""

from __future__ import annotations

from models.errors import VidcolorError
from study.config.spec import StudySpec, load_spec
from study.report import fmt, format_table
from study.tune.runner import StudyResult, override_spec, run_study


def print_summary(result: StudyResult, spec: StudySpec) -> None:
    """The study's trials as the results store has them, its best trial and where results are."""
    df = result.trials
    metric = spec.objective.metric
    params = [p.name for p in spec.search]
    rows = [[str(r["trial_id"]), str(r["status"]), str(r["epochs"]), fmt(r["objective"], 4, style="g"),
             *(fmt(r.get(f"param_{p}"), 4, style="g") for p in params)] for _, r in df.iterrows()]
    print(f"\nstudy {result.name}: {len(df)} trials "
          f"({', '.join(f'{n} {s.lower()}' for s, n in df['status'].value_counts().items())})")
    print(format_table(["trial", "status", "epochs", f"best {metric}", *params], rows))
    if result.best:
        print(f"best: trial {result.best['trial_id']} {metric}={fmt(result.best['objective'], 4, style='g')} "
              f"checkpoint {result.best['checkpoint']}")
    print(f"results database: {result.db}\nRay results: {result.experiment_path}")


def main(args) -> int:
    """Handler of ``vidcolor tune STUDY.toml [--shards] [--db] [--storage] [--address] [--trials] [--resume]``."""
    if not args.stall_after > 0:
        raise VidcolorError(f"--stall-after: must be > 0 seconds, got {args.stall_after:g}")
    spec = override_spec(load_spec(args.spec), trials=args.trials)
    result = run_study(spec, shards=args.shards, db=args.db, storage=args.storage, address=args.address,
                       resume=args.resume, stall_after_s=args.stall_after)
    print_summary(result, spec)
    return 0
