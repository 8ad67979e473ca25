"""The media files of Color Turing Test items: both sides of every item made the same way.

Nothing in the bytes may tell the real side from the colorized one, an attention check from a
regular item, or name the trial. So every side of every item, attention checks included, goes
through `write_pair`:

- decoded and written again with the same settings (mp4s: one libx264 encode at the real side's
  frame rate, then one remux with a random comment of fixed length; PNGs: one Pillow save with a
  random text chunk of fixed length), so codec parameters and metadata are the same on both sides;
- dithered: every pixel's lowest bit flipped at random (at most one level in 255, invisible), so
  two copies of one real clip in two items differ in every byte, and no digest shows which side
  two items share;
- padded to one size: both files of an item end up exactly as long, the length rounded up to a
  bucket (`MP4_BUCKET`, `PNG_BUCKET`), with an mp4 ``free`` box or a PNG text chunk;
- named at random (24 hex digits).

Not hidden: the encoded streams' own sizes. The padding box or chunk states its length and the
mp4's sample table the bitstream's, so a script that parses the files can still compare them
(constant-bitrate encoding with filler would be needed for that).

Attention checks show an obviously wrong recoloring (channels rotated, chroma doubled). When a
trial has no rendered sample media, its clips are rendered here from its checkpoint into a
temporary folder.
"""

from __future__ import annotations

import secrets
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from models.errors import VidcolorError

MP4_BUCKET = 64 * 1024  # both sides of an mp4 item are padded to a multiple of this many bytes
PNG_BUCKET = 4 * 1024
_COMMENT_HEX = 16  # the random comment / text chunk: always this many hex digits
_PAD_KEY = "Padding"


def _random_name(out_dir: Path, suffix: str) -> Path:
    """A fresh path in `out_dir` named by 24 random hex digits and `suffix` (".mp4", ".png")."""
    return out_dir / f"{secrets.token_hex(12)}{suffix}"


