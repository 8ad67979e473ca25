"""Evaluate a colorizer on a shard split: per-video metrics, and `vidcolor evaluate`.

`evaluate_model` is the validation step of the training loop (every epoch, on every Ray Train
rank) and the core of `evaluate_checkpoint`, which `vidcolor evaluate CKPT --shards DIR
[--split test] [--json FILE]` and `vidcolor experiments` run. The model sees the ground truth's L;
its colors come from `models.model.Predictor.predict_ab` (the annealed mean of Zhang et al.,
"Colorful Image Colorization", ECCV 2016, at temperature T, upsampled to the frame size), and the
metrics of `study.evaluation.metrics` compare them with the true frames, per video, as the seed
paper (Sahay and Choudhary, "Automatic Colorization of Videos") reports its RMSE.

Every evaluation also scores the gray prediction (ab = 0 with the true L: the input as a user sees
it) on the same frames, so a number has a reference: the results' ``gray`` section, and each
video's ``rmse_ratio`` = model rmse_rgb / gray rmse_rgb (below 1 beats doing nothing) and
``added_warp`` / ``added_cdc`` = model warp_error (cdc) / the gray's - 1 (the flicker the color adds).

Every model is scored on the same frames: `clip_loader` reads whole clips (the shard set's
``clip_len`` frames) whatever the model's window, and `colorize_frames` carries a temporal model's
state through each clip as ``vidcolor colorize`` carries it through a film, so a context model's
first frames are scored too and trials of any ``seq_len`` are ranked on one set of frames. Each
clip starts from an empty state (and a fresh `--stabilize` filter), so the pair metrics
(temporal_error, warp_error, cdc, and the added_* of the model and the gray rows alike) pair only
frames of the same clip: the restart between two clips of a video, which colorize never makes
inside a film, is not scored as the model's flicker.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from data_shards import outdir
from models.checkpoint import load_checkpoint, unwrap
from models.color import denormalize_l, frames_to_lab
from models.errors import VidcolorError
from models.gamut import check_temperature
from models.model import Predictor
from models.stabilize import check_strength, stabilize_clip
from study.devices import autocast_dtype, resolve_device
from study.evaluation.metrics import METRICS, FlowCache, VideoMetrics
from study.remote import local_checkpoint
from study.report import fmt, format_table, write_json

log = logging.getLogger(__name__)

#: the printed table's columns (rmse_ab and the rest are in --json); it fits 120 columns
TABLE_COLUMNS = (
    "rmse_rgb",
    "psnr",
    "ssim",
    "colorfulness_ratio",
    "colorfulness_gap",
    "temporal_error",
    "warp_error",
    "added_warp",
    "cdc",
    "added_cdc",
    "rmse_ratio",
)
#: short headers, so the table fits 120 columns (the others are the metric's name)
TABLE_HEADERS = {
    "colorfulness_ratio": "cf_ratio",
    "colorfulness_gap": "cf_gap",
    "temporal_error": "temporal",
    "warp_error": "warp",
    "added_warp": "+warp",
    "added_cdc": "+cdc",
    "rmse_ratio": "rmse/gray",
}
TABLE_LEGEND = (
    "cf_ratio = colorfulness_ratio (prediction / truth), cf_gap = |cf_ratio - 1|, temporal = temporal_error,\n"
    "warp = warp_error (Lai et al. 2018), cdc = color distribution consistency (TCVC), +warp / +cdc = warp (cdc)\n"
    "over the gray row's on the same frames - 1 (the flicker the color adds), rmse/gray = rmse_rgb / the gray\n"
    "row's; gray (ab=0) = the true L without color: the input as a user sees it"
)
EVAL_CALL_FRAMES = 64  # frames per model call when a batch of clips is colorized (clips x frames of each)
_SIGNIFICANT = {"cdc", "warp_error"}  # small numbers: 3 significant digits, not 3 decimals
GRAY = "gray (ab=0)"
TRUTH = "truth (true ab)"


@torch.no_grad()
def colorize_frames(
    model: torch.nn.Module, frames: torch.Tensor, temperature: float, call_frames: int = EVAL_CALL_FRAMES
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 frames (B, T, H, W, 3) -> (l_norm (B, T, 1, H, W), predicted ab float32 (B, T, 2, H, W)).

    L comes from the frames themselves; the colors from the model's `predict_ab` (a VideoColorizer
    or Ensemble, also inside DDP). Each of the B sequences starts from an empty temporal state,
    which is carried through its T frames: the model is called on runs of about ``call_frames``
    frames (B x a few time steps) in order, passing the state on, as `vidcolor colorize` does."""
    predictor = unwrap(model)
    if not isinstance(predictor, Predictor):
        raise VidcolorError(f"colorize: expected a VideoColorizer or Ensemble, got {type(predictor).__name__}")
    l_norm, _ = frames_to_lab(frames)
    steps = max(1, call_frames // max(1, l_norm.shape[0]))
    state, parts = None, []
    for part in l_norm.split(steps, dim=1):
        ab, state = predictor.predict_ab(part, temperature=temperature, state=state)
        parts.append(ab)
    return l_norm, torch.cat(parts, dim=1)


def evaluate_model(
    model: torch.nn.Module,
    loader: Iterable[Mapping[str, Any]],
    temperature: float,
    device: str | torch.device,
    *,
    amp_dtype: torch.dtype | None = None,
    max_batches: int | None = None,
    progress: bool = False,
    baseline: VideoMetrics | None = None,
    stabilize: float | None = None,
    truth: bool = False,
) -> dict[str, Any]:
    """One pass over an eval loader (`clip_loader` batches: frames uint8
    (B, T, H, W, 3), video_id, start, valid) -> `VideoMetrics.results()`:
    {"videos": [per-video dict], "mean": {metric: value}, "num_videos", "num_frames"}, plus "seconds"
    and "gray": {"videos", "mean"}, the same metrics of the gray prediction (ab = 0) of the same
    frames. Each model row and the model mean carry rmse_ratio (rmse_rgb / the gray rmse_rgb of the
    video; the mean is the mean of the videos' ratios) and added_warp / added_cdc (warp_error, cdc
    over the gray's, minus 1); the gray rows have 1 and 0 there. ``baseline``: the gray
    accumulator of the same loader and ``max_batches`` from `gray_baseline` (the training loop
    computes it once and reuses it every epoch); None computes it in this pass. ``stabilize``: the
    strength of the `--stabilize` filter applied to each clip's predicted ab (`stabilize_clip`, flow
    from the clip's own L, a fresh filter per clip as the model's state is), None for none.
    ``truth``: also "truth": {"videos", "mean"}, the metrics of the ground truth's own ab on the same
    frames and pairs (RMSE 0, colorfulness ratio 1; its added_warp / added_cdc are the flicker that
    correct colour adds to the gray input's: the scale a model's are read against).

    Each window (a whole clip from `clip_loader`) is colorized in order with the temporal state
    carried through it (`colorize_frames`), from an empty state per window. Under
    torch.distributed every rank must call it (same number of batches, which eval_loader
    guarantees); the ranks' per-video sums are gathered so every rank returns the same results.
    The model is put in eval mode and back in its previous mode afterwards.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    flows = FlowCache()  # the ground truth's flows serve both accumulators
    acc, gray = VideoMetrics(flows), (VideoMetrics(flows) if baseline is None else None)
    true = VideoMetrics(flows) if truth else None
    t0 = time.perf_counter()
    if progress:
        from tqdm import tqdm

        loader = tqdm(loader, desc="evaluate", unit="batch")
    try:
        for batch, valid in _scored_batches(loader, max_batches):
            frames = batch["frames"].to(device, non_blocking=True)  # uint8 (B, T, H, W, 3)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                l_norm, ab = colorize_frames(model, frames, temperature)
            if stabilize is not None:
                ab = stabilize_clips(l_norm, ab, stabilize)
            runs = batch["start"]  # each clip was colorized from an empty state: its frames are a run
            for ids, starts, part in _time_chunks(batch):  # the metrics' float64 work a few frames at a time
                acc.update_frames(ids, starts, frames[:, part], ab[:, part], valid, runs)
                if gray is not None:
                    gray.update_frames(ids, starts, frames[:, part], torch.zeros_like(ab[:, part]), valid, runs)
                if true is not None:
                    true.update_frames(ids, starts, frames[:, part], frames_to_lab(frames[:, part])[1], valid, runs)
            flows.clear()
    finally:
        model.train(was_training)
    acc, gray = _gather(acc), (_gather(gray) if baseline is None else baseline)
    results = acc.results(baseline=gray)
    gray_results = gray.results(baseline=gray)
    results["gray"] = {"videos": gray_results["videos"], "mean": gray_results["mean"]}
    if true is not None:
        true_results = _gather(true).results(baseline=gray)
        results["truth"] = {"videos": true_results["videos"], "mean": true_results["mean"]}
    results["seconds"] = time.perf_counter() - t0
    return results


def stabilize_clips(l_norm: torch.Tensor, ab: torch.Tensor, strength: float) -> torch.Tensor:
    """Each clip's predicted ab (B, T, 2, H, W) through the --stabilize filter, its flow computed
    on the clip's 8-bit L (l_norm (B, T, 1, H, W)), as `vidcolor colorize --stabilize` does."""
    gray = (denormalize_l(l_norm[:, :, 0].float()) * (255.0 / 100.0)).round().clamp(0, 255).to(torch.uint8).cpu()
    out = [stabilize_clip(g, a.float().cpu(), strength) for g, a in zip(gray, ab)]
    return torch.stack(out).to(ab.device)


@torch.no_grad()
def gray_baseline(loader: Iterable[Mapping[str, Any]], *, max_batches: int | None = None) -> VideoMetrics:
    """The gray prediction's (ab = 0) accumulator over an eval loader, merged over ranks (every
    rank must call it): `evaluate_model`'s ``baseline``. It depends on the frames only."""
    gray = VideoMetrics()
    for batch, valid in _scored_batches(loader, max_batches):
        for ids, starts, part in _time_chunks(batch):
            frames = batch["frames"][:, part]
            zeros = torch.zeros((*frames.shape[:2], 2, *frames.shape[2:4]), dtype=torch.float32)
            gray.update_frames(ids, starts, frames, zeros, valid, batch["start"])
    return _gather(gray)


def _time_chunks(batch: Mapping[str, Any]):
    """(video ids, start of each window's part, time slice) of a batch's windows cut along time into
    parts of about EVAL_CALL_FRAMES frames in all (B windows x a few time steps): the metrics of a
    batch of whole clips need not hold every frame of it in float64 at once."""
    ids, starts = list(batch["video_id"]), torch.as_tensor(batch["start"])
    b, t = batch["frames"].shape[:2]
    steps = max(1, EVAL_CALL_FRAMES // max(1, b))
    for t0 in range(0, t, steps):
        yield ids, starts + t0, slice(t0, t0 + steps)


def _scored_batches(loader: Iterable[Mapping[str, Any]], max_batches: int | None):
    """(batch, its ``valid`` mask or None) for the first ``max_batches`` batches, without the all-padding
    ones (every rank still walks through those, so the ranks stay in step)."""
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            return
        valid = batch.get("valid")
        if valid is None or bool(torch.as_tensor(valid).any()):
            yield batch, valid


def _gather(acc: VideoMetrics) -> VideoMetrics:
    """The per-video sums of every rank merged (the accumulator itself outside torch.distributed)."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return acc
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, acc.state())
    return VideoMetrics.merge(states)


def clip_loader(shards, split: str, batch_size: int, rank: int = 0, world_size: int = 1):
    """`data_shards.reader.eval_loader` over whole clips (window = the shard set's ``clip_len``), so
    the frames scored depend on the shard set only, never on a model's window (``seq_len``): every
    model of a study, and the gray baseline, are scored on the same frames."""
    from data_shards.reader import ShardSet, eval_loader

    shard_set = shards if isinstance(shards, ShardSet) else ShardSet(str(shards))
    return eval_loader(
        shard_set, split=split, window=shard_set.clip_len, batch_size=batch_size, rank=rank, world_size=world_size
    )


def open_split(shards: str | os.PathLike, split: str):
    """The shard set at `shards` (a `data_shards.reader.ShardSet`), refused when it has no
    `split` (the error names the splits it has)."""
    from data_shards.reader import ShardSet

    shard_set = ShardSet(str(shards))
    splits = shard_set.manifest.get("splits", {})
    if split not in splits or not splits[split].get("shards"):
        have = ", ".join(sorted(k for k, v in splits.items() if v.get("shards"))) or "none"
        raise VidcolorError(f"shard set {shards} has no {split!r} split (it has: {have})")
    return shard_set


def size_warning(checkpoint, frame_size: int | None, shards, shards_size: int) -> str | None:
    """The warning for a checkpoint trained at another frame size than the shard set's (None when
    they agree, or the checkpoint does not record it). Legitimate (how does a model do at other
    sizes?), but easy to do by mistake, so `vidcolor evaluate` says it."""
    if frame_size is None or frame_size == shards_size:
        return None
    return (
        f"{checkpoint} was trained at frame size {frame_size} px but the shard set {shards} is "
        f"{shards_size} px; the metrics are for {shards_size} px frames"
    )


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    shards: str | os.PathLike,
    split: str = "test",
    *,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    progress: bool = False,
    verify: bool = False,
    temperature: float | None = None,
    stabilize: float | None = None,
) -> dict[str, Any]:
    """`evaluate_model` of a checkpoint folder on a split of a shard set, on `device` (default the
    first GPU, else the CPU; bf16 autocast on a GPU). Returns the document `vidcolor evaluate
    --json` writes: checkpoint, shards, split, temperature, device, config, metrics (which way is
    better) and the results of `evaluate_model`, plus ``expected_frames`` (what the manifest
    promises), ``incomplete`` (the eval loader's ``shortfalls``: each shard, or the split, that
    yielded less; empty when complete), ``verified`` and ``warnings`` (`size_warning`).
    ``verify``: check the split's shard checksums first (`ShardSet.verify`; an error names each
    damaged shard). ``temperature``: the annealed-mean T to decode with (default: the checkpoint's).
    ``batch_size``: clips per batch (`clip_loader`: every frame of the split's whole clips,
    whatever the model's window).
    ``stabilize``: the `--stabilize` strength (None: off), recorded in the document."""
    if batch_size < 1:
        raise VidcolorError(f"--batch-size must be at least 1, got {batch_size}")
    if stabilize is not None:
        stabilize = check_strength(stabilize, "--stabilize")
    if temperature is not None:
        check_temperature(temperature)
    device = resolve_device(device)
    with local_checkpoint(checkpoint) as folder:  # a URI (e.g. s3://, under Ray's storage) is fetched
        ckpt = load_checkpoint(folder, device=device)
    shard_set = open_split(shards, split)
    if verify:
        shard_set.verify(split)
    warnings = [msg] if (msg := size_warning(checkpoint, ckpt.frame_size, shards, shard_set.size)) else []
    temperature = float(ckpt.config.temperature if temperature is None else temperature)
    clips = shard_set.manifest["splits"][split].get("clips")
    if isinstance(clips, int) and not isinstance(clips, bool) and 0 < clips < batch_size:
        # each batch is padded to batch_size clips: --batch-size 1000000000 would allocate that many
        log.debug("--batch-size %d: the split has %d clips; batches of %d", batch_size, clips, clips)
        batch_size = clips
    loader = clip_loader(shard_set, split, batch_size)
    window = loader.window
    log.info(
        "evaluating %s on %s split %r (clips of %d, T=%.2f, %s)", checkpoint, shards, split, window, temperature, device
    )
    results = evaluate_model(
        ckpt.model,
        loader,
        temperature,
        device,
        amp_dtype=autocast_dtype(device),
        progress=progress,
        stabilize=stabilize,
        truth=True,
    )
    if results["num_videos"] == 0:
        damage = "; ".join(s["message"] for s in loader.shortfalls)
        raise VidcolorError(f"split {split!r} of {shards} yielded no frames{': ' + damage if damage else ''}")
    return {
        "checkpoint": str(checkpoint),
        "shards": str(shards),
        "split": split,
        "temperature": temperature,
        "stabilize": stabilize,
        "device": str(device),
        "config": ckpt.config.to_dict(),
        "metrics": {k: {"better": v} for k, v in METRICS.items()},
        **results,
        "expected_frames": loader.expected_windows * window,
        "incomplete": loader.shortfalls,
        "verified": verify,
        "warnings": warnings,
    }


def video_table(results: Mapping[str, Any], columns: Iterable[str] = TABLE_COLUMNS) -> str:
    """The per-video table of `evaluate_model` results, with a final `mean` row (means over videos)
    and, when the results have a gray (truth) section, a `gray (ab=0)` (`truth (true ab)`) row of its
    means. Headers are
    shortened as TABLE_HEADERS says; a metric a result lacks is shown as ``-``."""
    columns = list(columns)

    def cells(values: Mapping[str, Any]) -> list[Any]:
        return [fmt(values.get(c), 3, style="g") if c in _SIGNIFICANT else values.get(c) for c in columns]

    rows = [[str(v["video_id"]), v["frames"], *cells(v)] for v in results["videos"]]
    footer = [["mean", results["num_frames"], *cells(results["mean"])]]
    if "gray" in results:
        footer.append([GRAY, results["num_frames"], *cells(results["gray"]["mean"])])
    if "truth" in results:
        footer.append([TRUTH, results["num_frames"], *cells(results["truth"]["mean"])])
    return format_table(["video", "frames", *(TABLE_HEADERS.get(c, c) for c in columns)], rows, footer=footer)


def main(args: argparse.Namespace) -> int:
    """`vidcolor evaluate CKPT --shards DIR [--split test] [--json FILE] [--device D] [--batch-size N]
    [--temperature T] [--stabilize [STRENGTH]]`."""
    if args.json:  # before the work, which a bad path would otherwise lose
        outdir.check_file(args.json, "--json", getattr(args, "overwrite", False))
    doc = evaluate_checkpoint(
        args.checkpoint,
        args.shards,
        args.split,
        batch_size=args.batch_size,
        device=args.device,
        progress=True,
        verify=getattr(args, "verify", False),
        temperature=getattr(args, "temperature", None),
        stabilize=getattr(args, "stabilize", None),
    )
    stabilized = "" if doc["stabilize"] is None else f", --stabilize {doc['stabilize']:g}"
    print(
        f"{args.checkpoint} on {args.split} ({doc['num_videos']} videos, {doc['num_frames']} frames, "
        f"T={doc['temperature']:g}{stabilized}, {doc['seconds']:.1f} s)"
    )
    print(video_table(doc))
    print(TABLE_LEGEND)
    for msg in doc["warnings"]:
        print(f"warning: {msg}", file=sys.stderr)
    if args.json:
        print(f"wrote {write_json(args.json, doc)}")
    for item in doc["incomplete"]:  # damaged data: metrics of part of the split must not pass for all of it
        print(f"warning: {item['message']}", file=sys.stderr)
    if doc["incomplete"]:
        print(
            f"warning: these metrics cover {doc['num_frames']} of the {doc['expected_frames']} frames of "
            f"split {args.split!r}; exit status 1",
            file=sys.stderr,
        )
        return 1
    return 0
