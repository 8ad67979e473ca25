"""Benchmark of `vidcolor colorize`: frames/s at a 256 px working size for 360p and 720p input.

Frames: ``../shared/data/cockatoo.mp4`` beside the checkout (1280x720; 640x360 by resizing) when
it exists, otherwise generated gray frames with structure and noise. Per input size:

- ``model``: `FilmInference.colorize` on frames already in memory (full-res L -> working size ->
  net -> annealed mean -> ab upsampled -> Lab -> RGB uint8), batched (``--batch-size``) and frame
  by frame (batch 1); ``speedup`` = batched / frame by frame.
- ``end to end``: the whole command on an H.264 file of those frames (decode thread, model,
  encode thread with the command's default libx264 settings), batched.
- ``decode only`` / ``encode only``: the same file's decode, and the encode of its frames.

Every measure runs once per round, and the best of ``--repeat`` rounds is kept (this machine is
shared). Like the command, the benchmark sets OpenMP's passive wait policy before torch loads
(`study.colorize.share_cores_with_codecs`); ``--spin-wait`` leaves OpenMP's default, to compare.

Each row also gives the CPU time per frame (all threads of the process, ``core-ms/frame``). On a
machine where decode, model and encode share the same cores, overlapping them cannot beat
``bound`` = cores / (the three stages' core-ms per frame), nor the slowest stage: the table
states that bound beside ``e2e / model`` (the issue's ratio) so that what is lost to the overlap
(``e2e / bound``) is told apart from what the cores cannot give.

On CUDA the net runs in bf16 autocast and the full-resolution color work on the GPU; on CPU in
float32 with OpenCV. Without ``--checkpoint`` an untrained model of ``--model-size`` is used
(speed does not depend on the weights).

    python bench/colorize.py [--json FILE] [--device cpu|cuda] [--frames N] [--model-size tiny]
"""

# ruff: noqa: E402  (the wait policy is set before torch and the modules that import it)

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from study.colorize import share_cores_with_codecs

# as `vidcolor colorize` does, before torch loads (--spin-wait: OpenMP's default, to compare)
PASSIVE = "--spin-wait" not in sys.argv and share_cores_with_codecs()

import cv2
import numpy as np
import torch

from data_shards.video import iter_frames_tolerant, probe
from models.gamut import ABGamut
from models.model import create_model
from models.presets import get_preset
from study.colorize.inference import FilmInference
from study.colorize.pipeline import colorize_source
from study.devices import resolve_device
from study.media import ENCODER_PRESET
from study.media.video_out import VideoWriter, write_video
from study.report import format_table, write_json

INPUTS = {"360p": (640, 360), "720p": (1280, 720)}
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "cockatoo.mp4"  # beside the checkout


def synthetic_frames(n: int, width: int, height: int) -> np.ndarray:
    """Gray frames with structure (a moving gradient and noise), uint8 (n, H, W, 3)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        g = 128 + 60 * np.sin(xx / 37 + i / 3) * np.cos(yy / 23) + rng.normal(0, 8, (height, width))
        out[i] = np.clip(g, 0, 255).astype(np.uint8)[..., None]
    return out


def input_frames(n: int, width: int, height: int) -> tuple[np.ndarray, str]:
    """``n`` frames at width x height: the real clip's (looped, resized) or generated ones."""
    if not REAL.exists():
        return synthetic_frames(n, width, height), "generated"
    frames = []
    while len(frames) < n:
        for f in iter_frames_tolerant(probe(REAL)):
            if f is not None and len(frames) < n:
                f = (
                    f
                    if f.shape[:2] == (height, width)
                    else cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
                )
                frames.append(cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB))
    return np.stack(frames), f"{REAL.name} (made gray)"


class Clock:
    """Wall seconds and process CPU seconds (every thread) of one block."""

    def __enter__(self) -> Clock:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.t, self.cpu = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.wall, self.cpu = time.perf_counter() - self.t, _cpu() - self.cpu


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def best(runs: list[Clock]) -> Clock:
    return min(runs, key=lambda c: c.wall)


def build(args, device: torch.device) -> tuple[FilmInference, str]:
    """The model under test: a trained checkpoint, or an untrained ``--preset`` of ``--model-size``."""
    if args.checkpoint:
        colorizer = FilmInference.from_checkpoint(args.checkpoint, device=str(device), size=args.size)
        return colorizer, f"{colorizer.model.config.name}/{colorizer.model.config.size} ({args.checkpoint})"
    torch.manual_seed(0)
    config = get_preset(args.preset).replace(size=args.model_size)
    colorizer = FilmInference(
        create_model(config, ABGamut(10)), temperature=config.temperature, size=args.size, device=device
    )
    return colorizer, f"{args.preset}/{args.model_size}"


def model_run(colorizer: FilmInference, frames: np.ndarray, batch_size: int) -> Clock:
    colorizer.reset()
    with Clock() as c:
        for i in range(0, len(frames), batch_size):
            colorizer.colorize(frames[i : i + batch_size])
    return c


