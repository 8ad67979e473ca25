"""Benchmark: how one study's wall time grows with trials, frames per epoch and Ray Train workers,
and what Ray costs per trial.

Every study is the demo's search space (``study/configs/demo.toml``: tiny exp5, 64 px demo shards,
CPU) with ``seq_len`` and ``grid`` fixed, random sampling, no early stopping and one trial at a
time, so every trial does the same work. From a base (``--trials`` 2, ``--epochs`` 2, ``--steps``
16, 1 worker) one thing changes at a time: trials x1, x2; steps per epoch x4; Ray Train workers 2.

From the results store (trial start, every epoch's report and the end, as the driver saw them,
and each epoch's in-loop ``epoch_s`` = training steps + validation) each trial's time splits into

- ``start``: trial start -> first report, less that epoch's ``epoch_s`` (the Tune trial actor
  and the loop's setup: shards, model, first batches; with 2 workers also the TorchTrainer, its
  controller and worker group, which a 1-worker CPU trial does without);
- ``per epoch``: mean gap between reports less ``epoch_s`` (checkpoint written, reported, copied);
- ``end``: last report -> trial end (the trainer shutting down);

and ``overhead`` = (trial time - its epochs' ``epoch_s``) / trial time. ``driver`` is what the
study took beyond its trials (Ray, Tune and Optuna set up, trials scheduled).

Last, an estimate of the seed's paper-scale sweep (20 trials x 10 epochs x 207k frames at 256
px) on 1, 8 and 32 GPUs from a GPU's training images/s (``--gpu-images-per-s``; default 2,800,
an H200's ceiling for ``base`` at 256 px, to be replaced by what bench/gpu.sh measures) and the
Ray overheads measured here (see `paper_estimate`).

    python bench/scaling.py [--trials 2] [--epochs 2] [--steps 16] [--json FILE]
    python bench/scaling.py --from-json FILE --gpu-images-per-s N --gpu-images-source "bench/gpu.sh, H200"
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from study.report import fmt, format_table, write_json

BATCH, SEQ_LEN = 8, 2


def make_shards(workdir: Path) -> Path:
    from data_shards.synthetic import make_demo_videos
    from data_shards.writer import write_shard_set

    videos, shards = workdir / "videos", workdir / "shards"
    make_demo_videos(videos, videos=8, seconds=3.0, size=96, fps=12, seed=0)
    write_shard_set([videos], shards, size=64, clip_len=8, seed=0, show_progress=False)
    return shards


def _seconds(a, b) -> float:
    return (b - a).total_seconds()


def trial_split(trial, epochs) -> dict:
    """One trial's time: total, in-loop epochs, start, per-epoch and end overheads (seconds)."""
    times = list(epochs["time"])
    in_loop = [float(x) for x in epochs["epoch_s"]]
    total = trial["duration_s"]
    start = _seconds(trial["started"], times[0]) - in_loop[0]
    gaps = [_seconds(a, b) - e for a, b, e in zip(times, times[1:], in_loop[1:])]
    return {
        "total": total,
        "epochs": sum(in_loop),
        "train": float(epochs["train_s"].sum()),
        "start": start,
        "per_epoch": statistics.fmean(gaps) if gaps else 0.0,
        "end": _seconds(times[-1], trial["ended"]),
    }


