"""Benchmark: TPE + ASHA against random search without early stopping, same number of trials.

For each seed, two studies of the same search space (``study/configs/demo.toml``'s, tiny model, CPU)
run on one local Ray: Optuna's TPE (multivariate, constant liar) with ASHA early stopping, and
random sampling with every trial trained to the end. Reported per method: the best objective
reached (mean and per seed) and the total trial-epochs spent. ``speedup`` is random's
trial-epochs over TPE+ASHA's (the compute saved by early stopping).

    python bench/sweep.py --trials 6 --seeds 0,1 --epochs 3 [--shards DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from study.report import fmt, format_table, write_json


def make_shards(workdir: Path) -> Path:
    from data_shards.synthetic import make_demo_videos
    from data_shards.writer import write_shard_set

    videos, shards = workdir / "videos", workdir / "shards"
    make_demo_videos(videos, videos=8, seconds=3.0, size=96, fps=12, seed=0)
    write_shard_set([videos], shards, size=64, clip_len=8, seed=0, show_progress=False)
    return shards


def run(args) -> dict:
    from study.ray_runtime import configure_auth, init_ray

    configure_auth()  # before Ray is imported
    import ray

    from study.config.spec import AshaSpec, SamplerSpec, load_spec
    from study.tune.runner import override_spec, run_study

    work = Path(args.workdir or tempfile.mkdtemp(prefix="vc-sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    shards = Path(args.shards) if args.shards else make_shards(work)
    base = load_spec(args.spec)
    fixed = {**base.fixed, "epochs": args.epochs, "steps_per_epoch": args.steps}
    base = base.replace(
        fixed=fixed,
        num_trials=args.trials,
        max_concurrent=1,
        media_clips=0,
        asha=AshaSpec(enabled=True, grace_period=1, reduction_factor=2, max_t=0),
    )
    methods = {
        "tpe+asha": lambda s: base.replace(sampler=SamplerSpec(kind="tpe", seed=s, n_startup_trials=2)),
        "random": lambda s: base.replace(sampler=SamplerSpec(kind="random", seed=s), asha=AshaSpec(enabled=False)),
    }
    db = f"sqlite:///{work / 'sweep.db'}"
    init_ray(None)
    rows = []
    try:
        for seed in args.seeds:
            for method, make in methods.items():
                spec = make(seed)
                name = f"sweep-{method.replace('+', '-')}-s{seed}-{int(time.time())}"
                t0 = time.monotonic()
                result = run_study(
                    override_spec(spec, name=name),
                    shards=str(shards),
                    db=db,
                    storage=str(work / "ray"),
                    media=False,
                    progress_every_s=600,
                )
                df = result.trials
                values = df["objective"].dropna()
                best = float(values.min() if spec.objective.mode == "min" else values.max()) if len(values) else None
                rows.append(
                    {
                        "method": method,
                        "seed": seed,
                        "trials": int(len(df)),
                        "trial_epochs": int(df["epochs"].sum()),
                        "best": best,
                        "stopped": int((df["status"] == "STOPPED").sum()),
                        "failed": int((df["status"] == "ERROR").sum()),
                        "seconds": round(time.monotonic() - t0, 1),
                    }
                )
                print(f"  {method:9s} seed {seed}: best {best}, {rows[-1]['trial_epochs']} trial-epochs", flush=True)
    finally:
        ray.shutdown()
    summary = {}
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        bests = [r["best"] for r in mine if r["best"] is not None]
        summary[method] = {
            "best_mean": statistics.fmean(bests) if bests else None,
            "best_per_seed": [r["best"] for r in mine],
            "trial_epochs_mean": statistics.fmean(r["trial_epochs"] for r in mine),
            "seconds_mean": statistics.fmean(r["seconds"] for r in mine),
        }
    ta, rnd = summary["tpe+asha"]["trial_epochs_mean"], summary["random"]["trial_epochs_mean"]
    return {
        "objective": f"{base.objective.metric} ({base.objective.mode})",
        "trials": args.trials,
        "epochs": args.epochs,
        "steps_per_epoch": args.steps,
        "seeds": args.seeds,
        "runs": rows,
        "summary": summary,
        "speedup": rnd / ta if ta else None,
    }


def table(res: dict) -> str:
    head = (
        f"objective {res['objective']}, {res['trials']} trials x up to {res['epochs']} epochs "
        f"({res['steps_per_epoch']} steps), seeds {res['seeds']}"
    )
    rows = [
        [
            method,
            fmt(s["best_mean"]),
            ", ".join(fmt(v) for v in s["best_per_seed"]),
            fmt(s["trial_epochs_mean"], 1),
            fmt(s["seconds_mean"], 0),
        ]
        for method, s in res["summary"].items()
    ]
    lines = [head, format_table(["method", "best (mean)", "best per seed", "trial-epochs", "s/study"], rows)]
    if res["speedup"]:
        lines.append(f"speedup (random's trial-epochs / TPE+ASHA's): {res['speedup']:.2f}x")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default="demo", help="study spec whose search space is used (default demo)")
    p.add_argument("--shards", default=None, help="shard set (default: generate the demo's)")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--steps", type=int, default=8, help="steps per epoch")
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
