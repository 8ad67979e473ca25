"""Evaluate a colorizer on a shard split: per-video metrics, and `vidcolor evaluate`.

`evaluate_model` is the validation step of the training loop (every epoch, on every Ray Train rank)
and the core of `vidcolor evaluate CKPT --shards DIR [--split test] [--json FILE]`. The model sees
the ground truth's L; its final logits (the ConvLSTM's when the model is temporal) are decoded by
the annealed mean of Zhang et al. (2016) at temperature T and upsampled to the frame size; the
metrics of `study.evaluation.metrics` compare the result with the true frames, per video.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from models.color import frames_to_lab
from models.errors import VidcolorError
from study.evaluation.metrics import METRICS, VideoMetrics

log = logging.getLogger(__name__)

TABLE_COLUMNS = ("rmse_rgb", "rmse_ab", "psnr", "colorfulness_ratio", "temporal_error")


def final_logits(out: Any) -> torch.Tensor:
    """The logits a model's colors come from (B, T, Q, h, w): the sequence head's when it has one,
    else ab_logits (the rule of `models.model.final_logits`, for any output with those fields)."""
    seq = getattr(out, "seq_logits", None)
    return seq if seq is not None else out.ab_logits


@torch.no_grad()
def predict_ab(model: torch.nn.Module, gamut: Any, frames: torch.Tensor, temperature: float,
               state: Any = None) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Colorize uint8 frames (B, T, H, W, 3) on their device: (l_norm (B, T, 1, H, W), predicted ab
    (B, T, 2, H, W) at full size, the model's recurrent state). L comes from the frames themselves.

    A VideoColorizer or Ensemble (also inside DDP) decodes with its own `predict_ab` (same annealed
    mean as `gamut.decode`, and it pads sizes that are not a multiple of 8); any other module
    returning ColorizerOutput-like fields goes through `final_logits` and `gamut.decode`.
    """
    l_norm, _ = frames_to_lab(frames)  # (B, T, 1, H, W)
    B, T, _, H, W = l_norm.shape
    inner = getattr(model, "module", model)  # DistributedDataParallel keeps the model in .module
    if hasattr(inner, "predict_ab"):
        ab, state = inner.predict_ab(l_norm, temperature=temperature, state=state)
        return l_norm, ab.float(), state
    out = model(l_norm, state)
    logits = final_logits(out)  # (B, T, Q, h, w)
    ab = gamut.decode(logits.flatten(0, 1).float(), temperature=temperature)  # (B*T, 2, h, w)
    ab = F.interpolate(ab, size=(H, W), mode="bilinear", align_corners=False)  # (B*T, 2, H, W)
    return l_norm, ab.view(B, T, 2, H, W), getattr(out, "state", None)