def measure(colorizer: FilmInference, label: str, size: tuple[int, int], args) -> tuple[list[dict], dict]:
    w, h = size
    frames, origin = input_frames(args.frames, w, h)
    n = len(frames)
    runs: dict[tuple[str, str], list[Clock]] = {}
    colorizer.colorize(frames[: args.batch_size])  # warm-up (allocator, oneDNN/cuDNN plans, buffers)
    with tempfile.TemporaryDirectory() as tmp:
        src = write_video(Path(tmp) / "in.mp4", list(frames), fps=24)
        # every measure once per round, best of ``--repeat`` rounds: this machine is shared, and the
        # ratios compare measures taken seconds apart rather than a minute apart
        for _ in range(args.repeat):
            runs.setdefault(("model", "batched"), []).append(model_run(colorizer, frames, args.batch_size))
            runs.setdefault(("model", "frame by frame"), []).append(model_run(colorizer, frames, 1))
            if args.skip_file:
                continue
            with Clock() as c:
                count = sum(1 for f in iter_frames_tolerant(probe(src)) if f is not None)
            assert count == n, (count, n)
            runs.setdefault(("decode only", "-"), []).append(c)
            with Clock() as c, VideoWriter(Path(tmp) / "enc.mp4", 24, w, h, preset=ENCODER_PRESET) as writer:
                for f in frames:
                    writer.write(f)
            runs.setdefault(("encode only", "-"), []).append(c)
            with Clock() as c:
                result = colorize_source(
                    colorizer, probe(src), Path(tmp) / "out.mp4", batch_size=args.batch_size, progress=False
                )
            assert result.frames == n, (result.frames, n)
            runs.setdefault(("end to end", "batched"), []).append(c)
    clocks = {key: best(c) for key, c in runs.items()}
    rows = [
        {
            "input": label,
            "width": w,
            "height": h,
            "frames_from": origin,
            "measure": m,
            "mode": mode,
            "batch_size": args.batch_size if mode == "batched" else (1 if mode != "-" else None),
            "frames": n,
            "seconds": round(c.wall, 3),
            "fps": round(n / c.wall, 2),
            "core_ms_per_frame": round(1000 * c.cpu / n, 1),
        }
        for (m, mode), c in clocks.items()
    ]
    fps = {(r["measure"], r["mode"]): r["fps"] for r in rows}
    core_ms = {(r["measure"], r["mode"]): r["core_ms_per_frame"] for r in rows}
    summary = {"speedup": round(fps["model", "batched"] / fps["model", "frame by frame"], 2)}
    if not args.skip_file:
        stages = [("model", "batched"), ("decode only", "-"), ("encode only", "-")]
        bound = min([os.cpu_count() * 1000 / sum(core_ms[s] for s in stages)] + [fps[s] for s in stages])
        e2e = fps["end to end", "batched"]
        summary.update(
            {
                "e2e_over_model": round(e2e / fps["model", "batched"], 2),
                "bound_fps": round(bound, 2),
                "e2e_over_bound": round(e2e / bound, 2),
            }
        )
    return rows, summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", default=None, metavar="FILE")
    p.add_argument("--device", default=None)
    p.add_argument("--frames", type=int, default=None, help="frames per measurement (default 64 CPU, 256 GPU)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeat", type=int, default=5, help="rounds of every measure; the best of each is kept")
    p.add_argument("--size", type=int, default=256, help="working size (short side, default 256)")
    p.add_argument("--model-size", default="tiny", choices=("tiny", "small", "base"))
    p.add_argument("--preset", default="exp1", help="exp1 (image model) or exp5 (ConvLSTM)")
    p.add_argument("--checkpoint", default=None, help="use a trained checkpoint instead")
    p.add_argument(
        "--spin-wait",
        action="store_true",
        help="leave OpenMP's waiting threads spinning (its default) instead of the command's passive policy",
    )
    p.add_argument("--skip-file", action="store_true", help="skip the decode/encode/end-to-end measurements")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    args.frames = args.frames or (256 if device.type == "cuda" else 64)
    colorizer, model_name = build(args, device)
    precision = "bf16 autocast" if colorizer.autocast else "fp32"
    rows, summaries = [], {}
    for label, size in INPUTS.items():
        r, summaries[label] = measure(colorizer, label, size, args)
        rows += r

    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(
        f"colorize benchmark: model {model_name}, working size {args.size}, {precision} on {device} "
        f"({dev_name}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
        f"OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset (spinning)')}); "
        f"frames from {rows[0]['frames_from']}"
    )
    head = ("input", "measure", "mode", "batch", "frames", "seconds", "frames/s", "core-ms/frame")
    print(
        format_table(
            head,
            [
                (
                    r["input"],
                    r["measure"],
                    r["mode"],
                    r["batch_size"],
                    r["frames"],
                    r["seconds"],
                    r["fps"],
                    r["core_ms_per_frame"],
                )
                for r in rows
            ],
            digits=2,
        )
    )
    for label, s in summaries.items():
        line = f"{label}: batched / frame by frame (model) {s['speedup']:.2f}x"
        if "e2e_over_model" in s:
            line += (
                f"; end to end / model {s['e2e_over_model']:.2f}; bound on these cores {s['bound_fps']:.1f} "
                f"frames/s, end to end / bound {s['e2e_over_bound']:.2f}"
            )
        print(line)
    if args.json:
        write_json(
            args.json,
            {
                "device": str(device),
                "device_name": dev_name,
                "precision": precision,
                "model": model_name,
                "working_size": args.size,
                "cpu_cores": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                "rows": rows,
                "speedup": {k: s["speedup"] for k, s in summaries.items()},
                "summary": summaries,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
