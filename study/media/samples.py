"""Sample media of a trial: a few validation clips rendered at a checkpoint, for the dashboard.

For each chosen clip (one per video first, in the split's order) the checkpoint's colorizer sees
the ground truth's L and the whole clip as one sequence (a temporal model carries its ConvLSTM
state through it). The gray input, the prediction and the ground truth side by side are what the
dashboard shows and what the Color Turing Test (``study.ctt``; the colorization Turing test of
Zhang et al., "Colorful Image Colorization", ECCV 2016) asks raters about. Written per clip, in
`OUT/{video_id}_c{clip:05d}/`:

- ``gray.mp4``, ``pred.mp4``, ``gt.mp4``: browser-playable H.264 (study.media.video_out.VideoWriter);
- ``{frame:03d}_gray.png``, ``{frame:03d}_pred.png``, ``{frame:03d}_gt.png`` per frame (frame =
  index within the clip), for the dashboard's frame slider.

Media types in the results store (`MediaFile.media_type`): gray_png, pred_png, gt_png, gray_mp4,
pred_mp4, gt_mp4.

While a trial trains, `EpochMedia` renders the same clips' predicted frames every k-th epoch (a
study's ``media_every``) from the weights of that epoch, for the dashboard's epoch slider:
``DIR/e{epoch:04d}/{video_id}_c{clip:05d}/{frame:03d}_pred.png``, the first such epoch with the gray
and ground-truth frames beside them, and ``DIR/e{epoch:04d}/media.json`` (written last) listing
that epoch's files with their epoch (`epoch_files` reads it back for the results store).
"""

from __future__ import annotations

import json
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
from study.devices import resolve_device
from study.evaluation.evaluate import colorize_frames, open_split
from study.media.video_out import VideoWriter

log = logging.getLogger(__name__)

ROLES = ("gray", "pred", "gt")
DEFAULT_FPS = 12.0


@dataclass(frozen=True)
class MediaFile:
    """One rendered file, as the results store records it (`register_media`)."""

    media_type: str  # {role}_png or {role}_mp4
    path: str
    video_id: str
    clip: int
    frame: int | None = None  # index within the clip for PNGs
    epoch: int | None = None  # the epoch whose weights rendered it; None: rendered at the end


@dataclass(frozen=True)
class Clip:
    """A stored clip of a shard split, with its frames."""

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


def render_clip(
    model: torch.nn.Module,
    clip: Clip,
    temperature: float,
    device: torch.device,
    out_dir: Path,
    fps: float,
    png: bool = True,
) -> list[MediaFile]:
    """Gray / prediction / ground truth of one clip as mp4s (and PNG frames); returns the files.
    The model is put in eval mode."""
    frames = clip.frames.to(device).unsqueeze(0)  # (1, T, H, W, 3)
    model.eval()
    l_norm, ab = colorize_frames(model, frames, temperature)
    views = {
        "gray": lab_to_frames(l_norm, torch.zeros_like(ab))[0],  # (T, H, W, 3)
        "pred": lab_to_frames(l_norm, ab)[0],
        "gt": frames[0],
    }
    folder = out_dir / f"{clip.video_id}_c{clip.clip:05d}"
    folder.mkdir(parents=True, exist_ok=True)
    files: list[MediaFile] = []
    for role in ROLES:
        files += _write_view(views[role].cpu().numpy(), role, clip, folder, fps, png)
    return files


def _write_pngs(seq: np.ndarray, role: str, clip: Clip, folder: Path, epoch: int | None = None) -> list[MediaFile]:
    """One view (uint8 (T, H, W, 3)) as ``{t:03d}_{role}.png`` per frame."""
    files = []
    for t in range(seq.shape[0]):
        path = folder / f"{t:03d}_{role}.png"
        Image.fromarray(np.ascontiguousarray(seq[t])).save(path)
        files.append(MediaFile(f"{role}_png", str(path), clip.video_id, clip.clip, t, epoch))
    return files


def _write_view(seq: np.ndarray, role: str, clip: Clip, folder: Path, fps: float, png: bool) -> list[MediaFile]:
    """One view (uint8 (T, H, W, 3)) as ``{role}.mp4`` and, with `png`, ``{t:03d}_{role}.png``."""
    T, H, W = seq.shape[:3]
    files: list[MediaFile] = _write_pngs(seq, role, clip, folder) if png else []
    path = folder / f"{role}.mp4"
    with VideoWriter(path, fps, W, H) as writer:
        for t in range(T):
            writer.write(np.ascontiguousarray(seq[t]))
    files.append(MediaFile(f"{role}_mp4", str(path), clip.video_id, clip.clip))
    return files


def _video_fps(manifest: Mapping[str, Any]) -> dict[str, float]:
    """video id -> its frame rate (the video's, else the shard set's)."""
    out = {}
    for v in manifest.get("videos", []):
        fps = v.get("fps") or manifest.get("fps")
        if v.get("id") is not None and fps:
            out[str(v["id"])] = float(fps)
    return out


