"""Benchmark: frames/s from the shard reader vs decoding the same frames from the source videos.

For each frame size (64 and 256 px by default) the same sources are sharded once (JPEG q95, clip
length 16, every video in the train split), then the same frames are delivered three ways, each in
one process (no loader workers), best of ``--repeat`` runs:

- ``source``: PyAV decode of every source video + resize/center crop (the direct path),
- ``shard eval``: `eval_loader` ordered pass, window 1 (exactly the same frames),
- ``shard train``: `train_loader` random windows of 8 frames, as many frames as the sources hold.

``speedup`` = shard eval frames/s / source frames/s. Sources default to generated demo scenes at
360 px (480x360, 24 fps), plus ``../shared/data/cockatoo.mp4`` beside the checkout (1280x720) when it exists.

    python bench/loader.py [--json FILE] [--sizes 64,256] [--sources A.mp4 B.mp4 ...]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

from data_shards.synthetic import make_demo_videos
from data_shards.reader import eval_loader, train_loader
from data_shards.video import iter_frames, probe
from data_shards.writer import write_shard_set
from study.report import fmt, format_table, write_json

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "cockatoo.mp4"  # beside the checkout


def _best(fn, repeat: int) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        count = fn()
        best = min(best, time.perf_counter() - t0)
    return best, count


def bench_size(sources: list[Path], size: int, workdir: Path, repeat: int) -> dict:
    shards = workdir / f"shards_{size}"
    t0 = time.perf_counter()
    manifest = write_shard_set(sources, shards, size=size, clip_len=16, split="100,0,0", show_progress=False)
    shard_s = time.perf_counter() - t0
    n_frames = manifest["splits"]["train"]["frames"]

    def source() -> int:
        return sum(1 for p in sources for _ in iter_frames(p, size))

    def shard_eval() -> int:
        return sum(int(b["valid"].sum()) for b in eval_loader(shards, "train", window=1, batch_size=16))

    def shard_train() -> int:
        steps = max(1, n_frames // (8 * 8))
        return sum(b["frames"].shape[0] * b["frames"].shape[1]
                   for b in train_loader(shards, window=8, batch_size=8, steps_per_epoch=steps))

    rows = {}
    for name, fn in (("source", source), ("shard eval", shard_eval), ("shard train", shard_train)):
        secs, count = _best(fn, repeat)
        rows[name] = {"frames": count, "seconds": round(secs, 4), "frames_per_s": round(count / secs, 1)}
    assert rows["source"]["frames"] == rows["shard eval"]["frames"] == n_frames, rows
    return {"size": size, "frames": n_frames, "shard_seconds": round(shard_s, 3), "paths": rows,
            "speedup": round(rows["shard eval"]["frames_per_s"] / rows["source"]["frames_per_s"], 2),
            "speedup_train": round(rows["shard train"]["frames_per_s"] / rows["source"]["frames_per_s"], 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")
    ap.add_argument("--sizes", default="64,256")
    ap.add_argument("--sources", nargs="*", default=None, help="video files (default: generated + cockatoo)")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="vidcolor-bench-") as tmp:
        workdir = Path(tmp)
        if args.sources:
            sources = [Path(s) for s in args.sources]
        else:
            sources = make_demo_videos(workdir / "videos", videos=4, seconds=4, size=360, fps=24, seed=0)[:-1]
            if REAL.exists():
                sources.append(REAL)
        sources_desc = [f"{p.name} {probe(p).width}x{probe(p).height}" for p in sources]
        results = [bench_size(sources, int(s), workdir, args.repeat) for s in args.sizes.split(",")]
    print(f"sources: {', '.join(sources_desc)}")
    rows = [(r["size"], name, row["frames"], fmt(row["seconds"], 3), fmt(row["frames_per_s"], 1),
             f"{row['frames_per_s'] / r['paths']['source']['frames_per_s']:.2f}x")
            for r in results for name, row in r["paths"].items()]
    print(format_table(("size", "path", "frames", "seconds", "frames/s", "speedup"), rows))
    for r in results:
        print(f"size {r['size']}: one-time sharding {r['shard_seconds']:.1f} s")
    if args.json:
        write_json(args.json, {"benchmark": "loader", "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
