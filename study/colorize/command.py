"""`vidcolor colorize CKPT IN [OUT]`: colorize legacy black-and-white videos with a trained model.

The method is the seed paper's ("Automatic Colorization of Videos", after Zhang et al. 2016): the
network sees only the lightness L and predicts a distribution over quantized ab colors, decoded
by the annealed mean. For a film:

1. Each frame's L is taken at full resolution (a color input is thereby turned gray: only its
   lightness is used, and a note says so, so the result can be compared with the original).
2. For the network, L is resized (antialiased) so that its **short side is the working size**
   (the size the model was trained at, or ``--size``), keeping the aspect ratio; both sides are
   rounded to a multiple of 8 (the net's stride). The model was trained on square crops of frames
   whose short side had been scaled to that size, so this keeps objects at the scale it learned
   and never distorts them; squashing a 16:9 frame into a square would (a stretched face gets
   the colors of a wider thing), and cropping would leave the borders without colors.
3. The predicted ab (1/4 of the working size) is upsampled bilinearly to full resolution and
   joined with the original full-resolution L; Lab -> RGB gives the output frame. Detail and
   sharpness therefore come from the original film, only chroma comes from the net.
4. Frames go through in batches. A temporal model (ConvLSTM) runs its per-frame trunk on the
   whole batch at once, then its recurrent steps in order; its state is carried from one batch to
   the next, so it runs across the entire video, never reset per window. An ensemble (exp3)
   averages its members' distributions.

Bad input: a missing, empty, truncated or non-video IN gives an error naming the file. A frame
that fails to decode mid-video is reported and replaced by its neighbour's colorized frame (the
previous one, or the next one at the start), so the output keeps the input's frame count. The
output is written under a temporary name and renamed only when complete (study.media.video_out), so
nothing half-written ever sits under OUT. For a directory of inputs, one bad video is reported and
the others still get done.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import shutil
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from data_shards.video import find_sources, frame_files, is_frame_folder, open_video, probe, upright
from models.color import chroma, frames_to_l, frames_to_lab, lab_to_frames
from models.errors import VidcolorError
from study.media.video_out import VideoWriter

log = logging.getLogger(__name__)

DEFAULT_WORKING_SIZE = 256  # short side the net sees when the checkpoint does not record one
NET_STRIDE = 8  # the working size is rounded to a multiple of this (conv1-3 each halve it)
COLOR_CHROMA = 3.0  # mean chroma (ab units) above which an input counts as a color video
OUTPUT_VIDEO_SUFFIX = ".mp4"


# ---- sources ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """One input video: a file FFmpeg decodes, or a folder of numbered frames."""

    path: Path
    kind: str  # "video" | "frames"
    fps: Fraction
    width: int
    height: int
    frames: int  # declared by the container (0 when unknown), or the folder's file count
    has_audio: bool = False
    frames_exact: bool = True  # False when `frames` is only estimated from the duration
    rotation: int = 0  # display rotation (degrees counter-clockwise) applied to the decoded frames


def open_source(path: str | os.PathLike) -> Source:
    """Probe one input; raises a VidcolorError naming the file if it cannot be a video."""
    path = Path(path)
    # Phones store portrait video as landscape pixels plus a display matrix: probe gives the
    # upright size and rotation, and colorize writes the upright picture (the output has no matrix).
    info = probe(path)
    return Source(path, "frames" if path.is_dir() else "video", info.rate, info.width, info.height, info.frames,
                  info.has_audio, info.frames_exact, info.rotation)


def _read_image(p: Path) -> np.ndarray | None:
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        log.warning("%s: frame failed to decode (%s)", p, exc)
        return None


def read_frames(src: Source) -> Iterator[np.ndarray | None]:
    """The source's frames in order as uint8 (H, W, 3); ``None`` for a frame that failed to decode.

    Video files are read packet by packet so that one bad packet costs one frame, not the video.
    A container that breaks off mid-file (truncation) ends the stream with a VidcolorError.
    """
    if src.kind == "frames":
        for i, p in enumerate(frame_files(src.path)):
            frame = _read_image(p)
            if frame is not None and frame.shape[:2] != (src.height, src.width):
                raise VidcolorError(f"{p}: frame size {frame.shape[1]}x{frame.shape[0]} differs from the "
                                    f"folder's first frame ({src.width}x{src.height})")
            if frame is None:
                log.warning("%s: frame %d is unreadable; using its neighbour's colors", src.path, i)
            yield frame
        return
    container = open_video(src.path)
    with container:
        stream = container.streams.video[0]
        index = 0
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError as exc:
                raise VidcolorError(f"{src.path}: corrupt or truncated, reading stopped after frame {index} "
                                    f"({exc})") from None
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                if packet.size == 0:  # the final flush: nothing more to lose
                    log.warning("%s: decoder flush failed (%s)", src.path, exc)
                    break
                log.warning("%s: frame %d failed to decode (%s); using its neighbour's colors",
                            src.path, index, exc)
                index += 1
                yield None
                continue
            for vframe in frames:
                frame = upright(vframe.to_ndarray(format="rgb24"), src.rotation)
                if frame.shape[:2] != (src.height, src.width):
                    raise VidcolorError(f"{src.path}: frame {index} is {frame.shape[1]}x{frame.shape[0]}, "
                                        f"the stream is {src.width}x{src.height} (size changes are not supported)")
                index += 1
                yield frame
        if src.frames_exact and src.frames and index < src.frames:
            # Edit lists can legitimately hide a frame or two of those the index counts.
            if src.frames - index > max(2, src.frames // 100):
                raise VidcolorError(f"{src.path}: truncated, decoded {index} of the {src.frames} frames "
                                    f"the file declares")
            log.warning("%s: decoded %d of the %d frames the file declares", src.path, index, src.frames)


# ---- the model at work --------------------------------------------------------------------------

def working_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(w, h) the net sees for a width x height frame: short side ``size``, aspect kept, x8."""
    scale = size / min(width, height)

    def snap(v: float) -> int:
        return max(NET_STRIDE, int(round(v / NET_STRIDE)) * NET_STRIDE)

    return snap(width * scale), snap(height * scale)