def one_study(base, shards: Path, db: str, storage: Path, label: str, trials: int, steps: int, workers: int) -> dict:
    from study.config.spec import Resources
    from study.store import Store
    from study.tune.runner import override_spec, run_study

    spec = base.replace(
        fixed={**base.fixed, "steps_per_epoch": steps},
        num_trials=trials,
        # logical CPUs: 2 workers on 2 cores get 0.95 each beside the trial driver's 0.1
        resources=Resources(
            workers=workers, cpus_per_worker=min(1.0, (os.cpu_count() - 0.1) / workers), gpus_per_worker=0
        ),
    )
    name = f"scaling-{label.replace(' ', '-')}-{int(time.time())}"
    t0 = time.monotonic()
    result = run_study(
        override_spec(spec, name=name),
        shards=str(shards),
        db=db,
        storage=str(storage),
        media=False,
        progress_every_s=600,
    )
    wall = time.monotonic() - t0
    df = result.trials
    if (df["status"] != "TERMINATED").any():
        raise RuntimeError(f"{label}: trials did not all finish: {df[['trial_id', 'status', 'error']]}")
    ep = Store(db).epochs(name)
    splits = [trial_split(t, ep[ep["trial_id"] == t["trial_id"]]) for _, t in df.iterrows()]
    epochs = base.base_configs()[1].epochs
    frames = trials * epochs * steps * BATCH * SEQ_LEN * workers  # batch_size is per rank
    mean = {k: statistics.fmean(s[k] for s in splits) for k in splits[0]}
    return {
        "label": label,
        "trials": trials,
        "steps_per_epoch": steps,
        "workers": workers,
        "epochs": epochs,
        "frames": frames,
        "wall_s": round(wall, 2),
        "trial_s": round(mean["total"], 2),
        "epochs_s": round(mean["epochs"], 2),
        "start_s": round(mean["start"], 2),
        "per_epoch_s": round(mean["per_epoch"], 3),
        "end_s": round(mean["end"], 2),
        "driver_s": round(wall - sum(s["total"] for s in splits), 2),
        "overhead": round(1 - mean["epochs"] / mean["total"], 3),
        "train_fps": round(frames / sum(s["train"] for s in splits), 1),
    }


def run(args) -> dict:
    from study.ray_runtime import configure_auth, init_ray

    configure_auth()  # before Ray is imported
    import ray

    from study.config.spec import AshaSpec, SamplerSpec, load_spec

    work = Path(args.workdir or tempfile.mkdtemp(prefix="vc-scaling-"))
    work.mkdir(parents=True, exist_ok=True)
    shards = Path(args.shards) if args.shards else make_shards(work)
    demo = load_spec("demo")
    base = demo.replace(
        fixed={**demo.fixed, "epochs": args.epochs, "seq_len": SEQ_LEN, "grid": 10, "batch_size": BATCH},
        search=tuple(p for p in demo.search if p.name not in ("seq_len", "grid")),
        max_concurrent=1,
        media_clips=0,
        sampler=SamplerSpec(kind="random", seed=0),
        asha=AshaSpec(enabled=False),
    )
    t, s = args.trials, args.steps
    plan = [("base", t, s, 1), ("trials x2", 2 * t, s, 1), ("steps x4", t, 4 * s, 1), ("2 workers", t, s, 2)]
    db = f"sqlite:///{work / 'scaling.db'}"
    init_ray(None)
    rows = []
    try:
        for label, trials, steps, workers in plan:
            rows.append(one_study(base, shards, db, work / "ray", label, trials, steps, workers))
            r = rows[-1]
            print(
                f"  {label:10s}: {r['wall_s']:.1f} s, {r['trial_s']:.1f} s a trial, overhead {r['overhead']:.0%}",
                flush=True,
            )
    finally:
        ray.shutdown()
    by = {r["label"]: r for r in rows}
    b = by["base"]
    marginal = {
        "per_trial_s": round((by["trials x2"]["wall_s"] - b["wall_s"]) / t, 2),
        "per_1k_frames_s": round(
            (by["steps x4"]["wall_s"] - b["wall_s"]) / ((by["steps x4"]["frames"] - b["frames"]) / 1000), 3
        ),
    }
    return {
        "runs": rows,
        "marginal": marginal,
        "cpu_cores": os.cpu_count(),
        "speedup": round(by["2 workers"]["train_fps"] / b["train_fps"], 2),
    }