def dither(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 frames with every pixel's lowest bit flipped at random (values move by at most 1)."""
    return frames ^ rng.integers(0, 2, frames.shape, dtype=np.uint8)


def read_png(path: str | Path) -> np.ndarray:
    """An RGB still as uint8 (H, W, 3)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise VidcolorError(f"cannot read CTT still {path}: {exc}") from None


def read_clip(path: str | Path) -> tuple[np.ndarray, Fraction]:
    """An mp4's frames as uint8 (N, H, W, 3) and its frame rate."""
    import av

    path = Path(path)
    if not path.is_file():
        raise VidcolorError(f"CTT media file {path} does not exist")
    try:
        with av.open(str(path)) as inp:
            stream = inp.streams.video[0]
            fps = Fraction(stream.average_rate or stream.guessed_rate or 24)
            frames = [f.to_ndarray(format="rgb24") for f in inp.decode(stream)]
    except (av.error.FFmpegError, IndexError) as exc:
        raise VidcolorError(f"cannot decode CTT media {path}: {exc}") from None
    if not frames:
        raise VidcolorError(f"CTT media {path} has no frames")
    return np.stack(frames), fps


def wrong_recoloring(frame: np.ndarray) -> np.ndarray:
    """An obviously wrong recoloring for attention checks: channels rotated (R,G,B) -> (B,R,G),
    then the chroma doubled around the gray level (skin turns blue, skies turn red)."""
    rot = frame[..., [2, 0, 1]].astype(np.float32)
    gray = rot @ np.array([0.299, 0.587, 0.114], np.float32)
    return (gray[..., None] + 2.0 * (rot - gray[..., None])).clip(0, 255).astype(np.uint8)


def _png_bytes(frame: np.ndarray, pad: int) -> bytes:
    """PNG of `frame` with a random comment and a `pad`-byte text chunk (no other metadata)."""
    import io

    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    meta = PngInfo()
    meta.add_text("Comment", secrets.token_hex(_COMMENT_HEX // 2))
    meta.add_text(_PAD_KEY, " " * pad)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).save(buf, format="PNG", pnginfo=meta)
    return buf.getvalue()


def _mp4_file(frames: np.ndarray, fps: Fraction, out_dir: Path) -> Path:
    """`frames` encoded (the H.264 writer's settings) and remuxed with a random comment."""
    import av

    from study.media.video_out import VideoWriter

    enc, dst = out_dir / f".{secrets.token_hex(8)}.enc.mp4", out_dir / f".{secrets.token_hex(8)}.mux.mp4"
    h, w = frames.shape[1:3]
    try:
        with VideoWriter(enc, fps, w, h) as writer:
            for f in frames:
                writer.write(f)
        with av.open(str(enc)) as inp, av.open(str(dst), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            out.metadata["comment"] = secrets.token_hex(_COMMENT_HEX // 2)
            s_in = inp.streams.video[0]
            s_out = out.add_stream_from_template(s_in)
            for packet in inp.demux(s_in):
                if packet.dts is None:
                    continue
                packet.stream = s_out
                out.mux(packet)
    except av.error.FFmpegError as exc:
        dst.unlink(missing_ok=True)
        raise VidcolorError(f"cannot write CTT media in {out_dir}: {exc}") from None
    finally:
        enc.unlink(missing_ok=True)
    return dst


def _bucket(size: int, bucket: int) -> int:
    return -(-size // bucket) * bucket


def write_pair(
    real: str | Path,
    fake: str | Path,
    out_dir: Path,
    rng: np.random.Generator,
    recolor: Callable[[np.ndarray], np.ndarray] | None = None,
    recolor_real: bool = False,
) -> tuple[Path, Path]:
    """(real side, colorized side) of one item, made the same way (see the module docstring):
    two mp4s or two PNGs under random names in `out_dir`, of one size. `recolor` (an attention
    check) replaces the colorized side by `recolor` of the real side (`recolor_real`) or of the
    colorized one."""
    real, fake = Path(real), Path(fake)
    for p in (real, fake):
        if not p.is_file():
            raise VidcolorError(f"CTT media file {p} does not exist")
    still = real.suffix.lower() == ".png"
    if still != (fake.suffix.lower() == ".png"):
        raise VidcolorError(f"CTT pair {real} / {fake}: one still and one clip")
    if still:
        sides, fps = [read_png(real)[None], read_png(fake)[None]], None
    else:
        (r, fps), (f, _) = read_clip(real), read_clip(fake)
        sides = [r, f]
    if recolor is not None:
        sides[1] = np.stack([recolor(x) for x in sides[0 if recolor_real else 1]])
    if sides[0].shape != sides[1].shape:
        raise VidcolorError(f"CTT pair {real} / {fake}: sizes differ ({sides[0].shape} vs {sides[1].shape})")
    sides = [dither(x, rng) for x in sides]
    if still:
        bare = [len(_png_bytes(x[0], 0)) for x in sides]
        target = _bucket(max(bare), PNG_BUCKET)
        blobs = [_png_bytes(x[0], target - b) for x, b in zip(sides, bare)]
        paths = []
        for blob in blobs:
            dst = _random_name(out_dir, ".png")
            dst.write_bytes(blob)
            paths.append(dst)
        return paths[0], paths[1]
    files = [_mp4_file(x, fps, out_dir) for x in sides]
    target = _bucket(max(p.stat().st_size for p in files) + 8, MP4_BUCKET)
    paths = []
    for tmp in files:
        pad = target - tmp.stat().st_size  # >= 8: a top-level `free` box, which players skip
        with tmp.open("ab") as fh:
            fh.write(struct.pack(">I4s", pad, b"free") + bytes(pad - 8))
        dst = _random_name(out_dir, ".mp4")
        tmp.rename(dst)
        paths.append(dst)
    return paths[0], paths[1]


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