def checkpoint_size(meta: dict | None) -> int | None:
    """The frame size a checkpoint was trained at: ``extra.frame_size`` when recorded, else the
    ``size`` in the manifest of the shard set named by ``extra.shards`` (when it is a local folder)."""
    extra = meta.get("extra") if isinstance(meta, dict) else None
    if not isinstance(extra, dict):
        return None
    value = extra.get("frame_size")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    shards = extra.get("shards")
    if isinstance(shards, str) and "://" not in shards:
        manifest = Path(shards) / "manifest.json"
        try:
            size = json.loads(manifest.read_text()).get("size")
        except (OSError, ValueError, AttributeError):
            return None
        if isinstance(size, int) and not isinstance(size, bool) and size > 0:
            return size
    return None


def resolve_device(name: str | None) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise VidcolorError(f"--device: {name!r} is not a torch device ({exc})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VidcolorError(f"--device: {name!r} asked for, but CUDA is not available here")
    return device


class FrameColorizer:
    """Colorizes consecutive frames of one video, carrying a temporal model's state between calls.

    ``colorize(frames uint8 (N, H, W, 3)) -> uint8 (N, H, W, 3)``; call ``reset()`` between videos.
    On CUDA the net runs under bf16 autocast (``amp=False`` turns that off); the color conversion
    and the annealed mean stay in float32.
    """

    def __init__(self, model: torch.nn.Module, gamut, *, temperature: float, size: int,
                 device: torch.device | str = "cpu", amp: bool | None = None):
        if not isinstance(size, int) or size < NET_STRIDE:
            raise VidcolorError(f"--size: working size must be an integer >= {NET_STRIDE}, got {size!r}")
        if not temperature >= 0:
            raise VidcolorError(f"--temperature: must be >= 0, got {temperature!r}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.gamut = gamut
        self.temperature = float(temperature)
        self.size = size
        self.amp = (self.device.type == "cuda") if amp is None else amp
        self.state = None
        self.frames_seen = 0

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike, device: str | None = None, size: int | None = None,
                        temperature: float | None = None, amp: bool | None = None) -> "FrameColorizer":
        from models.checkpoint import load_checkpoint

        path = Path(checkpoint)
        if not path.exists():
            raise VidcolorError(f"{path}: checkpoint not found")
        dev = resolve_device(device)
        loaded = load_checkpoint(path, device=str(dev))
        trained = checkpoint_size(getattr(loaded, "meta", None))
        size = size if size is not None else (trained or DEFAULT_WORKING_SIZE)
        if trained is None:
            log.info("%s records no training frame size; working size %d", path, size)
        temp = loaded.config.temperature if temperature is None else temperature
        return cls(loaded.model, loaded.gamut, temperature=temp, size=size, device=dev, amp=amp)

    def reset(self) -> None:
        """Start a new video: forget the temporal state."""
        self.state = None
        self.frames_seen = 0

    @torch.inference_mode()
    def colorize(self, frames: np.ndarray) -> np.ndarray:
        from models.model import final_logits

        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames (N, H, W, 3), got {frames.dtype} {frames.shape}")
        n, height, width = frames.shape[:3]
        x = torch.from_numpy(frames).to(self.device, non_blocking=True)
        l_full = frames_to_l(x)  # (N, 1, H, W) normalized L; the input's own ab is never computed
        w, h = working_size(width, height, self.size)
        l_work = F.interpolate(l_full, size=(h, w), mode="bilinear", align_corners=False,
                               antialias=(h < height or w < width))  # (N, 1, h, w)
        amp = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp else nullcontext()
        with amp:
            # one sequence of N frames: the trunk runs on all N at once, the ConvLSTM steps in order
            out = self.model(l_work.unsqueeze(0), state=self.state)
        self.state = out.state
        logits = final_logits(out)[0].float()  # (N, Q, h/4, w/4)
        ab = self.gamut.decode(logits, temperature=self.temperature)  # (N, 2, h/4, w/4)
        ab_full = F.interpolate(ab, size=(height, width), mode="bilinear", align_corners=False)
        self.frames_seen += n
        return lab_to_frames(l_full, ab_full).cpu().numpy()  # (N, H, W, 3)


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

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(("error", exc))

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
    """Calls ``write(frame)`` for each queued frame in a thread (libx264 runs beside the model)."""

    def __init__(self, write: Callable[[np.ndarray], None], depth: int = 64):
        self._write = write
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="colorize-encode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            frame = self._q.get()
            if frame is _END:
                return
            if self._error is None:
                try:
                    self._write(frame)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    self._error = exc

    def put(self, frame: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(frame)

    def finish(self) -> None:
        self._q.put(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error


# ---- outputs ------------------------------------------------------------------------------------

class FrameFolderWriter:
    """Numbered PNG frames into a folder; built in a temporary folder, renamed when complete."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.frames_written = 0
        self._tmp = self.path.parent / f".{self.path.name}.{os.getpid()}.partial"

    def __enter__(self) -> "FrameFolderWriter":
        if not self.path.parent.is_dir():
            raise VidcolorError(f"{self.path}: output folder {self.path.parent} does not exist")
        if self.path.is_dir():
            # Only a previous frame output (numbered PNGs, nothing else) may be replaced.
            foreign = [q.name for q in self.path.iterdir() if not (q.is_file() and q.suffix == ".png"
                                                                    and q.stem.isdigit())]
            if foreign:
                raise VidcolorError(f"{self.path}: folder exists and holds other files ({', '.join(sorted(foreign)[:3])}); "
                                    "refusing to replace it")
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
            if not self.path.is_dir():
                shutil.rmtree(self._tmp, ignore_errors=True)
                raise VidcolorError(f"{self.path}: exists and is not a folder")
            old = self.path.parent / f".{self.path.name}.{os.getpid()}.old"
            os.replace(self.path, old)
            os.replace(self._tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self._tmp, self.path)


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


def colorize_source(colorizer: FrameColorizer, src: Source, out: Path, *, batch_size: int = 16,
                    progress: bool = True, crf: int = 18, preset: str = "medium") -> Result:
    """Colorize one source into ``out`` (an .mp4 file, or a frame folder for any other name)."""
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise VidcolorError(f"--batch-size: must be >= 1, got {batch_size}")
    result = Result(src.path, out, width=src.width, height=src.height, fps=src.fps)
    to_video = out.suffix.lower() == OUTPUT_VIDEO_SUFFIX
    writer = (VideoWriter(out, src.fps, src.width, src.height,
                          audio_from=src.path if src.has_audio else None, crf=crf, preset=preset)
              if to_video else FrameFolderWriter(out))
    colorizer.reset()
    start = time.perf_counter()
    bar = tqdm(total=src.frames or None, unit="frame", desc=src.path.name, disable=not progress,
               dynamic_ncols=True, leave=False)
    last_good: np.ndarray | None = None
    missing_at_start = 0
    with writer, bar:
        result.audio = bool(getattr(writer, "has_audio", False))
        sink = _BackgroundSink(writer.write)
        try:
            for batch in _prefetch(_batches(read_frames(src), batch_size), depth=2):
                good = [f for f in batch if f is not None]
                colored = iter(colorizer.colorize(np.stack(good))) if good else iter(())
                if good and result.frames == 0 and mean_chroma(np.stack(good[:4])) > COLOR_CHROMA:
                    result.was_color = True
                    log.warning("%s is in color: only its lightness (L) is used, the result is a new "
                                "colorization to compare with the original", src.path)
                for frame in batch:
                    if frame is None:
                        result.failed_frames += 1
                        if last_good is None:
                            missing_at_start += 1  # filled with the first good frame below
                        else:
                            sink.put(last_good)
                        continue
                    last_good = next(colored)
                    for _ in range(missing_at_start):
                        sink.put(last_good)
                    missing_at_start = 0
                    sink.put(last_good)
                result.frames += len(batch)
                bar.update(len(batch))
            if last_good is None:
                raise VidcolorError(f"{src.path}: no frame could be decoded" if result.frames
                                    else f"{src.path}: holds no video frames")
        finally:
            sink.finish()
    result.seconds = time.perf_counter() - start
    if result.failed_frames:
        result.notes.append(f"{result.failed_frames} frame(s) failed to decode: neighbour's colors used")
    if result.was_color:
        result.notes.append("color input: colorized from its L only")
    log.info("%s -> %s: %d frames in %.1f s (%.2f frames/s)", src.path, out, result.frames,
             result.seconds, result.speed)
    return result


# ---- the command ---------------------------------------------------------------------------------

def default_output(path: Path) -> Path:
    """IN_color.mp4 beside a video or frame folder; IN_color/ for a directory of inputs."""
    if path.is_dir() and not is_frame_folder(path):
        return path.with_name(path.name + "_color")
    stem = path.name if path.is_dir() else path.stem
    return path.with_name(stem + "_color" + OUTPUT_VIDEO_SUFFIX)


def plan(input_path: Path, output: Path | None) -> list[tuple[Path, Path]]:
    """(source, output) pairs for IN and OUT; checks OUT can be written before any work.

    OUT naming an existing folder means "put the result in there" (IN_color.mp4 inside it), never
    "replace that folder". No output may land on an input: OUT == IN, or a directory run whose
    outputs would fall on its own sources, is refused before anything is written. Two inputs
    that would share an output name (``clip.mp4`` and ``clip.avi``) get distinct names.
    """
    if not input_path.exists():
        raise VidcolorError(f"{input_path}: no such file or folder")
    out = Path(output) if output is not None else default_output(input_path)
    many = input_path.is_dir() and not is_frame_folder(input_path)
    if many:
        sources = find_sources(input_path)
        if not sources:
            raise VidcolorError(f"{input_path}: no video files or frame folders in it")
        if out.suffix.lower() == OUTPUT_VIDEO_SUFFIX or out.is_file():
            raise VidcolorError(f"{out}: IN is a directory of videos, so OUT must be a folder")
        if out.resolve() == input_path.resolve():
            raise VidcolorError(f"{out}: OUT is the input folder itself; the results would overwrite the "
                                f"inputs of the same name. Choose another folder (default {default_output(input_path)})")
        _check_writable(out if out.is_dir() else out.parent, out)
        pairs: list[tuple[Path, Path]] = []
        taken: set[Path] = set()
        inputs = {s.resolve() for s in sources}
        for s in sources:
            rel = s.relative_to(input_path)
            name = rel.name if s.is_dir() else rel.stem
            target = out / rel.parent / (name + OUTPUT_VIDEO_SUFFIX)
            if target.resolve() in taken:  # clip.mp4 and clip.avi (or a folder clip/) side by side
                tag = s.suffix.lstrip(".").lower() if s.is_file() else "frames"
                target = out / rel.parent / f"{name}-{tag or 'video'}{OUTPUT_VIDEO_SUFFIX}"
            k = 2
            while target.resolve() in taken:
                target = out / rel.parent / f"{name}-{k}{OUTPUT_VIDEO_SUFFIX}"
                k += 1
            if target.resolve() in inputs:
                raise VidcolorError(f"{target}: output would overwrite the input {s}; choose an OUT folder "
                                    f"outside {input_path}")
            taken.add(target.resolve())
            pairs.append((s, target))
        return pairs
    if out.is_dir() and out.suffix.lower() != OUTPUT_VIDEO_SUFFIX:
        if is_frame_folder(out) and out.resolve() == input_path.resolve():
            raise VidcolorError(f"{out}: OUT is the input itself; refusing to overwrite it")
        out = out / default_output(input_path).name  # an existing folder: the result goes inside
    if out.suffix and out.suffix.lower() != OUTPUT_VIDEO_SUFFIX:
        raise VidcolorError(f"{out}: OUT must be an .mp4 file or a frame folder (no extension)")
    if out.resolve() == input_path.resolve():
        raise VidcolorError(f"{out}: OUT is the input itself; refusing to overwrite it")
    if out.is_dir() and out.suffix.lower() == OUTPUT_VIDEO_SUFFIX:
        raise VidcolorError(f"{out}: is a folder, expected an .mp4 file name")
    _check_writable(out.parent, out)
    return [(input_path, out)]


def _check_writable(folder: Path, out: Path) -> None:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise VidcolorError(f"{out}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise VidcolorError(f"{out}: cannot write to {probe} (permission denied)")
    if folder != probe and out.suffix.lower() == OUTPUT_VIDEO_SUFFIX and folder == out.parent:
        raise VidcolorError(f"{out}: output folder {folder} does not exist")


def _print_table(results: list[Result]) -> None:
    head = ("input", "output", "frames", "size", "fps", "bad", "seconds", "frames/s", "note")
    rows = []
    for r in results:
        if r.error:
            rows.append((str(r.source), "-", "-", "-", "-", "-", "-", "-", f"FAILED: {r.error}"))
            continue
        rows.append((str(r.source), str(r.output), str(r.frames), f"{r.width}x{r.height}",
                     f"{float(r.fps):.3f}".rstrip("0").rstrip("."), str(r.failed_frames),
                     f"{r.seconds:.1f}", f"{r.speed:.2f}",
                     "; ".join(r.notes + (["audio kept"] if r.audio else []))))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def main(args) -> int:
    """Handler of `vidcolor colorize`."""
    input_path = Path(args.input)
    pairs = plan(input_path, Path(args.output) if args.output else None)
    if args.batch_size is not None and args.batch_size < 1:
        raise VidcolorError(f"--batch-size: must be >= 1, got {args.batch_size}")
    colorizer = FrameColorizer.from_checkpoint(args.checkpoint, device=args.device, size=args.size,
                                               temperature=args.temperature)
    if args.batch_size is None:
        # bench/colorize.py: on CPU whole-frame batches only thrash the cache (frame by frame was
        # 1.4-3x faster at 720p); a GPU needs batches to be busy
        args.batch_size = 16 if colorizer.device.type == "cuda" else 1
    log.info("colorizing on %s at working size %d (T=%.2f), batches of %d", colorizer.device,
             colorizer.size, colorizer.temperature, args.batch_size)
    results: list[Result] = []
    single = len(pairs) == 1 and pairs[0][0] == input_path
    for src_path, out in pairs:
        try:
            src = open_source(src_path)
            out.parent.mkdir(parents=True, exist_ok=True)
            results.append(colorize_source(colorizer, src, out, batch_size=args.batch_size))
        except VidcolorError as exc:
            if single:
                raise
            log.error("%s", exc)
            results.append(Result(src_path, None, error=str(exc)))
    _print_table(results)
    for r in results:
        if r.was_color:
            print(f"note: {r.source} is in color; it was turned gray (its L channel) and colorized anew, "
                  f"so {r.output} can be compared with the original.")
    failed = [r for r in results if r.error]
    if failed:
        print(f"{len(failed)} of {len(results)} inputs failed; the others are complete.")
        return 1
    return 0


def video_rmse(a: str | os.PathLike, b: str | os.PathLike) -> float:
    """Per-pixel RMSE (RGB, 0-255) over all frames of two videos of equal size and length."""
    sa, sb = open_source(a), open_source(b)
    if (sa.width, sa.height) != (sb.width, sb.height):
        raise VidcolorError(f"{b}: size {sb.width}x{sb.height} differs from {a} ({sa.width}x{sa.height})")
    total, count = 0.0, 0
    for fa, fb in zip(read_frames(sa), read_frames(sb), strict=True):
        if fa is None or fb is None:
            continue
        d = fa.astype(np.float64) - fb.astype(np.float64)
        total += float(np.vdot(d, d))
        count += d.size
    if count == 0:
        raise VidcolorError(f"{a}: no frames to compare")
    return math.sqrt(total / count)
