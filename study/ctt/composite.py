"""What a rater's browser gets for an item: one file with both sides drawn into it.

A Color Turing Test item has two files (the real and the colorized side, `study.ctt.clips`); a
pairwise one has two trials' colorizations. Sending them as two files lets a script compare the
files (sizes, encoded-stream statistics, which one loads first) instead of looking. So the rater
server sends one composite per item: both sides side by side in the same frames, a gray gap
between, encoded together, with the side each one is on drawn per session (`real_on_left`, from
the session's own seed). And encoded so that the bytes depend on the frame size alone: stills as
stored (uncompressed) PNGs, clips as H.264 at a constant bitrate with filler, every frame the same
number of bytes (`study.media.video_out.VideoWriter`'s ``cbr_bits_per_pixel``). Two items of one
size, real or colorized on either side, attention check or not, are files of the same length and
structure: nothing outside the pixels tells them apart. An item shown alone (a 1-5 rating) goes
through the same encoder.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import secrets
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from study.ctt.clips import read_clip, read_png

GAP = 8  # px of mid gray between the two sides
GAP_LEVEL = 128


def real_on_left(seed: str, uid: str) -> bool:
    """Which side the first file of item `uid` is drawn on in the session with `seed`: an HMAC bit,
    unguessable without the seed (which never leaves the server) and the same on every reload."""
    return bool(hmac.new(seed.encode(), uid.encode(), hashlib.sha256).digest()[0] & 1)


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W, 3) frames of one size as (..., H, W + GAP + W, 3) with a gray gap."""
    if left.shape != right.shape:
        raise ValueError(f"the two sides differ in shape: {left.shape} and {right.shape}")
    gap = np.full((*left.shape[:-2], GAP, 3), GAP_LEVEL, np.uint8)
    return np.concatenate([left, gap, right], axis=-2)


#: the composites' H.264 bits per pixel per frame, at constant bitrate: generous (streaming sites use
#: about 0.1), so the rater judges colour, not compression
CBR_BITS_PER_PIXEL = 0.6


def png_bytes(frame: np.ndarray, compress: bool = False) -> bytes:
    """PNG of a uint8 RGB frame; without `compress` stored (zlib level 0): its size is fixed by the
    frame's size alone, whatever it shows."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buf, format="PNG", compress_level=6 if compress else 0)
    return buf.getvalue()


def mp4_file(frames: np.ndarray, fps: Fraction, path: Path) -> None:
    """H.264 at constant bitrate with filler (every frame the same number of bytes)."""
    from study.media.video_out import VideoWriter

    height, width = frames.shape[1:3]
    size = (width + width % 2, height + height % 2)
    with VideoWriter(path, fps, *size, cbr_bits_per_pixel=CBR_BITS_PER_PIXEL) as writer:
        for frame in frames:
            if width % 2 or height % 2:
                frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
            writer.write(np.ascontiguousarray(frame))


def render(paths: list[str], medium: str, out: Path) -> Path:
    """The composite of `paths` (left to right; one path: the item alone) into `out` (.png or .mp4),
    written under a name of its own and moved there whole."""
    tmp = out.with_name(f".{out.stem}-{secrets.token_hex(6)}{out.suffix}")
    if medium == "frame":
        frames = [read_png(p) for p in paths]
        tmp.write_bytes(png_bytes(frames[0] if len(frames) == 1 else side_by_side(*frames)))
    else:
        clips = [read_clip(p) for p in paths]
        fps = clips[0][1]
        n = min(len(c[0]) for c in clips)
        frames = clips[0][0][:n] if len(clips) == 1 else side_by_side(clips[0][0][:n], clips[1][0][:n])
        mp4_file(frames, fps, tmp)
    os.replace(tmp, out)
    return out


class CompositeCache:
    """Composites on disk under `root`, made once per (item, arrangement) and kept: a key names its
    file by a digest, so the name tells nothing either."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._salt = secrets.token_hex(16)  # per server: names of one run say nothing about another
        self._lock = threading.Lock()
        self._making: dict[str, threading.Lock] = {}

    def get(self, key: str, paths: list[str], medium: str) -> Path:
        """The composite's file, made on the first call; callers of one key at once (two raters on
        the same item) wait for one encode instead of each making it."""
        name = hashlib.sha256(f"{self._salt}:{key}".encode()).hexdigest()[:32]
        out = self.root / f"{name}.{'png' if medium == 'frame' else 'mp4'}"
        if out.is_file():
            return out
        with self._lock:
            making = self._making.setdefault(name, threading.Lock())
        with making:
            if not out.is_file():
                render(paths, medium, out)
        return out
