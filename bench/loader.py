"""Benchmark: frames/s from the shard reader vs decoding the same frames from the source videos.

For each frame size (64 and 256 px by default) the same sources are sharded once (JPEG q95 4:4:4,
clip length 16, every video in the train split), then frames are delivered these ways, best of
``--repeat`` runs:

- ``source``: PyAV decode of every source video + resize/center crop (the direct path), one process;
- ``shard eval``: `eval_loader` ordered pass, window 1 (exactly the same frames), one process;
- ``shard train w=N``: `train_loader` random windows of 8 frames, batch 8, ``--train-steps`` steps
  (an epoch long enough that the shuffle buffer's first fill is not most of it), with N DataLoader
  workers (``--workers``, default 0,1,2; 0 = in the training process itself). ``per worker`` is
  frames/s divided by the processes decoding (N, or 1 for N=0);
- ``shard train+flows w=N``: the same with ``flows=True``, the ground truth's DIS flows and matched
  pixels of every window for the temporal loss (`data_shards.flows`), what a run with
  ``temporal_weight > 0`` reads; compare its frames/s with the training step's
  (``bench/train_step.py`` at the same size) to see whether the loader still feeds training.

``speedup`` (JSON, top level) = shard train w=0 frames/s / source frames/s at the largest size:
the training path in one process against decoding the videos. Then a codec table on the same
frames at the largest size: bytes per frame, decode frames/s with Pillow and with simplejpeg
(the loader's decoder), and the ab error each storage choice adds (RMS over pixels, CIELAB units,
against the uncompressed frames; the ab bins are 10 units wide) for the stored q95 4:4:4 and the
4:2:0 alternatives.

Sources default to generated demo scenes at 360 px (480x360, 24 fps), plus
``../shared/data/cockatoo.mp4`` beside the checkout (1280x720) when it exists.

    python bench/loader.py [--json FILE] [--sizes 64,256] [--workers 0,1,2] [--sources A.mp4 ...] [--no-flows]
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import simplejpeg
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_shards.reader import eval_loader, train_loader
from data_shards.synthetic import make_demo_videos
from data_shards.video import iter_frames, probe
from data_shards.writer import write_shard_set
from models.color import rgb_to_lab
from study.report import fmt, format_table, write_json

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "cockatoo.mp4"  # beside the checkout
WINDOW, BATCH = 8, 8


def _best(fn, repeat: int) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        count = fn()
        best = min(best, time.perf_counter() - t0)
    return best, count


def bench_size(
    sources: list[Path], size: int, workdir: Path, repeat: int, workers: list[int], train_steps: int, flows: bool
) -> dict:
    shards = workdir / f"shards_{size}"
    t0 = time.perf_counter()
    manifest = write_shard_set(sources, shards, size=size, clip_len=16, split="100,0,0", show_progress=False)
    shard_s = time.perf_counter() - t0
    n_frames = manifest["splits"]["train"]["frames"]

    def source() -> int:
        return sum(1 for p in sources for _ in iter_frames(p, size))

    def shard_eval() -> int:
        return sum(int(b["valid"].sum()) for b in eval_loader(shards, "train", window=1, batch_size=16))

    def shard_train(n_workers: int, flows: bool = False):
        def run() -> int:
            loader = train_loader(
                shards,
                window=WINDOW,
                batch_size=BATCH,
                steps_per_epoch=train_steps,
                num_workers=n_workers,
                flows=flows,
            )
            return sum(b["frames"].shape[0] * b["frames"].shape[1] for b in loader)

        return run

    paths = [("source", source, 1), ("shard eval", shard_eval, 1)]
    paths += [(f"shard train w={w}", shard_train(w), max(1, w)) for w in workers]
    if flows:
        paths += [(f"shard train+flows w={w}", shard_train(w, flows=True), max(1, w)) for w in workers]
    rows = {}
    for name, fn, procs in paths:
        secs, count = _best(fn, repeat)
        rows[name] = {
            "frames": count,
            "seconds": round(secs, 4),
            "frames_per_s": round(count / secs, 1),
            "per_worker": round(count / secs / procs, 1),
        }
    assert rows["source"]["frames"] == rows["shard eval"]["frames"] == n_frames, rows
    src = rows["source"]["frames_per_s"]
    out = {
        "size": size,
        "frames": n_frames,
        "shard_seconds": round(shard_s, 3),
        "paths": rows,
        "speedup_eval": round(rows["shard eval"]["frames_per_s"] / src, 2),
    }
    if 0 in workers:
        out["speedup"] = round(rows["shard train w=0"]["frames_per_s"] / src, 2)
    return out


def _jpeg(frame: np.ndarray, quality: int, subsampling: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality, subsampling=subsampling)
    return buf.getvalue()


def _ab(frames: np.ndarray) -> torch.Tensor:
    lab = rgb_to_lab(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0)
    return lab[:, 1:]


def codec_table(sources: list[Path], size: int, repeat: int, n: int = 96) -> list[dict]:
    """Storage choices for ``n`` frames at ``size``: bytes, decode frames/s, added ab error."""
    frames = np.stack([f for p in sources for _, f in zip(range(max(1, n // len(sources))), iter_frames(p, size))])
    ab_ref = _ab(frames)
    rows = []
    for label, quality, sub in (("q95 4:4:4 (stored)", 95, 0), ("q95 4:2:0", 95, 2), ("q90 4:2:0", 90, 2)):
        data = [_jpeg(f, quality, sub) for f in frames]
        decoded = np.stack([simplejpeg.decode_jpeg(d, colorspace="RGB") for d in data])
        ab_rms = float(((_ab(decoded) - ab_ref) ** 2).mean().sqrt())

        def pil_decode(data=data):
            return sum(np.asarray(Image.open(io.BytesIO(d)).convert("RGB")).shape[0] for d in data)

        def sj_decode(data=data):
            return sum(simplejpeg.decode_jpeg(d, colorspace="RGB").shape[0] for d in data)

        pil, _ = _best(pil_decode, repeat)
        sj, _ = _best(sj_decode, repeat)
        rows.append(
            {
                "storage": label,
                "bytes_per_frame": round(float(np.mean([len(d) for d in data]))),
                "pillow_fps": round(len(data) / pil, 1),
                "simplejpeg_fps": round(len(data) / sj, 1),
                "ab_rms": round(ab_rms, 3),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")
    ap.add_argument("--sizes", default="64,256")
    ap.add_argument("--workers", default="0,1,2", help="DataLoader workers for the training path")
    ap.add_argument("--train-steps", type=int, default=100, help="training-path batches per run (of 8x8 frames)")
    ap.add_argument("--sources", nargs="*", default=None, help="video files (default: generated + cockatoo)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument(
        "--no-flows",
        action="store_true",
        help="skip the train+flows rows (most of the run: about 10 minutes on 2 cores)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    sizes, workers = [int(s) for s in args.sizes.split(",")], [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="vidcolor-bench-") as tmp:
        workdir = Path(tmp)
        if args.sources:
            sources = [Path(s) for s in args.sources]
        else:
            sources = make_demo_videos(workdir / "videos", videos=4, seconds=4, size=360, fps=24, seed=0)[:-1]
            if REAL.exists():
                sources.append(REAL)
        sources_desc = [f"{p.name} {probe(p).width}x{probe(p).height}" for p in sources]
        results = [
            bench_size(sources, s, workdir, args.repeat, workers, args.train_steps, not args.no_flows) for s in sizes
        ]
        codecs = codec_table(sources, max(sizes), args.repeat)
    print(f"sources: {', '.join(sources_desc)}; {os.cpu_count()} CPU cores")
    rows = [
        (
            r["size"],
            name,
            row["frames"],
            fmt(row["seconds"], 3),
            fmt(row["frames_per_s"], 1),
            fmt(row["per_worker"], 1),
            f"{row['frames_per_s'] / r['paths']['source']['frames_per_s']:.2f}x",
        )
        for r in results
        for name, row in r["paths"].items()
    ]
    print(format_table(("size", "path", "frames", "seconds", "frames/s", "per worker", "vs source"), rows))
    for r in results:
        print(f"size {r['size']}: one-time sharding {r['shard_seconds']:.1f} s")
    print(f"\nstorage choices at {max(sizes)} px (decode in one process; ab error vs the uncompressed frames):")
    print(
        format_table(
            ("storage", "bytes/frame", "Pillow frames/s", "simplejpeg frames/s", "ab RMS"),
            [
                (
                    c["storage"],
                    c["bytes_per_frame"],
                    fmt(c["pillow_fps"], 1),
                    fmt(c["simplejpeg_fps"], 1),
                    fmt(c["ab_rms"], 3),
                )
                for c in codecs
            ],
        )
    )
    top = next((r for r in results if r["size"] == max(sizes)), results[-1])
    if "speedup" in top:
        print(f"speedup (training path, one process, {top['size']} px, vs source decode): {top['speedup']:.2f}x")
    if args.json:
        write_json(
            args.json,
            {
                "benchmark": "loader",
                "speedup": top.get("speedup"),
                "size": top["size"],
                "cpu_cores": os.cpu_count(),
                "results": results,
                "codecs": codecs,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
