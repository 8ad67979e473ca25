"""The worker side of `vidcolor shard`: one source decoded and cut into clips in a staging tar.

A worker (one of ``--jobs`` threads) decodes one source once (strictly, through
`data_shards.video.decode_frames`), resized to the square ``--size`` and picked down to
``--fps``, and cuts the stored frames into clips of ``--clip-len`` consecutive frames at the
positions `data_shards.manifest.clip_starts` gives (the last clip aligned to the video's end, so
no frame is lost). Each clip is encoded straight into the source's staging tar; the worker
returns what the manifest needs, the source's ab histogram and its perceptual fingerprint
(`data_shards.fingerprint`, from a few of the same stored frames, so the writer finds copies of
one video). `data_shards.writer` then copies the staged clips into the split shards without
re-encoding.
"""

from __future__ import annotations

import io
import logging
import tarfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import webdataset as wds
from PIL import Image

from data_shards import manifest as mf
from data_shards import stats
from data_shards.fingerprint import FrameSampler
from data_shards.video import FramePicker, decode_frames, probe, upscale_note
from models.errors import VidcolorError

log = logging.getLogger(__name__)

JPEG_QUALITY = 95


def encode_frame(frame: np.ndarray, lossless: bool) -> tuple[str, bytes]:
    """uint8 (H, W, 3) -> (extension, bytes): PNG, or JPEG q95 with 4:4:4 chroma (keeps ab sharp)."""
    buf = io.BytesIO()
    if lossless:
        Image.fromarray(frame).save(buf, format="PNG", compress_level=1)
        return "png", buf.getvalue()
    Image.fromarray(frame).save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return "jpg", buf.getvalue()


def process_source(task: dict[str, Any], progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Decode one source into a staging tar of clips; never raises (errors come back as ``reason``).

    ``task``: ``index, id, path, size, clip_len, fps, lossless, staging`` (the tar to write).
    Returns ``index, id, source, reason`` and, on success, ``fps, width, height, has_audio,
    frames, clips [{start, frame_indices}], hist, grayscale, tone, fingerprint`` (a
    `data_shards.fingerprint.Fingerprint` of the stored frames)."""
    path = Path(task["path"])
    result: dict[str, Any] = {"index": task["index"], "id": task["id"], "source": str(path), "reason": None}
    try:
        info = probe(path)
        picker = FramePicker(info.fps, task["fps"])
        result.update(fps=picker.out_fps, width=info.width, height=info.height, has_audio=info.has_audio)
        if note := upscale_note(path, info.width, info.height, task["size"]):
            log.warning("%s", note)
        frames = decode_frames(info, task["size"], keep=picker.take)
        sampler = FrameSampler()
        with wds.TarWriter(task["staging"], encoder=False, mtime=int(time.time())) as tar:
            n, clips, hist = _write_clips(tar, frames, task, progress, sampler)
        tone = stats.tone(hist)
        result.update(
            frames=n, clips=clips, hist=hist, grayscale=tone != "color", tone=tone, fingerprint=sampler.fingerprint()
        )
    except VidcolorError as exc:
        result["reason"] = str(exc)
    except (av.FFmpegError, OSError, ValueError, RuntimeError) as exc:  # anything a bad file can raise
        log.debug("failed on %s", path, exc_info=True)
        result["reason"] = f"{path}: {type(exc).__name__}: {exc}"
    if result["reason"]:
        Path(task["staging"]).unlink(missing_ok=True)
    return result


def _write_clips(
    tar,
    frames: Iterator[tuple[int, np.ndarray]],
    task: dict[str, Any],
    progress: Callable[[int], None] | None,
    sampler: FrameSampler | None = None,
) -> tuple[int, list[dict[str, Any]], np.ndarray]:
    """Cut ``(source_index, frame)`` into clips written to ``tar``: (stored frames, clips, ab histogram).
    Each stored frame is also handed to ``sampler`` (the fingerprint's).

    While streaming, a clip is written at every multiple of ``clip_len``; at the end the last of
    `clip_starts` is written too when the stream did not already (the tail, overlapping the
    clip before). Each frame is counted once in the histogram, overlap or not."""
    clip_len = task["clip_len"]
    hist = stats.empty_histogram()
    window: deque[tuple[int, np.ndarray]] = deque(maxlen=clip_len)  # the last clip_len frames
    fresh: list[np.ndarray] = []  # frames not yet counted in the histogram
    clips: list[dict[str, Any]] = []

    def write_clip(start: int) -> None:
        sample = {"__key__": f"{task['id']}_clip{len(clips):05d}"}
        for j, (_, frame) in enumerate(window):
            ext, data = encode_frame(frame, task["lossless"])
            sample[f"{j:03d}.{ext}"] = data
        tar.write(sample)
        clips.append({"start": start, "frame_indices": [i for i, _ in window]})
        np.add(hist, stats.frames_histogram(np.stack(fresh)), out=hist)
        if progress:
            progress(len(fresh))
        fresh.clear()

    n = 0
    for n, (index, frame) in enumerate(frames, 1):
        window.append((index, frame))
        fresh.append(frame)
        if sampler is not None:
            sampler.add(frame)
        if n % clip_len == 0:
            write_clip(n - clip_len)
    starts = mf.clip_starts(n, clip_len)
    if not starts:
        raise VidcolorError(f"{task['path']}: too short, {n} frames is less than one clip of {clip_len}")
    if starts[-1] != clips[-1]["start"]:
        write_clip(starts[-1])
    return n, clips, hist


def read_staging(path: str | Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {member: bytes}) in tar order from a staging tar `process_source` wrote."""
    key, members = None, {}
    with tarfile.open(path) as tar:
        for info in tar:
            base, ext = info.name.split(".", 1)
            if key is not None and base != key:
                yield key, members
                members = {}
            key = base
            members[ext] = tar.extractfile(info).read()
    if key is not None:
        yield key, members
