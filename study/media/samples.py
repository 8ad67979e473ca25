"""Sample media of a trial: a few validation clips rendered at a checkpoint, for the dashboard.

For each chosen clip (one per video first, in the split's order) the checkpoint's colorizer sees
the ground truth's L and the whole clip as one sequence (a temporal model carries its ConvLSTM
state through it). Written per clip, in `OUT/{video_id}_c{clip:05d}/`:

- ``gray.mp4``, ``pred.mp4``, ``gt.mp4``: browser-playable H.264 (study.video_out.VideoWriter);
- ``{frame:03d}_gray.png``, ``{frame:03d}_pred.png``, ``{frame:03d}_gt.png`` per frame (frame =
  index within the clip), for the dashboard's frame slider.

Kinds in the results store: gray_png, pred_png, gt_png, gray_mp4, pred_mp4, gt_mp4.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from models.color import lab_to_frames
from models.errors import VidcolorError
from study.evaluation.evaluate import check_split, default_device, predict_ab
from study.media.video_out import VideoWriter

log = logging.getLogger(__name__)

ROLES = ("gray", "pred", "gt")
DEFAULT_FPS = 12.0


@dataclass(frozen=True)
class MediaFile:
    kind: str  # {role}_png or {role}_mp4
    path: str
    video_id: str
    clip: int
    frame: int | None = None  # index within the clip for PNGs


@dataclass(frozen=True)
class Clip:
    video_id: str
    clip: int  # index of the stored clip in its video (start // clip_len)
    start: int  # first frame's index in the video
    frames: torch.Tensor  # uint8 (T, H, W, 3)


def pick_clips(batches: Iterable[Mapping[str, Any]], count: int, clip_len: int) -> list[Clip]:
    """Up to `count` clips from eval_loader batches (windows of clip_len frames): the first clip of
    each video in order, then further clips of the same videos if there are fewer videos."""
    chosen: list[Clip] = []
    spare: list[Clip] = []
    videos: set[str] = set()
    for batch in batches:
        valid = batch.get("valid")
        for b, vid in enumerate(batch["video_id"]):
            if valid is not None and not bool(valid[b]):
                continue
            start = int(batch["start"][b])
            clip = Clip(str(vid), start // max(clip_len, 1), start, batch["frames"][b].clone())
            if clip.video_id not in videos:
                videos.add(clip.video_id)
                chosen.append(clip)
            elif len(spare) < count:
                spare.append(clip)
            if len(chosen) >= count:
                return chosen
    return (chosen + spare)[:count]


def render_clip(model: torch.nn.Module, gamut: Any, clip: Clip, temperature: float, device: torch.device,
                out_dir: Path, fps: float, png: bool = True) -> list[MediaFile]:
    """Gray / prediction / ground truth of one clip as mp4s (and PNG frames); returns the files."""
    frames = clip.frames.to(device).unsqueeze(0)  # (1, T, H, W, 3)
    model.eval()
    l_norm, ab, _ = predict_ab(model, gamut, frames, temperature)
    views = {
        "gray": lab_to_frames(l_norm, torch.zeros_like(ab))[0],  # (T, H, W, 3)
        "pred": lab_to_frames(l_norm, ab)[0],
        "gt": frames[0],
    }
    folder = out_dir / f"{clip.video_id}_c{clip.clip:05d}"
    folder.mkdir(parents=True, exist_ok=True)
    files: list[MediaFile] = []
    T, H, W = frames.shape[1:4]
    for role in ROLES:
        seq = views[role].cpu().numpy()  # uint8 (T, H, W, 3)
        if png:
            for t in range(T):
                path = folder / f"{t:03d}_{role}.png"
                Image.fromarray(np.ascontiguousarray(seq[t])).save(path)
                files.append(MediaFile(f"{role}_png", str(path), clip.video_id, clip.clip, t))
        path = folder / f"{role}.mp4"
        with VideoWriter(path, fps, W, H) as writer:
            for t in range(T):
                writer.write(np.ascontiguousarray(seq[t]))
        files.append(MediaFile(f"{role}_mp4", str(path), clip.video_id, clip.clip))
    return files


def _video_fps(manifest: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for v in manifest.get("videos", []):
        fps = v.get("fps") or manifest.get("fps")
        if v.get("id") is not None and fps:
            out[str(v["id"])] = float(fps)
    return out


def render_samples(checkpoint: str | os.PathLike, shards: str | os.PathLike, out_dir: str | os.PathLike, *,
                   split: str = "val", clips: int = 2, device: str | torch.device | None = None,
                   store: Any = None, study: str | None = None, trial_id: str | None = None,
                   png: bool = True) -> list[MediaFile]:
    """Render `clips` clips of `split` at the checkpoint into `out_dir`; with `store`, `study` and
    `trial_id` also register every file in the results store (one transaction). Returns the files.
    """
    from data_shards.reader import ShardSet, eval_loader  # noqa: PLC0415
    from models.checkpoint import load_checkpoint  # noqa: PLC0415

    if clips < 1:
        raise VidcolorError(f"clips must be at least 1, got {clips}")
    if store is not None and (study is None or trial_id is None):
        raise VidcolorError("render_samples: registering media needs both study and trial_id")
    device = default_device(str(device) if device is not None else None)
    ckpt = load_checkpoint(checkpoint, device=str(device))
    shard_set = ShardSet(str(shards))
    check_split(shard_set.manifest, split, str(shards))
    clip_len = int(shard_set.clip_len)
    fps = _video_fps(shard_set.manifest)
    loader = eval_loader(shard_set, split=split, window=clip_len, batch_size=1)
    chosen = pick_clips(loader, clips, clip_len)
    if not chosen:
        raise VidcolorError(f"split {split!r} of {shards} has no clips to render")
    out = Path(out_dir)
    files: list[MediaFile] = []
    temperature = float(ckpt.config.temperature)
    for clip in chosen:
        files += render_clip(ckpt.model, ckpt.gamut, clip, temperature, device, out,
                             fps.get(clip.video_id, DEFAULT_FPS), png=png)
    log.info("rendered %d clips (%d files) of %s at %s into %s", len(chosen), len(files), split, checkpoint, out)
    if store is not None:
        store.add_media_many(study, trial_id, [asdict(f) for f in files])
    return files

