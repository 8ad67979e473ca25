"""``vidcolor train``: one configuration on Ray Train, the best checkpoint at OUT/best/."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from study.report import format_table
from study.trackers import sample_images

log = logging.getLogger(__name__)


def main(args) -> int:
    """Handler of ``vidcolor train --shards S --preset P [--set k=v ...] --out RUN [--resume | --overwrite]``."""
    from data_shards.reader import ShardSet
    from models.presets import get_preset
    from study.config.settings import apply_settings, parse_sets
    from study.config.train import TrainConfig
    from study.trackers import tracker_options
    from study.train.launch import run_training

    experiment, train = apply_settings(get_preset(args.preset), TrainConfig(), parse_sets(args.set))
    experiment.check_ready()
    ShardSet(args.shards)  # fail early with the reader's message on a bad location
    trackers = tracker_options(args, default_dir=Path(args.out) / "logs")
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
        media_every=getattr(args, "media_every", 0),
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
    if trackers is not None:
        log_run(trackers, args, experiment, train, summary)
    return 0


def log_run(trackers, args, experiment, train, summary: dict) -> None:
    """``--log``: the finished run on the trackers, named after OUT: its config, every epoch's
    metrics, and sample frames of the best checkpoint on the validation split (OUT/samples), and
    with ``--media-every`` the frames of every such epoch at its step."""
    from study.media.samples import epoch_files, render_samples
    from study.train.launch import EPOCH_MEDIA_DIR

    out = Path(args.out).resolve()
    config = {"experiment": experiment.to_dict(), "train": train.to_dict(), "shards": str(args.shards)}
    run = trackers.run(out.name, out.name, config)
    try:
        for i, metrics in enumerate(summary.get("history") or []):
            epoch = int(metrics.get("epoch") or i + 1)
            run.log(metrics, epoch)
            rendered = epoch_files(out / EPOCH_MEDIA_DIR, epoch)
            if rendered:
                run.log_images(sample_images([dataclasses.asdict(f) for f in rendered]), epoch)
        try:
            files = render_samples(summary["best"], args.shards, out / "samples", split=train.val_split, clips=1)
            run.log_images(sample_images([dataclasses.asdict(f) for f in files]))
        except Exception as exc:  # no validation clips, no memory...: the metrics are logged all the same
            log.warning("--log: no sample frames (%s)", exc)
        names = run.trackers  # those still logging (one that failed was turned off, with a warning)
    finally:
        run.close()
    print(f"logged to {', '.join(names) or 'no tracker (see the warnings)'} under {trackers.log_dir}")
