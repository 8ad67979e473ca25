"""Read source videos: probe and decode video files (PyAV) and DAVIS-style frame folders.

A *source* is one video: either a file FFmpeg can decode, or a folder of numbered frames
(``00000.jpg, 00001.jpg, ...`` as in DAVIS ``JPEGImages/480p/<sequence>/``). Frames come out as
numpy ``uint8 (H, W, 3)`` RGB, optionally resized (short side to ``size``, then a center crop to
``size x size``) and resampled to a lower frame rate by picking frames.

Frames come out upright: a display matrix (phones store portrait video as landscape pixels plus
a rotation) is applied, so ``width``/``height`` are the displayed size. A still image that
FFmpeg would open as a one-frame "video" (a PNG or JPEG renamed ``.mp4``) is refused as such.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np
from PIL import Image

from models.errors import VidcolorError

log = logging.getLogger(__name__)

VIDEO_EXTS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts",
                        ".mts", ".m2ts", ".flv", ".wmv", ".ogv", ".3gp", ".gif", ".y4m"})
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
FOLDER_FPS = 24.0  # frame folders carry no rate; DAVIS sequences are 24 fps
_NUMBER = re.compile(r"(\d+)")


@dataclass(frozen=True)
class VideoInfo:
    frames: int  # frames in the source (as declared by the container; decoded count for folders)
    fps: float
    width: int
    height: int
    has_audio: bool
    rotation: int = 0  # degrees counter-clockwise (0, 90, 180, 270) applied to get upright frames
    rate: Fraction | None = None  # the exact frame rate (e.g. 30000/1001; FOLDER_FPS for folders)
    frames_exact: bool = True  # False when `frames` is only estimated from a duration


def is_frame_folder(path: Path) -> bool:
    """A folder that directly holds image files (the DAVIS layout)."""
    path = Path(path)
    return path.is_dir() and any(p.suffix.lower() in IMAGE_EXTS for p in path.iterdir() if p.is_file())


def _frame_number(p: Path) -> int | None:
    nums = _NUMBER.findall(p.stem)
    return int(nums[-1]) if nums else None


def frame_files(folder: Path) -> list[Path]:
    """The numbered frames of a folder in order; raises if any file is not a numbered image."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    frames = []
    for p in files:
        if p.suffix.lower() not in IMAGE_EXTS:
            raise VidcolorError(f"{p}: not an image file inside frame folder {folder}")
        number = _frame_number(p)
        if number is None:
            raise VidcolorError(f"{p}: frame file name has no frame number")
        frames.append((number, p.name, p))
    if not frames:
        raise VidcolorError(f"{folder}: frame folder holds no images")
    frames.sort()
    numbers = [n for n, _, _ in frames]
    if len(set(numbers)) != len(numbers):
        dup = next(n for n in numbers if numbers.count(n) > 1)
        raise VidcolorError(f"{folder}: two files carry frame number {dup}")
    return [p for _, _, p in frames]


def numbering_gaps(files: list[Path]) -> list[tuple[int, int]]:
    """Runs of frame numbers missing from an ordered frame list: [(first_missing, last_missing)]."""
    numbers = [_frame_number(p) for p in files]
    return [(a + 1, b - 1) for a, b in zip(numbers, numbers[1:]) if b - a > 1]


def warn_numbering_gaps(folder: Path, files: list[Path]) -> int:
    """Log the frames missing from a folder's numbering (they are not invented); returns how many."""
    gaps = numbering_gaps(files)
    if gaps:
        missing = sum(b - a + 1 for a, b in gaps)
        runs = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in gaps[:5]) + (", ..." if len(gaps) > 5 else "")
        log.warning("%s: %d frame number(s) missing (%s); the frames present are used as consecutive",
                    folder, missing, runs)
        return missing
    return 0


