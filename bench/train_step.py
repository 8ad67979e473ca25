"""Benchmark: one training step of the colorizer (forward, rebalanced loss, backward, Adam).

Reports step time, images/s and achieved TFLOP/s (FLOPs counted by torch's FlopCounterMode on
one real step) per size and resolution. On CPU it runs fp32 only; with CUDA it also runs bf16
autocast, bf16 + channels_last and bf16 + channels_last + torch.compile, and compares TFLOP/s
with a measured dense matmul ceiling (fp32/TF32 and bf16).

    python bench/train_step.py [--sizes tiny base] [--res 64 128 256] [--threads N] [--json FILE]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.color import frames_to_lab
from models.gamut import ABGamut
from models.losses import colorization_loss, downsample_ab
from models.model import count_parameters, create_model
from models.presets import get_preset
from study.report import fmt, format_table, write_json


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_ceiling(device: torch.device, dtype: torch.dtype) -> float:
    """Measured TFLOP/s of a large square matmul (the practical peak for dense math)."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    reps = 20 if device.type == "cuda" else 3
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12


def run_case(
    size: str,
    res: int,
    batch: int,
    steps: int,
    device: torch.device,
    variant: str,
    gamut: ABGamut,
    weights: torch.Tensor,
) -> dict:
    torch.manual_seed(0)
    cfg = get_preset("exp2").replace(size=size)
    model = create_model(cfg, gamut).to(device).train()
    bf16 = variant.startswith("bf16")
    if "channels_last" in variant:
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if "compile" in variant else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    frames = torch.randint(0, 256, (batch, 1, res, res, 3), dtype=torch.uint8, device=device)
    w = weights.to(device)

    def step():
        l_norm, ab = frames_to_lab(frames)  # (B, 1, 1, H, W), (B, 1, 2, H, W)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = step_model(l_norm)
            loss, _ = colorization_loss(out, downsample_ab(ab), gamut, w, soft_k=cfg.soft_k, soft_sigma=cfg.soft_sigma)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    warmup = 3 if "compile" in variant else 1
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    sync(device)
    first = time.perf_counter() - t0
    from torch.utils.flop_counter import FlopCounterMode

    flops = None
    if "compile" not in variant:  # count on the eager model (same math)
        counter = FlopCounterMode(display=False)
        with counter:
            step()
        flops = counter.get_total_flops()
    times = []
    for _ in range(steps):
        sync(device)
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    return {
        "size": size,
        "res": res,
        "batch": batch,
        "variant": variant,
        "device": str(device),
        "params": count_parameters(model),
        "step_s": step_s,
        "images_per_s": batch / step_s,
        "warmup_s": first,
        "flops_per_step": flops,
        "tflops": flops / step_s / 1e12 if flops else None,
    }


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["tiny", "base"], choices=["tiny", "small", "base"])
    ap.add_argument("--res", nargs="+", type=int, default=[64, 128, 256])
    ap.add_argument("--batch", type=int, default=None, help="images per step (default: 8; base on CPU: 2)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: 10 GPU, 3 CPU, 2 base CPU)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    ap.add_argument(
        "--variants",
        nargs="+",
        default=None,
        help="fp32 bf16 bf16_channels_last bf16_channels_last_compile (default: all on GPU, fp32 on CPU)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads (default: torch's; use 1 on a shared machine, where OpenMP threads "
        "fighting for cores make steps 10-30x slower)",
    )
    ap.add_argument("--json", default=None, metavar="FILE")
    return ap.parse_args(argv)


def measure(args, device: torch.device, ceilings: dict[str, float]) -> list[dict]:
    """One row per (size, resolution, variant), with its speedup over fp32 at the same size and res."""
    gpu = device.type == "cuda"
    variants = args.variants or (
        ["fp32", "bf16", "bf16_channels_last", "bf16_channels_last_compile"] if gpu else ["fp32"]
    )
    gamut = ABGamut(10)
    weights = gamut.rebalance_weights(torch.softmax(torch.randn(gamut.num_bins), 0))
    rows = []
    for size in args.sizes:
        for res in args.res:
            base_cpu = size == "base" and not gpu
            batch = args.batch or (2 if base_cpu else 8)
            steps = args.steps or (10 if gpu else (2 if base_cpu else 3))
            for variant in variants:
                row = run_case(size, res, batch, steps, device, variant, gamut, weights)
                ceiling = ceilings["bf16" if variant.startswith("bf16") else "fp32"]
                row["ceiling_tflops"] = ceiling
                row["of_ceiling"] = row["tflops"] / ceiling if row["tflops"] else None
                rows.append(row)
                print(f"  {size} {res}px {variant}: {row['step_s'] * 1e3:.1f} ms/step", file=sys.stderr, flush=True)
    ref = {(r["size"], r["res"]): r["step_s"] for r in rows if r["variant"] == "fp32"}
    for r in rows:
        base = ref.get((r["size"], r["res"]))
        r["speedup"] = base / r["step_s"] if base else None
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    gpu = device.type == "cuda"
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    ceilings = {"fp32": matmul_ceiling(device, torch.float32)}
    if gpu:
        ceilings["bf16"] = matmul_ceiling(device, torch.bfloat16)
    rows = measure(args, device, ceilings)
    print(
        f"device: {device} ({torch.cuda.get_device_name(device) if gpu else platform.processor() or 'cpu'}), "
        f"threads {torch.get_num_threads()}, torch {torch.__version__}"
    )
    print("matmul ceiling TFLOP/s: " + ", ".join(f"{k} {v:.2f}" for k, v in ceilings.items()))
    print(
        format_table(
            ["size", "res", "batch", "variant", "ms/step", "img/s", "TFLOP/s", "% ceil", "speedup"],
            [
                [
                    r["size"],
                    str(r["res"]),
                    str(r["batch"]),
                    r["variant"],
                    fmt(r["step_s"] * 1e3, 1),
                    fmt(r["images_per_s"], 1),
                    fmt(r["tflops"]),
                    fmt(100 * r["of_ceiling"] if r["of_ceiling"] else None, 1),
                    fmt(r["speedup"], 2),
                ]
                for r in rows
            ],
        )
    )
    if args.json:
        write_json(
            args.json,
            {
                "device": str(device),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "ceilings_tflops": ceilings,
                "rows": rows,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
