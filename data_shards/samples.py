"""One shard sample (a clip) read back: its frame members, its json, its frames decoded and checked.

Anything wrong with a sample (a missing member, bad json, an unreadable image, a frame of the
wrong size) is a ValueError naming the sample and shard, which the loaders hand to `CORRUPT`:
counted, logged and skipped. `collate` stacks loaded windows into a batch.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import numpy as np
import simplejpeg
import torch
from PIL import Image

log = logging.getLogger(__name__)


class CorruptCounter:
    """Corrupt samples seen by this process (each DataLoader worker counts its own and logs them)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, exn: BaseException) -> bool:  # a WebDataset handler: True = skip and go on
        self.count += 1
        log.warning("skipped corrupt shard data (%d so far): %s", self.count, exn)
        return True


CORRUPT = CorruptCounter()


def frame_members(sample: dict[str, Any], clip_len: int) -> list[str]:
    """The member names of a clip's ``clip_len`` frames (``000.jpg ...`` or ``000.png ...``), all present."""
    ext = "png" if "000.png" in sample else "jpg"
    names = [f"{j:03d}.{ext}" for j in range(clip_len)]
    missing = [n for n in names if n not in sample]
    if missing or "json" not in sample:
        raise ValueError(
            f"sample {sample.get('__key__')} in {sample.get('__url__')}: missing {', '.join(missing[:3] or ['json'])}"
        )
    return names


def clip_meta(sample: dict[str, Any]) -> dict[str, Any]:
    """The sample's json (``video_id, start, ...``), checked for the fields the loaders use."""
    try:
        meta = json.loads(sample["json"])
        int(meta["start"]), str(meta["video_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"sample {sample.get('__key__')} in {sample.get('__url__')}: bad json ({exc})") from None
    return meta


def decode_frame(sample: dict[str, Any], name: str, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """Member ``name`` as uint8 (size, size, 3) RGB, decoded into ``out`` when given (a C-contiguous
    (size, size, 3) slot of a batch: no copy afterwards).

    JPEG goes through libjpeg-turbo's own API (simplejpeg): about twice Pillow's frames/s on the
    shards' 4:4:4 q95 frames, and strict, so damaged entropy-coded data is an error rather than a
    frame with gray blocks. PNG (``--lossless`` shards) goes through Pillow."""
    data = sample[name]
    try:
        if simplejpeg.is_jpeg(data):
            height, width, _, _ = simplejpeg.decode_jpeg_header(data)
            if (height, width) == (size, size):
                return simplejpeg.decode_jpeg(data, colorspace="RGB", buffer=out)
            frame = np.empty((height, width, 3), np.uint8)  # reported below
        else:
            with Image.open(io.BytesIO(data)) as im:
                frame = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as exc:
        raise ValueError(
            f"sample {sample.get('__key__')} member {name} in {sample.get('__url__')}: not a readable image ({exc})"
        ) from None
    if frame.shape != (size, size, 3):
        raise ValueError(
            f"sample {sample.get('__key__')} member {name}: {frame.shape[1]}x{frame.shape[0]}, expected {size}x{size}"
        )
    if out is not None:
        out[...] = frame
        return out
    return frame


def stack_frames(frames: list[np.ndarray]) -> np.ndarray:
    """(S, H, W, 3); a single frame becomes a view instead of a copy (the batch stack copies anyway)."""
    return frames[0][None] if len(frames) == 1 else np.stack(frames)


def collate(items: list[tuple[np.ndarray, str, int]]) -> dict[str, Any]:
    """(frames, video_id, start) windows -> ``{"frames": uint8 (B, S, H, W, 3), "video_id", "start"}``."""
    return {
        "frames": torch.from_numpy(np.stack([f for f, _, _ in items])),  # (B, S, H, W, 3) uint8
        "video_id": [v for _, v, _ in items],
        "start": torch.tensor([s for _, _, s in items], dtype=torch.int64),
    }