def open_video(path: Path):
    """An av container with a video stream, or a VidcolorError naming the file and the reason."""
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        reason = "empty file (0 bytes)" if path.is_file() and path.stat().st_size == 0 else f"not a readable video ({exc})"
        raise VidcolorError(f"{path}: {reason}") from None
    if not container.streams.video:
        container.close()
        raise VidcolorError(f"{path}: has no video stream")
    still = still_image_format(container)
    if still:
        container.close()
        raise VidcolorError(f"{path}: is a still image ({still}), not a video; put numbered images in a "
                            "folder to use them as frames")
    return container


def still_image_format(container) -> str | None:
    """The image codec name when FFmpeg opened a single still image (``png_pipe``, ``image2``, ...)."""
    name = container.format.name or ""
    if name == "image2" or name.endswith("_pipe"):
        return container.streams.video[0].codec_context.name or name
    return None


def rotation_of(vframe) -> int:
    """Counter-clockwise rotation (0/90/180/270) a decoded frame's display matrix asks for."""
    try:
        return int(round(float(vframe.rotation) / 90.0)) % 4 * 90
    except (AttributeError, TypeError, ValueError):
        return 0


def upright(frame: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a display rotation (degrees counter-clockwise, multiple of 90) to an (H, W, C) array."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(frame, k)) if k else frame


def first_frame_rotation(path: Path, container) -> int:
    """Display rotation of a video, read from its first decodable frame (0 when none decodes)."""
    try:
        for vframe in container.decode(container.streams.video[0]):
            return rotation_of(vframe)
    except av.FFmpegError as exc:
        log.debug("%s: no frame decodes while probing the rotation (%s)", path, exc)
    return 0


def probe(path: str | Path) -> VideoInfo:
    """Frame count, rate and size of a video file or frame folder, without decoding frames."""
    path = Path(path)
    if not path.exists():
        raise VidcolorError(f"{path}: no such file or folder")
    if path.is_dir():
        files = frame_files(path)
        warn_numbering_gaps(path, files)
        width, height = _image_size(files[0])
        for p in files[1:]:
            size = _image_size(p)
            if size != (width, height):
                raise VidcolorError(f"{p}: frame size {size[0]}x{size[1]} differs from the folder's "
                                    f"first frame {files[0].name} ({width}x{height})")
        return VideoInfo(len(files), FOLDER_FPS, width, height, False,
                         rate=Fraction(FOLDER_FPS).limit_denominator(1001))
    container = open_video(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if fps <= 0:
            raise VidcolorError(f"{path}: video stream has no frame rate")
        frames = int(stream.frames or 0)
        exact = frames > 0
        if frames == 0 and stream.duration and stream.time_base:
            frames = int(round(float(stream.duration * stream.time_base) * fps))
        if frames == 0 and container.duration:
            frames = int(round(container.duration / av.time_base * fps))
        width = stream.codec_context.width
        height = stream.codec_context.height
        if not width or not height:
            raise VidcolorError(f"{path}: video stream has no frame size")
        has_audio = bool(container.streams.audio)
        rotation = first_frame_rotation(path, container)
        if rotation in (90, 270):
            width, height = height, width  # the displayed (upright) size
        return VideoInfo(frames, fps, width, height, has_audio, rotation, Fraction(rate), exact)
    finally:
        container.close()


def _image_size(p: Path) -> tuple[int, int]:
    try:
        with Image.open(p) as im:
            return im.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise VidcolorError(f"{p}: not a readable image ({exc})") from None


def scaled_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(w, h) after scaling the short side to ``size`` (the long side rounded, at least ``size``)."""
    if width <= height:
        return size, max(size, round(height * size / width))
    return max(size, round(width * size / height)), size


def center_crop(frame: np.ndarray, size: int) -> np.ndarray:
    h, w = frame.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(frame[top:top + size, left:left + size])


def resize_center_crop(frame: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (size, size, 3): short side to ``size`` (antialiased), center crop."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise VidcolorError(f"resize_center_crop: expected uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
    h, w = frame.shape[:2]
    new_w, new_h = scaled_size(w, h, size)
    if (new_w, new_h) != (w, h):
        frame = np.asarray(Image.fromarray(frame).resize((new_w, new_h), Image.BILINEAR))
    return center_crop(frame, size)


class FramePicker:
    """Streams source frame indices and keeps those nearest to a lower target rate (never duplicates)."""

    def __init__(self, src_fps: float, fps: float | None):
        self.step = src_fps / fps if fps and fps < src_fps else 1.0
        self.out_fps = src_fps / self.step
        self.k = 0

    def take(self, index: int) -> bool:
        if round(self.k * self.step) == index:
            self.k += 1
            return True
        return False


def iter_indexed_frames(path: str | Path, size: int | None = None,
                        fps: float | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(source_index, frame uint8 (H, W, 3))``; resized to ``size`` and picked down to ``fps``."""
    path = Path(path)
    info = probe(path)
    picker = FramePicker(info.fps, fps)
    if path.is_dir():
        for i, p in enumerate(frame_files(path)):
            if not picker.take(i):
                continue
            try:
                with Image.open(p) as im:
                    frame = np.asarray(im.convert("RGB"))
            except (OSError, ValueError) as exc:
                raise VidcolorError(f"{p}: not a readable image ({exc})") from None
            yield i, resize_center_crop(frame, size) if size else frame
        return
    container = open_video(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        target = scaled_size(info.width, info.height, size) if size else None
        if target and info.rotation in (90, 270):
            target = target[::-1]  # scaled in the stored orientation, rotated upright afterwards
        i = -1
        try:
            for i, vframe in enumerate(container.decode(stream)):
                if not picker.take(i):
                    continue
                if target:
                    # swscale's area filter downsamples with proper antialiasing, far cheaper than
                    # converting the full-size frame to RGB first.
                    small = vframe.reformat(width=target[0], height=target[1], format="rgb24",
                                            interpolation="AREA")
                    yield i, center_crop(upright(small.to_ndarray(), info.rotation), size)
                else:
                    yield i, upright(vframe.to_ndarray(format="rgb24"), info.rotation)
        except av.FFmpegError as exc:
            raise VidcolorError(f"{path}: corrupt or truncated video, decoding failed after frame {i + 1} ({exc})") from None
        decoded = i + 1
        # A container that declares more frames than decode (beyond edit-list slack) lost its tail.
        if info.frames and decoded < info.frames - max(2, 0.02 * info.frames):
            raise VidcolorError(f"{path}: truncated or damaged, the stream declares {info.frames} frames "
                                f"but only {decoded} decode")
    finally:
        container.close()


def iter_frames(path: str | Path, size: int | None = None, fps: float | None = None) -> Iterator[np.ndarray]:
    """Decode a video file or frame folder to uint8 (H, W, 3) RGB frames (PyAV / Pillow)."""
    for _, frame in iter_indexed_frames(path, size, fps):
        yield frame


def count_frames(path: str | Path) -> int:
    """How many frames PyAV actually decodes (the ground truth the shard tests compare to)."""
    n = 0
    container = open_video(Path(path))
    try:
        for _ in container.decode(video=0):
            n += 1
    finally:
        container.close()
    return n


def find_sources(src: str | Path) -> list[Path]:
    """Video files and frame folders under ``src`` (itself one of them, or a directory searched recursively).

    Explicitly named files are returned whatever their extension (a non-video file is then
    skipped later with a reason); inside directories only known video extensions count. Folders
    named ``Annotations*`` (DAVIS segmentation masks) are not color video and are left out.
    """
    src = Path(src)
    if not src.is_dir():
        return [src]
    if is_frame_folder(src):
        return [src]
    found: list[Path] = []
    for child in sorted(src.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            if child.name.lower().startswith("annotations"):
                log.info("%s: DAVIS mask folder, not searched", child)
                continue
            found.extend(find_sources(child))
        elif child.suffix.lower() in VIDEO_EXTS:
            found.append(child)
        else:
            log.debug("%s: not a video file, ignored", child)
    return found