def paper_estimate(
    res: dict,
    images_per_s: float,
    gpus: tuple[int, ...] = (1, 8, 32),
    trials: int = 20,
    epochs: int = 10,
    frames: int = 207_000,
    ddp_efficiency: float = 0.9,
) -> list[dict]:
    """Wall time of the seed's sweep (``trials`` x ``epochs`` x ``frames`` at 256 px) on N GPUs.

    Per trial: compute = epochs x frames / (images_per_s x g x e), g GPUs by DDP (e = 1 for one,
    ``ddp_efficiency`` for more), plus this run's measured Ray overheads (start, per epoch, end);
    G // g trials at a time, so ceil(trials / (G // g)) waves; the driver's setup once. Every g
    that divides G is tried and the fastest is kept."""
    base = next(r for r in res["runs"] if r["label"] == "base")
    overhead = base["start_s"] + epochs * base["per_epoch_s"] + base["end_s"]
    out = []
    for total in gpus:
        options = []
        for g in (d for d in range(1, total + 1) if total % d == 0 and d <= 8):
            compute = epochs * frames / (images_per_s * g * (1.0 if g == 1 else ddp_efficiency))
            waves = -(-trials // (total // g))
            options.append((waves * (compute + overhead) + base["driver_s"], g, waves, compute))
        wall, g, waves, compute = min(options)
        out.append(
            {
                "gpus": total,
                "gpus_per_trial": g,
                "concurrent": min(trials, total // g),
                "waves": waves,
                "trial_compute_s": round(compute, 1),
                "trial_overhead_s": round(overhead, 1),
                "wall_h": round(wall / 3600, 2),
                "gpu_hours": round(wall * total / 3600, 1),
            }
        )
    return out


def table(res: dict) -> str:
    head = (
        "study",
        "trials",
        "steps",
        "workers",
        "frames",
        "wall s",
        "s/trial",
        "epochs s",
        "start s",
        "per-epoch s",
        "end s",
        "driver s",
        "overhead",
        "train frames/s",
    )
    rows = [
        (
            r["label"],
            r["trials"],
            r["steps_per_epoch"],
            r["workers"],
            r["frames"],
            fmt(r["wall_s"], 1),
            fmt(r["trial_s"], 1),
            fmt(r["epochs_s"], 1),
            fmt(r["start_s"], 1),
            fmt(r["per_epoch_s"], 2),
            fmt(r["end_s"], 1),
            fmt(r["driver_s"], 1),
            f"{r['overhead']:.0%}",
            fmt(r["train_fps"], 0),
        )
        for r in res["runs"]
    ]
    m = res["marginal"]
    est = res["paper_estimate"]
    e_head = ("GPUs", "GPUs/trial", "trials at once", "waves", "compute s/trial", "Ray s/trial", "wall h", "GPU-hours")
    e_rows = [
        (
            e["gpus"],
            e["gpus_per_trial"],
            e["concurrent"],
            e["waves"],
            fmt(e["trial_compute_s"], 0),
            fmt(e["trial_overhead_s"], 0),
            fmt(e["wall_h"], 2),
            fmt(e["gpu_hours"], 1),
        )
        for e in est
    ]
    return "\n".join(
        [
            format_table(head, rows),
            f"marginal cost: {m['per_trial_s']:.1f} s per extra trial, {m['per_1k_frames_s']:.2f} s per "
            f"extra 1000 training frames; 2 workers / 1 worker training frames/s (speedup): "
            f"{res['speedup']:.2f}x on {res['cpu_cores']} cores",
            "",
            f"the seed's sweep, 20 trials x 10 epochs x 207k frames at 256 px, at {res['gpu_images_per_s']:.0f} "
            f"images/s per GPU ({res['gpu_images_per_s_source']}), with the Ray overheads measured above:",
            format_table(e_head, e_rows),
        ]
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shards", default=None, help="shard set (default: generate the demo's)")
    p.add_argument("--trials", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--steps", type=int, default=16, help="steps per epoch of the base study")
    p.add_argument("--workdir", default=None)
    p.add_argument(
        "--gpu-images-per-s",
        type=float,
        default=2800.0,
        help="training images/s of `base` at 256 px on one GPU, for the paper-scale estimate",
    )
    p.add_argument(
        "--gpu-images-source",
        default="assumed: an H200's ceiling for base at 256 px, not measured here",
        help="where --gpu-images-per-s comes from (printed beside the estimate)",
    )
    p.add_argument(
        "--from-json",
        default=None,
        metavar="FILE",
        help="recompute the tables and the estimate from an earlier run's JSON instead of running",
    )
    p.add_argument("--json", default=None, metavar="FILE")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    res = json.loads(Path(args.from_json).read_text()) if args.from_json else run(args)
    res["gpu_images_per_s"] = args.gpu_images_per_s
    res["gpu_images_per_s_source"] = args.gpu_images_source
    res["paper_estimate"] = paper_estimate(res, args.gpu_images_per_s)
    print(table(res))
    if args.json:
        print(f"wrote {write_json(args.json, res)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
