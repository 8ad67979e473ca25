"""Read source videos: probe and decode video files (PyAV) and DAVIS-style frame folders.

A *source* (`data_shards.sources`) is a file FFmpeg can decode or a folder of numbered frames.
Frames come out as numpy ``uint8 (H, W, 3)`` RGB, optionally resized (short side to ``size``, then
a center crop to ``size x size``) and resampled to a lower frame rate by picking frames.

`decode_frames` is the one decoding path (one packet loop for files): strict for the shard
writer (`decode_frames`, `iter_frames`), or tolerant for colorizing a film
(`iter_frames_tolerant`: a frame that fails to decode comes as ``None``, the rest go on).

Frames come out upright: a display matrix (phones store portrait video as landscape pixels plus
a rotation) is applied, so ``width``/``height`` are the displayed size. A still image that
FFmpeg would open as a one-frame "video" (a PNG or JPEG renamed ``.mp4``) is refused as such.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from data_shards.sources import frame_files, warn_numbering_gaps
from models.errors import VidcolorError

log = logging.getLogger(__name__)

FOLDER_FPS = 24.0  # frame folders carry no rate; DAVIS sequences are 24 fps


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` learns about one source without decoding its frames."""

    frames: int  # frames in the source (as declared by the container; the file count for folders)
    fps: float
    width: int  # as displayed (after the rotation)
    height: int
    has_audio: bool
    rotation: int = 0  # degrees counter-clockwise (0, 90, 180, 270) applied to get upright frames
    rate: Fraction | None = None  # the exact frame rate (e.g. 30000/1001; FOLDER_FPS for folders)
    frames_exact: bool = True  # False when `frames` is only estimated from a duration
    path: Path | None = None  # the probed video file or frame folder
    is_folder: bool = False  # a folder of numbered frames (DAVIS layout), not a video file


def open_video(path: Path):
    """An av container with a video stream, or a VidcolorError naming the file and the reason."""
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        reason = (
            "empty file (0 bytes)" if path.is_file() and path.stat().st_size == 0 else f"not a readable video ({exc})"
        )
        raise VidcolorError(f"{path}: {reason}") from None
    if not container.streams.video:
        container.close()
        raise VidcolorError(f"{path}: has no video stream")
    if container.streams.video[0].codec_context is None:  # PyAV: no decoder for the stream's codec id
        container.close()
        raise VidcolorError(f"{path}: its video stream names no codec FFmpeg can decode (damaged header?)")
    still = still_image_format(container)
    if still:
        container.close()
        raise VidcolorError(
            f"{path}: is a still image ({still}), not a video; put numbered images in a folder to use them as frames"
        )
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
                raise VidcolorError(
                    f"{p}: frame size {size[0]}x{size[1]} differs from the folder's "
                    f"first frame {files[0].name} ({width}x{height})"
                )
        return VideoInfo(
            len(files),
            FOLDER_FPS,
            width,
            height,
            False,
            rate=Fraction(FOLDER_FPS).limit_denominator(1001),
            path=path,
            is_folder=True,
        )
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
        return VideoInfo(frames, fps, width, height, has_audio, rotation, Fraction(rate), exact, path)
    finally:
        container.close()


def _image_size(p: Path) -> tuple[int, int]:
    try:
        with Image.open(p) as im:
            return im.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise VidcolorError(f"{p}: not a readable image ({exc})") from None


#: An upscale of the short side by more than this is noted (the film has far less detail than the
#: frames it becomes: a 4x4 video sharded at 64 px is 16x). Not refused: tiny sources are legal.
UPSCALE_NOTE = 4.0


def upscale_note(path: str | Path, width: int, height: int, size: int) -> str | None:
    """The note for a ``width x height`` source whose short side is scaled up to ``size`` by more
    than `UPSCALE_NOTE`, naming the file and the factor; None otherwise."""
    short = min(width, height)
    if short <= 0 or size / short <= UPSCALE_NOTE:
        return None
    factor = size / short
    return f"{path}: {width}x{height} upscaled {factor:.3g}x to {size} px (short side); detail invented, not restored"