def evaluate_model(model: torch.nn.Module, gamut: Any, loader: Iterable[Mapping[str, Any]], temperature: float,
                   device: str | torch.device, *, amp_dtype: torch.dtype | None = None,
                   max_batches: int | None = None, progress: bool = False) -> dict[str, Any]:
    """One pass over an eval loader (`data_shards.reader.eval_loader` batches: frames uint8
    (B, T, H, W, 3), video_id, start, valid) -> `VideoMetrics.results()`:
    {"videos": [per-video dict], "mean": {metric: value}, "num_videos", "num_frames"}, plus "seconds".

    Each window is colorized on its own (a temporal model starts from an empty state per window, as
    in training). Under torch.distributed every rank must call it (same number of batches, which
    eval_loader guarantees); the ranks' per-video sums are gathered so every rank returns the same
    results. The model is put in eval mode and back in its previous mode afterwards.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    acc = VideoMetrics()
    t0 = time.perf_counter()
    batches = loader
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        batches = tqdm(loader, desc="evaluate", unit="batch")
    try:
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            frames = batch["frames"].to(device, non_blocking=True)  # uint8 (B, T, H, W, 3)
            valid = batch.get("valid")
            if valid is not None and not bool(torch.as_tensor(valid).any()):
                continue  # a padding batch: every rank still walked through it
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                _, ab, _ = predict_ab(model, gamut, frames, temperature)
            acc.update_frames(list(batch["video_id"]), batch["start"], frames, ab.float(), valid)
    finally:
        model.train(was_training)
    if torch.distributed.is_available() and torch.distributed.is_initialized() \
            and torch.distributed.get_world_size() > 1:
        states: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(states, acc.state())
        acc = VideoMetrics.merge(states)
    results = acc.results()
    results["seconds"] = time.perf_counter() - t0
    return results


# -- output for people and files ------------------------------------------------------------------

def json_ready(obj: Any) -> Any:
    """NaN/inf -> None (strict JSON), recursively."""
    if isinstance(obj, Mapping):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def format_table(results: Mapping[str, Any], columns: Iterable[str] = TABLE_COLUMNS) -> str:
    """The per-video table with a final `mean` row (means over videos)."""
    columns = list(columns)
    head = ["video", "frames", *columns]
    rows = [[str(v["video_id"]), str(v["frames"]), *(_fmt(v[c]) for c in columns)] for v in results["videos"]]
    rows.append(["mean", str(results["num_frames"]), *(_fmt(results["mean"][c]) for c in columns)])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(head), sep, *(line(r) for r in rows[:-1]), sep, line(rows[-1])])


def _fmt(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def default_device(name: str | None) -> torch.device:
    if name:
        try:
            device = torch.device(name)
        except RuntimeError as exc:
            raise VidcolorError(f"--device: {exc}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise VidcolorError(f"--device {name}: CUDA is not available on this machine")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_split(manifest: Mapping[str, Any], split: str, where: str) -> None:
    """Refuse a split the shard set does not have (naming the ones it has)."""
    splits = manifest.get("splits", {})
    if split not in splits or not splits[split].get("shards"):
        have = ", ".join(sorted(k for k, v in splits.items() if v.get("shards"))) or "none"
        raise VidcolorError(f"shard set {where} has no {split!r} split (it has: {have})")


def main(args: argparse.Namespace) -> int:
    """`vidcolor evaluate CKPT --shards DIR [--split test] [--json FILE] [--device D] [--batch-size N]`."""
    from data_shards.reader import ShardSet, eval_loader  # noqa: PLC0415
    from models.checkpoint import load_checkpoint  # noqa: PLC0415

    if args.batch_size < 1:
        raise VidcolorError(f"--batch-size must be at least 1, got {args.batch_size}")
    device = default_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device=str(device))
    shards = ShardSet(args.shards)
    check_split(shards.manifest, args.split, args.shards)
    window = getattr(ckpt.config, "window", 1)
    loader = eval_loader(shards, split=args.split, window=window, batch_size=args.batch_size)
    temperature = float(ckpt.config.temperature)
    amp = torch.bfloat16 if device.type == "cuda" else None
    log.info("evaluating %s on %s split %r (window %d, T=%.2f, %s)", args.checkpoint, args.shards, args.split,
             window, temperature, device)
    results = evaluate_model(ckpt.model, ckpt.gamut, loader, temperature, device, amp_dtype=amp, progress=True)
    if results["num_videos"] == 0:
        raise VidcolorError(f"split {args.split!r} of {args.shards} yielded no frames")
    print(f"{args.checkpoint} on {args.split} ({results['num_videos']} videos, {results['num_frames']} frames, "
          f"T={temperature:g}, {results['seconds']:.1f} s)")
    print(format_table(results))
    if args.json:
        doc = {"checkpoint": str(args.checkpoint), "shards": str(args.shards), "split": args.split,
               "temperature": temperature, "device": str(device), "config": ckpt.config.to_dict(),
               "metrics": {k: {"better": v} for k, v in METRICS.items()}, **results}
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(json_ready(doc), indent=2, default=str) + "\n")
        print(f"wrote {path}")
    return 0