def render_samples(
    checkpoint: str | os.PathLike,
    shards: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    split: str = "val",
    clips: int = 2,
    device: str | torch.device | None = None,
    png: bool = True,
) -> list[MediaFile]:
    """Render `clips` clips of `split` at the checkpoint into `out_dir` on `device` (default the
    first GPU, else the CPU); returns the files (`register_media` puts them in the results store)."""
    from data_shards.reader import eval_loader
    from models.checkpoint import load_checkpoint

    if clips < 1:
        raise VidcolorError(f"clips must be at least 1, got {clips}")
    device = resolve_device(None if device is None else str(device))
    ckpt = load_checkpoint(checkpoint, device=device)
    shard_set = open_split(shards, split)
    clip_len = int(shard_set.clip_len)
    chosen = pick_clips(eval_loader(shard_set, split=split, window=clip_len, batch_size=1), clips, clip_len)
    if not chosen:
        raise VidcolorError(f"split {split!r} of {shards} has no clips to render")
    fps = _video_fps(shard_set.manifest)
    out = Path(out_dir)
    files: list[MediaFile] = []
    temperature = float(ckpt.config.temperature)
    for clip in chosen:
        files += render_clip(ckpt.model, clip, temperature, device, out, fps.get(clip.video_id, DEFAULT_FPS), png=png)
    log.info("rendered %d clips (%d files) of %s at %s into %s", len(chosen), len(files), split, checkpoint, out)
    return files


EPOCH_INDEX = "media.json"  # an epoch folder's list of files, written last


@dataclass
class EpochMedia:
    """Sample frames rendered while a run trains: every `every` epochs (and at its last) the
    predicted frames of `clips` validation clips, the same clips each time (module docstring).
    Built by the training loop's rank 0 from the loop config's ``media``: ``{"dir", "every",
    "clips"}``."""

    dir: str
    every: int
    clips: int = 2
    _chosen: list[Clip] | None = None
    _references: bool = False  # gray and ground truth written (once per run)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> EpochMedia | None:
        if not config or not config.get("dir") or int(config.get("every") or 0) < 1 or int(config.get("clips", 0)) < 1:
            return None
        return cls(str(config["dir"]), int(config["every"]), int(config["clips"]))

    def due(self, epoch: int, last: int) -> bool:
        """Whether `epoch` (1-based) renders: every `every`-th, and the run's last."""
        return epoch % self.every == 0 or epoch == last

    def chosen(self, shard_set: Any, split: str) -> list[Clip]:
        if self._chosen is None:
            from data_shards.reader import eval_loader

            clip_len = int(shard_set.clip_len)
            batches = eval_loader(shard_set, split=split, window=clip_len, batch_size=1)
            self._chosen = pick_clips(batches, self.clips, clip_len)
        return self._chosen

    @torch.no_grad()
    def render(
        self, model: torch.nn.Module, shard_set: Any, split: str, epoch: int, temperature: float, device
    ) -> list[MediaFile]:
        """Render the chosen clips at these weights into ``DIR/e{epoch:04d}/``; returns the files.
        The model is left in the mode it was in."""
        folder = Path(self.dir) / f"e{epoch:04d}"
        files: list[MediaFile] = []
        was_training = model.training
        model.eval()
        try:
            for clip in self.chosen(shard_set, split):
                frames = clip.frames.to(device).unsqueeze(0)
                l_norm, ab = colorize_frames(model, frames, temperature)
                out = folder / f"{clip.video_id}_c{clip.clip:05d}"
                out.mkdir(parents=True, exist_ok=True)
                files += _write_pngs(lab_to_frames(l_norm, ab)[0].cpu().numpy(), "pred", clip, out, epoch)
                if not self._references:
                    gray = lab_to_frames(l_norm, torch.zeros_like(ab))[0].cpu().numpy()
                    files += _write_pngs(gray, "gray", clip, out, epoch)
                    files += _write_pngs(frames[0].cpu().numpy(), "gt", clip, out, epoch)
        finally:
            model.train(was_training)
        self._references = True
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (EPOCH_INDEX + ".tmp")
        tmp.write_text(json.dumps([asdict(f) for f in files]))
        tmp.replace(folder / EPOCH_INDEX)
        return files


def epoch_files(folder: str | os.PathLike, epoch: int) -> list[MediaFile]:
    """The files an `EpochMedia` rendered at `epoch` under `folder` (its ``dir``), from the epoch's
    index; none when that epoch rendered nothing there (or on another machine)."""
    index = Path(folder) / f"e{int(epoch):04d}" / EPOCH_INDEX
    try:
        items = json.loads(index.read_text())
    except (OSError, ValueError):
        return []
    return [MediaFile(**item) for item in items if isinstance(item, dict)]


def register_media(store: Any, study: str, trial_id: str, files: Iterable[MediaFile]) -> int:
    """Record rendered files as a trial's media in the results store (`study.store.Store`, one
    transaction); returns how many rows were added."""
    return store.add_media_many(study, trial_id, [asdict(f) for f in files])