def scaled_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(w, h) after scaling the short side to ``size`` (the long side rounded, at least ``size``)."""
    if width <= height:
        return size, max(size, round(height * size / width))
    return max(size, round(width * size / height)), size


def center_crop(frame: np.ndarray, size: int) -> np.ndarray:
    h, w = frame.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(frame[top : top + size, left : left + size])


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


def _read_image(p: Path, tolerant: bool) -> np.ndarray | None:
    """One folder frame as uint8 (H, W, 3); ``None`` (logged) when it fails and ``tolerant``."""
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        if not tolerant:
            raise VidcolorError(f"{p}: not a readable image ({exc})") from None
        log.warning("%s: frame failed to decode (%s)", p, exc)
        return None


def _folder_frames(
    info: VideoInfo, size: int | None, keep: Callable[[int], bool], tolerant: bool
) -> Iterator[tuple[int, np.ndarray | None]]:
    for i, p in enumerate(frame_files(info.path)):
        if not keep(i):
            continue
        frame = _read_image(p, tolerant)
        if frame is None:
            yield i, None
            continue
        if frame.shape[:2] != (info.height, info.width):
            raise VidcolorError(
                f"{p}: frame size {frame.shape[1]}x{frame.shape[0]} differs from the "
                f"folder's first frame ({info.width}x{info.height})"
            )
        yield i, resize_center_crop(frame, size) if size else frame


def _packet_frames(container, path: Path, tolerant: bool) -> Iterator[av.VideoFrame | None]:
    """The one packet loop: decoded frames in order; with ``tolerant`` a packet that fails to
    decode costs one frame (``None``, logged) instead of the video. A broken container (demuxing
    fails: truncation) is always a VidcolorError."""
    packets = container.demux(container.streams.video[0])
    count = 0
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as exc:
            raise VidcolorError(
                f"{path}: corrupt or truncated video, reading stopped after frame {count} ({exc})"
            ) from None
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            if packet.size == 0:  # the final flush: nothing more to lose
                log.warning("%s: decoder flush failed (%s)", path, exc)
                return
            if not tolerant:
                raise VidcolorError(
                    f"{path}: corrupt or truncated video, frame {count} failed to decode ({exc})"
                ) from None
            log.warning("%s: frame %d failed to decode (%s)", path, count, exc)
            count += 1
            yield None
            continue
        for vframe in frames:
            count += 1
            yield vframe


def _to_rgb(vframe: av.VideoFrame, info: VideoInfo, size: int | None, index: int) -> np.ndarray:
    """A decoded frame upright as uint8 RGB: full size, or resized and center-cropped to ``size``."""
    if size:
        # swscale's area filter downsamples with proper antialiasing, far cheaper than converting
        # the full-size frame to RGB first; it scales in the stored orientation, rotated afterwards.
        w, h = scaled_size(info.width, info.height, size)
        if info.rotation in (90, 270):
            w, h = h, w
        small = vframe.reformat(width=w, height=h, format="rgb24", interpolation="AREA")
        return center_crop(upright(small.to_ndarray(), info.rotation), size)
    frame = upright(vframe.to_ndarray(format="rgb24"), info.rotation)
    if frame.shape[:2] != (info.height, info.width):
        raise VidcolorError(
            f"{info.path}: frame {index} is {frame.shape[1]}x{frame.shape[0]}, the stream is "
            f"{info.width}x{info.height} (size changes are not supported)"
        )
    return frame


def _check_complete(info: VideoInfo, decoded: int) -> None:
    """A file that decodes fewer frames than it declares lost its tail (edit lists may hide a frame
    or two, so up to max(2, 2 %) missing is only a warning; so is any gap to an estimated count)."""
    missing = info.frames - decoded
    if missing <= 0:
        return
    if info.frames_exact and missing > max(2, info.frames // 50):
        raise VidcolorError(
            f"{info.path}: truncated or damaged, decoded {decoded} of the {info.frames} frames the file declares"
        )
    log.warning(
        "%s: decoded %d of the %d frames the file %s",
        info.path,
        decoded,
        info.frames,
        "declares" if info.frames_exact else "is estimated to hold",
    )


def _file_frames(
    info: VideoInfo, size: int | None, keep: Callable[[int], bool], tolerant: bool
) -> Iterator[tuple[int, np.ndarray | None]]:
    container = open_video(info.path)
    with container:
        if not tolerant:
            # frame threads; not when tolerant, where their delay would blur which frame failed
            container.streams.video[0].thread_type = "AUTO"
        decoded = 0
        for index, vframe in enumerate(_packet_frames(container, info.path, tolerant)):
            decoded = index + 1
            if keep(index):
                yield index, None if vframe is None else _to_rgb(vframe, info, size, index)
    _check_complete(info, decoded)


def decode_frames(
    info: VideoInfo, size: int | None = None, keep: Callable[[int], bool] | None = None, tolerant: bool = False
) -> Iterator[tuple[int, np.ndarray | None]]:
    """The one decoding path: ``(source_index, frame uint8 (H, W, 3) upright)`` of a probed source.

    ``size``: resized (short side) and center-cropped to ``size x size``; ``keep(index)`` picks the
    frames to convert (all by default). Strict by default: any frame that fails to decode is a
    VidcolorError. ``tolerant``: such a frame comes as ``None`` (logged) and the rest go on. Either
    way a truncated file, or a frame whose size differs from the stream's, is a VidcolorError.
    """
    keep = keep or (lambda index: True)
    frames = _folder_frames if info.is_folder else _file_frames
    return frames(info, size, keep, tolerant)


def iter_frames(path: str | Path, size: int | None = None, fps: float | None = None) -> Iterator[np.ndarray]:
    """Decode a video file or frame folder (strictly) to uint8 (H, W, 3) RGB frames, resized to
    ``size`` and picked down to ``fps`` when given."""
    info = probe(path)
    for _, frame in decode_frames(info, size, keep=FramePicker(info.fps, fps).take):
        yield frame


def iter_frames_tolerant(info: VideoInfo) -> Iterator[np.ndarray | None]:
    """A probed source's frames at full size in order; ``None`` for a frame that fails to decode."""
    for _, frame in decode_frames(info, tolerant=True):
        yield frame
