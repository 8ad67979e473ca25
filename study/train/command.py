"""``vidcolor train``: one configuration on Ray Train, the best checkpoint at OUT/best/."""

from __future__ import annotations

from study.report import format_table


def main(args) -> int:
    """Handler of ``vidcolor train --shards S --preset P [--set k=v ...] --out RUN [--resume | --overwrite]``."""
    from data_shards.reader import ShardSet
    from models.presets import get_preset
    from study.config.settings import apply_settings, parse_sets
    from study.config.train import TrainConfig
    from study.train.launch import run_training

    experiment, train = apply_settings(get_preset(args.preset), TrainConfig(), parse_sets(args.set))
    experiment.check_ready()
    ShardSet(args.shards)  # fail early with the reader's message on a bad location
    summary = run_training(
        experiment,
        train,
        args.shards,
        args.out,
        workers=args.workers,
        use_gpu=args.gpu,
        address=args.address,
        overwrite=getattr(args, "overwrite", False),
        resume=getattr(args, "resume", False),
    )
    print(
        f"trained {experiment.name} ({experiment.size}, grid {experiment.grid}, window {experiment.window}) "
        f"for {train.epochs} epochs x {train.steps_per_epoch} steps"
    )
    rows = [
        (k, v)
        for k, v in sorted(summary["metrics"].items())
        if isinstance(v, (int, float)) and not k.startswith("checkpoint")
    ]
    print(format_table(["metric (best epoch)", "value"], rows, numeric_right=False, digits=4))
    print(f"best checkpoint: {summary['best']}")
    return 0
