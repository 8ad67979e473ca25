"""One film through the model: decode ahead, colorize in batches, encode behind, report.

`colorize_source` reads a probed source (`data_shards.video.VideoInfo`) with the tolerant decoder
in a thread a few batches ahead, runs `FilmInference` on batches of frames, and hands the frames
to the writer (libx264 through `study.media.video_out.VideoWriter`, or numbered PNGs through
`FrameFolderWriter`) in another thread, so decoding and encoding run beside the model. A frame
that fails to decode is replaced by its neighbour's colorized frame (the previous one, or the next
one at the start), so the output keeps the input's frame count. Outputs are written under a
temporary name (tagged with the writer's pid) and renamed only when complete, so nothing
half-written ever sits under OUT, and the next run removes what a killed one left.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from data_shards.video import VideoInfo, iter_frames_tolerant, upscale_note
from models.color import chroma, frames_to_lab
from models.errors import VidcolorError
from study.colorize.inference import CpuFrames, FilmInference, Prepared
from study.media import ENCODER_PRESET
from study.media.partials import partial_tag, remove_stale_partials
from study.media.video_out import VideoWriter

log = logging.getLogger(__name__)

COLOR_CHROMA = 3.0  # mean chroma (ab units) above which an input counts as a color video
OUTPUT_VIDEO_SUFFIX = ".mp4"


def mean_chroma(frames: np.ndarray) -> float:
    """Mean chroma of uint8 RGB frames (N, H, W, 3), on a strided subsample (cheap)."""
    sub = torch.from_numpy(np.ascontiguousarray(frames[:, ::4, ::4]))
    _, ab = frames_to_lab(sub)
    return float(chroma(ab).mean())


# ---- threads: decode ahead, encode behind -------------------------------------------------------

_END = object()


def _prefetch(items: Iterable, depth: int) -> Iterator:
    """Run ``items`` in a thread ``depth`` items ahead (PyAV decodes without holding the GIL)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(message: tuple) -> bool:
        """Hand one message over unless the consumer has gone (then False)."""
        while not stop.is_set():
            try:
                q.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as exc:
            put(("error", exc))

    thread = threading.Thread(target=produce, name="colorize-decode", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class _BackgroundSink:
    """Runs queued jobs in order in a thread; a job passes its frames to ``write_frame``, which
    calls ``write(frame)`` (libx264, or PNGs) in that thread, beside the model."""

    def __init__(self, write: Callable[[np.ndarray], None], depth: int = 1):
        self.write_frame = write
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="colorize-encode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._q.get()
            if job is _END:
                return
            if self._error is None:
                try:
                    job()
                except BaseException as exc:
                    self._error = exc

    def put(self, job: Callable[[], None]) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(job)

    def finish(self, quiet: bool = False) -> None:
        """Wait for the queued jobs; their error is raised unless ``quiet``."""
        self._q.put(_END)
        self._thread.join()
        if self._error is not None and not quiet:
            raise self._error


# ---- outputs ------------------------------------------------------------------------------------


def is_frame_output(path: Path) -> bool:
    """A folder holding only numbered PNG frames, as `FrameFolderWriter` writes them (a previous result)."""
    path = Path(path)
    if not path.is_dir():
        return False
    entries = list(path.iterdir())
    return bool(entries) and all(q.is_file() and q.suffix == ".png" and q.stem.isdigit() for q in entries)


class FrameFolderWriter:
    """Numbered PNG frames into a folder; built in a temporary folder, renamed when complete.

    The temporary folder is ``.NAME.PID@HOST.partial``; opening removes those that killed runs
    left. ``overwrite=False`` refuses an existing folder; with it, only a previous frame output
    (numbered PNGs, nothing else) may be replaced."""

    def __init__(self, path: Path, overwrite: bool = True):
        self.path = Path(path)
        self.overwrite = overwrite
        self.frames_written = 0
        self._prefix = f".{self.path.name}."
        self._tmp = self.path.parent / f"{self._prefix}{partial_tag()}.partial"

    def __enter__(self) -> FrameFolderWriter:
        if not self.path.parent.is_dir():
            raise VidcolorError(f"{self.path}: output folder {self.path.parent} does not exist")
        if self.path.exists() and not self.overwrite:
            raise VidcolorError(f"{self.path}: exists (pass --overwrite to replace it)")
        if self.path.is_dir():
            foreign = [
                q.name for q in self.path.iterdir() if not (q.is_file() and q.suffix == ".png" and q.stem.isdigit())
            ]
            if foreign:
                raise VidcolorError(
                    f"{self.path}: folder exists and holds other files ({', '.join(sorted(foreign)[:3])}); "
                    "refusing to replace it"
                )
        remove_stale_partials(self.path.parent, self._prefix, ".partial")
        if self.path.exists():  # a killed swap left its .old copy: the new result is in place
            remove_stale_partials(self.path.parent, self._prefix, ".old")
        shutil.rmtree(self._tmp, ignore_errors=True)
        try:
            self._tmp.mkdir()
        except OSError as exc:
            raise VidcolorError(f"{self.path}: cannot write here ({exc})") from None
        return self

    def write(self, frame: np.ndarray) -> None:
        Image.fromarray(frame).save(self._tmp / f"{self.frames_written:05d}.png", compress_level=1)
        self.frames_written += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self.frames_written == 0:
            shutil.rmtree(self._tmp, ignore_errors=True)
            if exc_type is None:
                raise VidcolorError(f"{self.path}: no frames were written")
            return
        if self.path.exists():
            if not self.path.is_dir() or not self.overwrite:
                shutil.rmtree(self._tmp, ignore_errors=True)
                raise VidcolorError(
                    f"{self.path}: exists"
                    + (" and is not a folder" if self.overwrite else " (pass --overwrite to replace it)")
                )
            old = self.path.parent / f"{self._prefix}{partial_tag()}.old"
            os.replace(self.path, old)
            os.replace(self._tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self._tmp, self.path)


# ---- one source ---------------------------------------------------------------------------------


@dataclass
class Result:
    """What happened to one input."""

    source: Path
    output: Path | None
    frames: int = 0
    failed_frames: int = 0
    width: int = 0
    height: int = 0
    fps: Fraction | None = None
    seconds: float = 0.0
    was_color: bool = False
    audio: bool = False
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def speed(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def _batches(frames: Iterator[np.ndarray | None], batch_size: int) -> Iterator[list[np.ndarray | None]]:
    batch: list[np.ndarray | None] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


class _GapFiller:
    """Puts colorized frames out in order; a failed frame (``None``) gets its neighbour's colors:
    the previous frame's, or the first good frame's for failures at the start."""

    def __init__(self, put: Callable[[np.ndarray], None]):
        self.put = put
        self.last: np.ndarray | None = None  # the latest colorized frame
        self.pending = 0  # failed frames before the first good one
        self.failed = 0

    def add(self, batch: list[np.ndarray | None], colored: Iterable[np.ndarray]) -> None:
        """``colored``: the colorized good frames of ``batch``, in order."""
        colored = iter(colored)
        for frame in batch:
            if frame is None:
                self.failed += 1
                if self.last is None:
                    self.pending += 1
                else:
                    self.put(self.last)
                continue
            self.last = next(colored)
            for _ in range(self.pending + 1):
                self.put(self.last)
            self.pending = 0


def _run(
    inference: FilmInference,
    info: VideoInfo,
    sink: _BackgroundSink,
    result: Result,
    batch_size: int,
    on_batch: Callable[[int], None],
) -> _GapFiller:
    """Decode, colorize and write every frame of ``info`` in order, in three threads: decoding and
    `FilmInference.prepare` (full-resolution L, the net's input) a batch or two ahead, the net here,
    and `FilmInference.finish` (full-resolution color) with the encoder behind. The full-resolution
    work is about a third of the model's time per 720p frame on the CPU and mostly single-threaded:
    beside the net rather than between its batches, it fills cores the net leaves idle. Fills
    ``result``'s counts; returns the gap filler, whose counts are final once ``sink`` is finished."""
    prepare_frames, finish_frames = CpuFrames(), CpuFrames()  # each thread its own buffers
    filler = _GapFiller(sink.write_frame)

    def prepared(batches: Iterator[list[np.ndarray | None]]) -> Iterator[tuple[list, Prepared | None]]:
        for batch in batches:
            good = [f for f in batch if f is not None]
            yield batch, (inference.prepare(np.stack(good), prepare_frames) if good else None)

    def finish(batch: list[np.ndarray | None], ready: Prepared | None, coarse) -> None:
        filler.add(batch, inference.finish(ready, coarse, finish_frames) if ready is not None else ())

    step = inference.frames_per_step(info.width, info.height, batch_size)
    for batch, ready in _prefetch(prepared(_batches(iter_frames_tolerant(info), step)), depth=1):
        if ready is not None and result.frames == 0:
            good = [f for f in batch if f is not None]
            if mean_chroma(np.stack(good[:4])) > COLOR_CHROMA:
                result.was_color = True
                log.warning(
                    "%s is in color: only its lightness (L) is used, the result is a new "
                    "colorization to compare with the original",
                    info.path,
                )
        coarse = inference.predict(ready) if ready is not None else None
        sink.put(lambda batch=batch, ready=ready, coarse=coarse: finish(batch, ready, coarse))
        result.frames += len(batch)
        on_batch(len(batch))
    return filler


def colorize_source(
    inference: FilmInference,
    info: VideoInfo,
    out: Path,
    *,
    batch_size: int = 16,
    progress: bool = True,
    crf: int = 18,
    preset: str = ENCODER_PRESET,
    overwrite: bool = True,
) -> Result:
    """Colorize one probed source into ``out`` (an .mp4 file, or a frame folder for any other name);
    ``overwrite=False`` refuses an existing ``out``."""
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise VidcolorError(f"--batch-size: must be >= 1, got {batch_size}")
    result = Result(info.path, out, width=info.width, height=info.height, fps=info.rate)
    writer = (
        VideoWriter(
            out,
            info.rate,
            info.width,
            info.height,
            audio_from=info.path if info.has_audio else None,
            crf=crf,
            preset=preset,
            overwrite=overwrite,
        )
        if out.suffix.lower() == OUTPUT_VIDEO_SUFFIX
        else FrameFolderWriter(out, overwrite=overwrite)
    )
    if isinstance(writer, VideoWriter) and (writer.out_width, writer.out_height) != (info.width, info.height):
        # yuv420p needs even sides: the file is padded (edge repeated); the table tells the size written
        result.width, result.height = writer.out_width, writer.out_height
        result.notes.append(
            f"padded from {info.width}x{info.height} to {writer.out_width}x{writer.out_height} "
            "(H.264 yuv420p needs even sides; last column/row repeated)"
        )
    if note := upscale_note(info.path, info.width, info.height, inference.size):
        log.warning("%s", note)
        result.notes.append(note.split(": ", 1)[1].split(";")[0])
    inference.reset()
    start = time.perf_counter()
    bar = tqdm(
        total=info.frames or None,
        unit="frame",
        desc=info.path.name,
        disable=not progress,
        dynamic_ncols=True,
        leave=False,
    )
    with writer, bar:
        result.audio = bool(getattr(writer, "has_audio", False))
        sink = _BackgroundSink(writer.write)
        try:
            filler = _run(inference, info, sink, result, batch_size, bar.update)
        except BaseException:
            sink.finish(quiet=True)  # the error that stopped the run is the one reported
            raise
        sink.finish()
        result.failed_frames = filler.failed
        if filler.last is None:
            raise VidcolorError(
                f"{info.path}: no frame could be decoded" if result.frames else f"{info.path}: holds no video frames"
            )
    result.seconds = time.perf_counter() - start
    if result.failed_frames:
        result.notes.append(f"{result.failed_frames} frame(s) failed to decode: neighbour's colors used")
    if result.was_color:
        result.notes.append("color input: colorized from its L only")
    log.info(
        "%s -> %s: %d frames in %.1f s (%.2f frames/s)", info.path, out, result.frames, result.seconds, result.speed
    )
    return result
