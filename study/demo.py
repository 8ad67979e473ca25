"""``vidcolor demo`` (``make demo``): the whole flow on generated data, on the local Ray.

demo-data (small generated color videos and one black-and-white) -> 64 px shards -> the
``study/configs/demo.toml`` study (a tiny temporal colorizer, TPE + ASHA, one trial at a time on a
2-core machine) -> the results table, where everything is, and how to open the dashboard. Steps
already done in the work folder (videos, shards) are reused; a finished study is never
overwritten: a rerun becomes ``demo-2``, ``demo-3`` ...
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from data_shards import outdir
from models.errors import VidcolorError

log = logging.getLogger(__name__)

DEMO_VIDEOS = 8
DEMO_SECONDS = 3.0
DEMO_SIZE = 64
DEMO_CLIP_LEN = 8


def prepare_data(workdir: Path) -> Path:
    """Demo videos and their 64 px shard set under ``workdir`` (kept when already there)."""
    from data_shards.synthetic import make_demo_videos
    from data_shards.writer import write_shard_set

    videos, shards = workdir / "videos", workdir / "shards"
    if not any(videos.glob("*.mp4")):
        print(f"[1/3] generating {DEMO_VIDEOS} demo videos in {videos}", flush=True)
        make_demo_videos(videos, videos=DEMO_VIDEOS, seconds=DEMO_SECONDS, size=96, fps=12, seed=0)
    else:
        print(f"[1/3] demo videos: {videos} (kept)")
    if not (shards / "manifest.json").is_file():
        print(f"[2/3] sharding at {DEMO_SIZE} px into {shards}", flush=True)
        write_shard_set(
            [videos],
            shards,
            size=DEMO_SIZE,
            clip_len=DEMO_CLIP_LEN,
            seed=0,
            command="vidcolor demo",
            show_progress=sys.stderr.isatty(),  # a bar in a terminal; in a log, one line per step
        )
    else:
        print(f"[2/3] shard set: {shards} (kept)")
    return shards


def free_study_name(store, storage: Path, base: str) -> str:
    """``base``, or ``base-2``, ``base-3`` ... when a study of that name already exists."""
    name, n = base, 1
    while store.get_study(name) is not None or (storage / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def main(args) -> int:
    from study.config.spec import load_spec
    from study.store import Store
    from study.tune.command import print_summary
    from study.tune.runner import override_spec, run_study

    t0 = time.monotonic()
    workdir = outdir.check_place(
        Path(args.workdir).resolve(), "--workdir", folder=True
    )  # it is added to, never replaced
    workdir.mkdir(parents=True, exist_ok=True)
    shards = prepare_data(workdir)
    db = f"sqlite:///{workdir / 'results.db'}"
    storage = workdir / "ray_results"
    from study.config.spec import CONFIG_DIR

    spec = load_spec(CONFIG_DIR / "demo.toml")
    name = free_study_name(Store(db), storage, spec.name)
    trials = args.trials or spec.num_trials
    print(
        f"[3/3] study {name!r}: {trials} trials of {spec.source} on a local Ray "
        f"(TPE + ASHA; progress below as trials start and end)",
        flush=True,
    )
    spec = override_spec(spec, name=name, trials=args.trials)
    result = run_study(spec, shards=str(shards), db=db, storage=str(storage))
    print_summary(result, spec)
    minutes = (time.monotonic() - t0) / 60
    print(f"\ndone in {minutes:.1f} min. Everything is in {workdir}:")
    print(
        f"  videos {workdir / 'videos'}, shards {shards}, results {db}, media {workdir / 'media'}, "
        f"Ray results {storage}"
    )
    print(f"open the dashboard:  vidcolor dashboard --db {db}")
    print(f"Optuna's view:       optuna-dashboard {db}   (if installed; study {name!r})")
    if not args.no_dashboard and sys.stdin.isatty():
        answer = input("start the dashboard now? [y/N] ").strip().lower()
        if answer in ("y", "yes"):
            import argparse

            from study.serve import main as serve

            return serve(argparse.Namespace(db=db, port=8501, host="127.0.0.1"))
    return 0


__all__ = ["main", "prepare_data", "free_study_name", "VidcolorError"]
