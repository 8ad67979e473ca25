"""The media files of Color Turing Test items: opaque copies, PNG stills, attention-check clips.

Every file a rater sees is a fresh copy under a random name with a random comment inside (mp4s
remuxed without re-encoding, PNGs re-saved with the same pixels), so no file name, URL or byte
digest tells real from colorized or names the trial. Attention checks show an obviously wrong
recoloring (channels rotated, chroma doubled). When a trial has no rendered sample media, its
clips are rendered here from its checkpoint into a temporary folder.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from models.errors import VidcolorError


def _random_name(out_dir: Path, suffix: str) -> Path:
    """A fresh path in `out_dir` named by 24 random hex digits and `suffix` (".mp4", ".png")."""
    return out_dir / f"{secrets.token_hex(12)}{suffix}"


def opaque_copy(src: str | Path, out_dir: Path) -> Path:
    """Copy an mp4 (remuxed, no re-encoding) or a PNG (re-saved, same pixels) under a random name
    with a random comment in it, so two copies of one file differ in bytes and name."""
    src = Path(src)
    if not src.is_file():
        raise VidcolorError(f"CTT media file {src} does not exist")
    if src.suffix.lower() == ".png":
        return write_png(read_png(src), out_dir)
    import av

    dst = _random_name(out_dir, ".mp4")
    tmp = out_dir / f".{dst.name}.part"
    try:
        with av.open(str(src)) as inp, av.open(str(tmp), "w", format="mp4",
                                               options={"movflags": "+faststart"}) as out:
            out.metadata["comment"] = secrets.token_hex(8)
            s_in = inp.streams.video[0]
            s_out = out.add_stream_from_template(s_in)
            for packet in inp.demux(s_in):
                if packet.dts is None:
                    continue
                packet.stream = s_out
                out.mux(packet)
        tmp.rename(dst)
    except av.error.FFmpegError as exc:
        tmp.unlink(missing_ok=True)
        raise VidcolorError(f"cannot copy CTT media {src}: {exc}") from None
    return dst


def read_png(path: str | Path) -> np.ndarray:
    """An RGB still as uint8 (H, W, 3)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise VidcolorError(f"cannot read CTT still {path}: {exc}") from None


def write_png(frame: np.ndarray, out_dir: Path) -> Path:
    """Save an RGB still under a random name, with a random text chunk (no metadata of the source)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    dst = _random_name(out_dir, ".png")
    tmp = out_dir / f".{dst.name}.part"
    meta = PngInfo()
    meta.add_text("Comment", secrets.token_hex(8))
    Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).save(tmp, format="PNG", pnginfo=meta)
    tmp.rename(dst)
    return dst


def wrong_recoloring(frame: np.ndarray) -> np.ndarray:
    """An obviously wrong recoloring for attention checks: channels rotated (R,G,B) -> (B,R,G),
    then the chroma doubled around the gray level (skin turns blue, skies turn red)."""
    rot = frame[..., [2, 0, 1]].astype(np.float32)
    gray = rot @ np.array([0.299, 0.587, 0.114], np.float32)
    return (gray[..., None] + 2.0 * (rot - gray[..., None])).clip(0, 255).astype(np.uint8)


def write_attention_clip(src: str | Path, out_dir: Path) -> Path:
    """A wrongly recolored copy of `src` (an mp4 or a PNG still; random name) for an attention check."""
    src = Path(src)
    if src.suffix.lower() == ".png":
        return write_png(wrong_recoloring(read_png(src)), out_dir)
    import av

    from study.media.video_out import VideoWriter

    try:
        with av.open(str(src)) as inp:
            stream = inp.streams.video[0]
            fps = stream.average_rate or stream.guessed_rate or 24
            frames = [f.to_ndarray(format="rgb24") for f in inp.decode(stream)]
    except av.error.FFmpegError as exc:
        raise VidcolorError(f"cannot decode CTT media {src}: {exc}") from None
    if not frames:
        raise VidcolorError(f"CTT media {src} has no frames")
    dst = _random_name(out_dir, ".mp4")
    h, w = frames[0].shape[:2]
    with VideoWriter(dst, fps, w, h) as writer:
        for f in frames:
            writer.write(wrong_recoloring(f))
    return dst


@contextmanager
def rendered_media(checkpoint: str, shards: str, split: str, clips: int, stills: bool) -> Iterator[pd.DataFrame]:
    """Render `clips` clips of `split` at a trial's checkpoint (study.media.samples) into a
    temporary folder, removed on exit; yields the files as a media table (media_type, path, video_id,
    clip, frame), mp4s or with `stills` PNG frames. On the legacy split the ground-truth side is
    the black-and-white original."""
    from study.media.samples import render_samples

    tmp = Path(tempfile.mkdtemp(prefix="vidcolor-ctt-"))
    try:
        files = render_samples(checkpoint, shards, tmp, split=split, clips=clips, png=stills)
        columns = ["media_type", "path", "video_id", "clip", "frame"]
        yield pd.DataFrame([{c: getattr(f, c) for c in columns} for f in files], columns=columns)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
