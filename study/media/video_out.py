"""Browser-playable video output: RGB frames -> H.264 ``yuv420p`` mp4, with the source's audio.

Used by ``vidcolor colorize`` (full-resolution colorized films) and by the results store's media
renderer (sample clips for the dashboard). PyAV (FFmpeg) does the work:

- Video: ``libx264`` (bundled in PyAV's FFmpeg; other H.264 encoders only as a fallback),
  ``yuv420p``, BT.709 limited range, tagged as such, ``+faststart`` so browsers can start playing
  before the whole file arrives.
- Sizes: ``yuv420p`` needs even width and height. An even input keeps its exact size. An odd
  width or height is **padded** by one pixel, repeating the last column/row, so no input pixel
  is lost (``out_width``/``out_height`` tell the size written). Cropping would throw away image.
- Audio: when ``audio_from`` names a file with an audio stream, its first audio stream is copied
  (remuxed, no quality loss) if mp4 can carry its codec, otherwise re-encoded to AAC. Audio
  packets are interleaved with the video as frames are written, so nothing piles up in memory.
  Audio past the end of the written video is dropped, so the film does not run on silent.
- Atomicity: everything goes to a hidden temporary file in the output's folder
  (``.STEM.PID@HOST.partial.mp4``), renamed onto the final name only when the writer closes
  without error; on error the temporary file is removed and an existing file under the final name
  is left untouched. A killed run cannot remove its file, so opening a writer removes the
  partials of the same output left by dead processes of this host (`study.media.partials`; a
  live writer's file is never touched). With ``overwrite=False`` an existing final file is an
  error, even one that appeared while the writer ran.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from models.errors import VidcolorError
from study.media import X264_PRESETS
from study.media.partials import partial_tag, publish, remove_stale_partials

log = logging.getLogger(__name__)

#: H.264 encoders tried in order; libx264 is in PyAV's wheels, the rest are fallbacks.
H264_ENCODERS = ("libx264", "libopenh264", "h264")
#: Audio codecs the mp4 muxer takes as they are (anything else is re-encoded to AAC).
MP4_AUDIO_COPY = frozenset({"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"})

# FFmpeg's AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic / AVColorRange codes.
_AVCOL_BT709 = 1
_AVCOL_RANGE_MPEG = 1


def pick_h264_encoder() -> str:
    """Name of the first H.264 encoder this FFmpeg build can open for writing."""
    for name in H264_ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except Exception:
            continue
        return name
    raise VidcolorError(f"no H.264 encoder in this FFmpeg build (tried {', '.join(H264_ENCODERS)})")


def even_size(width: int, height: int) -> tuple[int, int]:
    """The size written for a ``width x height`` input: each odd side padded up by one pixel."""
    return width + (width % 2), height + (height % 2)


def as_fraction(fps: float | Fraction) -> Fraction:
    """Frame rate as an exact fraction (29.97 -> 2997/100, 30000/1001 stays as it is)."""
    rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
    if not rate > 0:
        raise VidcolorError(f"frame rate must be positive, got fps={fps!r}")
    return rate


class VideoWriter:
    """Write RGB ``uint8 (H, W, 3)`` frames to an H.264 mp4; a context manager.

    ``with VideoWriter(path, fps, width, height, audio_from=src) as w: w.write(frame)``.
    The file appears under ``path`` only when the ``with`` block ends without an exception;
    ``overwrite=False`` refuses an existing ``path`` (on opening and again on renaming).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | Fraction,
        width: int,
        height: int,
        audio_from: str | os.PathLike | None = None,
        crf: int = 18,
        preset: str = "medium",
        overwrite: bool = True,
        cbr_bits_per_pixel: float | None = None,
    ):
        self.path = Path(path)
        # constant bitrate with filler and a one-frame buffer: every frame of the stream is the
        # same number of bytes whatever it shows (the CTT's composites: study.ctt.composite)
        self.cbr_bits_per_pixel = cbr_bits_per_pixel
        self.overwrite = overwrite
        self.fps = as_fraction(fps)
        if not (
            isinstance(width, (int, np.integer)) and isinstance(height, (int, np.integer)) and width > 0 and height > 0
        ):
            raise VidcolorError(f"{self.path}: frame size must be positive integers, got {width!r}x{height!r}")
        if not 0 <= crf <= 51:
            raise VidcolorError(f"{self.path}: crf must be in 0..51, got {crf!r}")
        if preset not in X264_PRESETS:
            raise VidcolorError(f"{self.path}: unknown x264 preset {preset!r}; one of {', '.join(X264_PRESETS)}")
        self.width, self.height = int(width), int(height)
        self.out_width, self.out_height = even_size(self.width, self.height)
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.crf, self.preset = int(crf), preset
        self.frames_written = 0
        self.has_audio = False
        self._container: av.container.OutputContainer | None = None
        self._tmp: Path | None = None
        self._audio_in: av.container.InputContainer | None = None
        self._audio_packets: Iterator[av.Packet] | None = None
        self._audio_pending: av.Packet | None = None
        self._audio_out = None
        self._audio_decoder: Iterator[av.AudioFrame] | None = None
        self._audio_resampler: av.AudioResampler | None = None

    # -- opening -------------------------------------------------------------------------------

    def __enter__(self) -> VideoWriter:
        self.open()
        return self

    def open(self) -> None:
        folder = self.path.parent
        if not folder.is_dir():
            raise VidcolorError(f"{self.path}: output folder {folder} does not exist")
        if self.path.is_dir():
            raise VidcolorError(f"{self.path}: is a folder, expected an .mp4 file name")
        if not self.overwrite and self.path.exists():
            raise VidcolorError(f"{self.path}: exists (pass --overwrite to replace it)")
        prefix, suffix = f".{self.path.stem}.", ".partial.mp4"
        remove_stale_partials(folder, prefix, suffix)
        self._tmp = folder / f"{prefix}{partial_tag()}{suffix}"
        try:
            self._container = av.open(str(self._tmp), mode="w", format="mp4", options={"movflags": "+faststart"})
        except (OSError, av.FFmpegError) as exc:
            raise VidcolorError(f"{self.path}: cannot write here ({exc})") from exc
        try:
            self._add_video_stream()
            if self.audio_from is not None:
                self._add_audio_stream()
        except BaseException:
            self._abort()
            raise

    def _add_video_stream(self) -> None:
        encoder = pick_h264_encoder()
        stream = self._container.add_stream(encoder, rate=self.fps)
        stream.width, stream.height = self.out_width, self.out_height
        stream.pix_fmt = "yuv420p"
        stream.time_base = 1 / self.fps
        cc = stream.codec_context
        cc.colorspace = cc.color_primaries = cc.color_trc = _AVCOL_BT709
        cc.color_range = _AVCOL_RANGE_MPEG
        if self.cbr_bits_per_pixel is not None:
            if encoder != "libx264":
                raise VidcolorError(f"{self.path}: constant-size frames need libx264, which this FFmpeg lacks")
            per_frame = max(8000, int(self.cbr_bits_per_pixel * self.out_width * self.out_height))
            rate = int(per_frame * self.fps)
            kbps, frame_kbit = max(1, rate // 1000), max(1, per_frame // 1000)
            stream.bit_rate = rate
            stream.options = {
                "preset": self.preset,
                "minrate": str(rate),
                "maxrate": str(rate),
                "bufsize": str(per_frame),
                "x264-params": f"nal-hrd=cbr:vbv-maxrate={kbps}:vbv-bufsize={frame_kbit}:keyint=100000:"
                "min-keyint=100000:scenecut=0:bframes=0:rc-lookahead=0:sync-lookahead=0",
            }
        elif encoder == "libx264":
            stream.options = {"crf": str(self.crf), "preset": self.preset}
        else:
            log.warning("libx264 missing; encoding with %s (crf ignored)", encoder)
            cc.bit_rate = 8 * self.out_width * self.out_height  # about 8 bits per pixel per second
        self._video = stream

    def _add_audio_stream(self) -> None:
        src = self.audio_from
        try:
            self._audio_in = av.open(str(src))
        except (OSError, av.FFmpegError) as exc:
            raise VidcolorError(f"{src}: cannot read the audio source ({exc})") from exc
        if not self._audio_in.streams.audio:
            log.debug("%s has no audio stream", src)
            self._audio_in.close()
            self._audio_in = None
            return
        a_in = self._audio_in.streams.audio[0]
        codec = a_in.codec_context.codec.canonical_name  # "mp3", where the decoder is "mp3float"
        if codec in MP4_AUDIO_COPY:
            self._audio_out = self._container.add_stream_from_template(a_in)
            log.debug("copying %s audio from %s", codec, src)
        else:
            rate = a_in.codec_context.sample_rate or 48000
            self._audio_out = self._container.add_stream("aac", rate=rate)
            channels = a_in.codec_context.channels or 2
            # AAC wants a named layout; files often carry only a channel count ("1 channels").
            layout = {1: "mono", 2: "stereo", 6: "5.1"}.get(channels, "stereo")
            self._audio_out.layout = layout
            self._audio_out.format = "fltp"
            # Open the encoder now: the mp4 header, written at the first video packet, needs its
            # parameters (AAC's extradata).
            self._audio_out.codec_context.open()
            self._audio_resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            log.info("re-encoding %s audio from %s to AAC", codec, src)
        self._audio_stream_in = a_in
        self._audio_packets = self._audio_in.demux(a_in)
        self.has_audio = True

    # -- writing -------------------------------------------------------------------------------

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB ``uint8 (height, width, 3)`` frame."""
        if self._container is None:
            raise RuntimeError("VideoWriter is not open (use it in a `with` block)")
        if frame.dtype != np.uint8 or frame.shape != (self.height, self.width, 3):
            raise ValueError(
                f"{self.path}: expected a uint8 frame of shape {(self.height, self.width, 3)}, "
                f"got {frame.dtype} {frame.shape}"
            )
        if (self.out_width, self.out_height) != (self.width, self.height):
            frame = np.pad(
                frame, ((0, self.out_height - self.height), (0, self.out_width - self.width), (0, 0)), mode="edge"
            )
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        # Explicit BT.709 limited-range conversion, matching the tags on the stream.
        vf = vf.reformat(
            format="yuv420p",
            src_colorspace="itu709",
            dst_colorspace="itu709",
            src_color_range="JPEG",
            dst_color_range="MPEG",
        )
        vf.pts = self.frames_written
        vf.time_base = 1 / self.fps  # the stream's time base changes once the muxer starts
        self._container.mux(self._video.encode(vf))
        self.frames_written += 1
        if self.has_audio:
            self._pump_audio(Fraction(self.frames_written) / self.fps)

    def _pump_audio(self, until_s: Fraction | None) -> None:
        """Mux source audio up to ``until_s`` seconds (``None``: up to the end of the video)."""
        end_s = Fraction(self.frames_written) / self.fps
        limit = end_s if until_s is None else min(until_s, end_s)
        while True:
            packet = self._audio_pending
            self._audio_pending = None
            if packet is None:
                packet = next(self._audio_packets, None)
                if packet is None:
                    return
            if packet.dts is None and packet.pts is None:  # demuxer's end-of-stream marker
                continue
            t = packet.pts if packet.pts is not None else packet.dts
            start = self._audio_stream_in.start_time or 0
            t_s = (t - start) * packet.time_base
            if t_s >= limit:
                self._audio_pending = packet
                return
            if self._audio_resampler is None:
                packet.stream = self._audio_out
                self._container.mux(packet)
            else:
                for frame in packet.decode():
                    frame.pts = None
                    for rf in self._audio_resampler.resample(frame):
                        self._container.mux(self._audio_out.encode(rf))

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Flush the encoders and move the file onto its final name."""
        if self._container is None:
            return
        try:
            if self.frames_written == 0:
                raise VidcolorError(f"{self.path}: no frames were written")
            self._container.mux(self._video.encode(None))
            if self.has_audio:
                self._pump_audio(None)
                if self._audio_resampler is not None:
                    for rf in self._audio_resampler.resample(None):
                        self._container.mux(self._audio_out.encode(rf))
                    self._container.mux(self._audio_out.encode(None))
            self._container.close()
            self._container = None
            self._close_audio_in()
            publish(self._tmp, self.path, self.overwrite)
        except BaseException:
            self._abort()
            raise
        log.debug(
            "wrote %s: %d frames %dx%d at %s fps%s",
            self.path,
            self.frames_written,
            self.out_width,
            self.out_height,
            self.fps,
            " with audio" if self.has_audio else "",
        )

    def _close_audio_in(self) -> None:
        if self._audio_in is not None:
            self._audio_in.close()
            self._audio_in = None

    def _abort(self) -> None:
        """Drop everything written so far; the final name is never touched."""
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                pass
            self._container = None
        self._close_audio_in()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()


def write_video(
    path: str | os.PathLike, frames, fps: float | Fraction, audio_from: str | os.PathLike | None = None, crf: int = 18
) -> Path:
    """Write an iterable of RGB frames (the first one fixes the size) to ``path``; returns it."""
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise VidcolorError(f"{path}: no frames to write")
    h, w = first.shape[:2]
    with VideoWriter(path, fps, w, h, audio_from=audio_from, crf=crf) as writer:
        writer.write(first)
        for frame in frames:
            writer.write(frame)
    return Path(path)
