"""Benchmark: how one study's wall time grows with trials, frames per epoch and Ray Train workers,
and what Ray costs per trial.

Every study is the demo's search space (``study/configs/demo.toml``: tiny exp5, 64 px demo shards,
CPU) with ``seq_len`` and ``grid`` fixed, random sampling, no early stopping and one trial at a
time, so every trial does the same work. From a base (``--trials`` 2, ``--epochs`` 2, ``--steps``
16, 1 worker) one thing changes at a time: trials x1, x2; steps per epoch x4; Ray Train workers 2.

From the results store (trial start, every epoch's report and the end, as the driver saw them,
and each epoch's in-loop ``epoch_s`` = training steps + validation) each trial's time splits into

- ``start``: trial start -> first report, less that epoch's ``epoch_s`` (the Tune trial actor,
  the TorchTrainer and its worker group, the loop's setup: shards, model, first batches);
- ``per epoch``: mean gap between reports less ``epoch_s`` (checkpoint written, reported, copied);
- ``end``: last report -> trial end (the trainer shutting down);

and ``overhead`` = (trial time - its epochs' ``epoch_s``) / trial time. ``driver`` is what the
study took beyond its trials (Ray, Tune and Optuna set up, trials scheduled).

    python bench/scaling.py [--trials 2] [--epochs 2] [--steps 16] [--json FILE]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from study.report import fmt, format_table, write_json  # noqa: E402

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
    return {"total": total, "epochs": sum(in_loop), "train": float(epochs["train_s"].sum()), "start": start,
            "per_epoch": statistics.fmean(gaps) if gaps else 0.0, "end": _seconds(times[-1], trial["ended"])}


def one_study(base, shards: Path, db: str, storage: Path, label: str, trials: int, steps: int, workers: int) -> dict:
    from study.config.spec import Resources
    from study.store import Store
    from study.tune.runner import override_spec, run_study

    spec = base.replace(fixed={**base.fixed, "steps_per_epoch": steps}, num_trials=trials,
                        resources=Resources(workers=workers, cpus_per_worker=1, gpus_per_worker=0))
    name = f"scaling-{label.replace(' ', '-')}-{int(time.time())}"
    t0 = time.monotonic()
    result = run_study(override_spec(spec, name=name), shards=str(shards), db=db, storage=str(storage), media=False,
                       progress_every_s=600)
    wall = time.monotonic() - t0
    df = result.trials
    if (df["status"] != "TERMINATED").any():
        raise RuntimeError(f"{label}: trials did not all finish: {df[['trial_id', 'status', 'error']]}")
    ep = Store(db).epochs(name)
    splits = [trial_split(t, ep[ep["trial_id"] == t["trial_id"]]) for _, t in df.iterrows()]
    epochs = base.base_configs()[1].epochs
    frames = trials * epochs * steps * BATCH * SEQ_LEN * workers  # batch_size is per rank
    mean = {k: statistics.fmean(s[k] for s in splits) for k in splits[0]}
    return {"label": label, "trials": trials, "steps_per_epoch": steps, "workers": workers, "epochs": epochs,
            "frames": frames, "wall_s": round(wall, 2), "trial_s": round(mean["total"], 2),
            "epochs_s": round(mean["epochs"], 2), "start_s": round(mean["start"], 2),
            "per_epoch_s": round(mean["per_epoch"], 3), "end_s": round(mean["end"], 2),
            "driver_s": round(wall - sum(s["total"] for s in splits), 2),
            "overhead": round(1 - mean["epochs"] / mean["total"], 3),
            "train_fps": round(frames / sum(s["train"] for s in splits), 1)}


def run(args) -> dict:
    from study.ray_runtime import configure_auth, init_ray

    configure_auth()  # before Ray is imported
    import ray

    from study.config.spec import AshaSpec, SamplerSpec, load_spec

    work = Path(args.workdir or tempfile.mkdtemp(prefix="vc-scaling-"))
    work.mkdir(parents=True, exist_ok=True)
    shards = Path(args.shards) if args.shards else make_shards(work)
    demo = load_spec("demo")
    base = demo.replace(fixed={**demo.fixed, "epochs": args.epochs, "seq_len": SEQ_LEN, "grid": 10,
                               "batch_size": BATCH},
                        search=tuple(p for p in demo.search if p.name not in ("seq_len", "grid")),
                        max_concurrent=1, media_clips=0, sampler=SamplerSpec(kind="random", seed=0),
                        asha=AshaSpec(enabled=False))
    t, s = args.trials, args.steps
    plan = [("base", t, s, 1), ("trials x2", 2 * t, s, 1), ("steps x4", t, 4 * s, 1), ("2 workers", t, s, 2)]
    db = f"sqlite:///{work / 'scaling.db'}"
    init_ray(None)
    rows = []
    try:
        for label, trials, steps, workers in plan:
            rows.append(one_study(base, shards, db, work / "ray", label, trials, steps, workers))
            r = rows[-1]
            print(f"  {label:10s}: {r['wall_s']:.1f} s, {r['trial_s']:.1f} s a trial, overhead {r['overhead']:.0%}",
                  flush=True)
    finally:
        ray.shutdown()
    by = {r["label"]: r for r in rows}
    b = by["base"]
    marginal = {"per_trial_s": round((by["trials x2"]["wall_s"] - b["wall_s"]) / t, 2),
                "per_1k_frames_s": round((by["steps x4"]["wall_s"] - b["wall_s"])
                                         / ((by["steps x4"]["frames"] - b["frames"]) / 1000), 3)}
    return {"runs": rows, "marginal": marginal, "cpu_cores": __import__("os").cpu_count(),
            "speedup": round(by["2 workers"]["train_fps"] / b["train_fps"], 2)}


def table(res: dict) -> str:
    head = ("study", "trials", "steps", "workers", "frames", "wall s", "s/trial", "epochs s", "start s",
            "per-epoch s", "end s", "driver s", "overhead", "train frames/s")
    rows = [(r["label"], r["trials"], r["steps_per_epoch"], r["workers"], r["frames"], fmt(r["wall_s"], 1),
             fmt(r["trial_s"], 1), fmt(r["epochs_s"], 1), fmt(r["start_s"], 1), fmt(r["per_epoch_s"], 2),
             fmt(r["end_s"], 1), fmt(r["driver_s"], 1), f"{r['overhead']:.0%}", fmt(r["train_fps"], 0))
            for r in res["runs"]]
    m = res["marginal"]
    return "\n".join([format_table(head, rows),
                      f"marginal cost: {m['per_trial_s']:.1f} s per extra trial, {m['per_1k_frames_s']:.2f} s per "
                      f"extra 1000 training frames; 2 workers / 1 worker training frames/s (speedup): "
                      f"{res['speedup']:.2f}x on {res['cpu_cores']} cores"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shards", default=None, help="shard set (default: generate the demo's)")
    p.add_argument("--trials", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--steps", type=int, default=16, help="steps per epoch of the base study")
    p.add_argument("--workdir", default=None)
    p.add_argument("--json", default=None, metavar="FILE")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    res = run(args)
    print(table(res))
    if args.json:
        print(f"wrote {write_json(args.json, res)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
