"""`vidcolor colorize CKPT IN [OUT]`: colorize legacy black-and-white films with a trained model.

IN is a video file, a frame folder, or a directory of them; OUT an .mp4 file or a frame folder
(default ``IN_color.mp4``; for a directory, a folder ``IN_color/`` holding one .mp4 per input).
The model at work is `study.colorize.inference`, one film's way through it
`study.colorize.pipeline`; this module plans the inputs and outputs, runs them and prints the
table. A color input is colorized from its lightness only, and a note says so, so the result can
be compared with the original.

Bad input: a missing, empty, truncated or non-video IN gives an error naming the file, and every
OUT is checked before any work: an existing output is refused (all of them listed, for a
directory run) unless ``--overwrite``. For a directory of inputs, one bad video is reported in the table
and the others still get done (exit status 1).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from data_shards import outdir
from data_shards.sources import find_sources, is_frame_folder
from data_shards.video import probe
from models.errors import VidcolorError
from study.colorize.inference import FilmInference
from study.colorize.pipeline import OUTPUT_VIDEO_SUFFIX, Result, colorize_source, is_frame_output
from study.report import fmt, format_table

log = logging.getLogger(__name__)

BATCH_SIZE = 16  # default --batch-size (bench/colorize.py: batching is never slower, on CPU or GPU)


def default_output(path: Path) -> Path:
    """IN_color.mp4 beside a video or frame folder; IN_color/ for a directory of inputs."""
    if path.is_dir() and not is_frame_folder(path):
        return path.with_name(path.name + "_color")
    stem = path.name if path.is_dir() else path.stem
    return path.with_name(stem + "_color" + OUTPUT_VIDEO_SUFFIX)


def plan(input_path: Path, output: Path | None, overwrite: bool = False) -> list[tuple[Path, Path]]:
    """(source, output) pairs for IN and OUT; checks OUT can be written before any work.

    OUT naming an existing folder means "put the result in there" (IN_color.mp4 inside it), never
    "replace that folder", unless it holds only numbered PNG frames (an earlier frame output, which
    is then OUT itself). No output may land on an input: OUT == IN, or a directory run whose
    outputs would fall on its own sources, is refused before anything is written. Two inputs
    that would share an output name (``clip.mp4`` and ``clip.avi``) get distinct names. Without
    ``overwrite`` an existing output is refused.
    """
    pairs = _plan(input_path, output)
    if not overwrite:
        _refuse_existing(pairs, input_path, output)
    return pairs


def _check_path(path: Path, what: str, follow: bool = True) -> bool:
    """Whether ``path`` exists; a path the system refuses to look at (a name too long, a symlink
    loop, a folder without permission) is an error naming ``what`` and the path."""
    try:
        os.stat(path, follow_symlinks=follow)
        if not follow and path.is_symlink():
            path.resolve()  # a link that loops (RuntimeError before Python 3.13, OSError after)
        return True
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (OSError, RuntimeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "a symbolic link loop"
        raise VidcolorError(f"{what} {path}: cannot be used ({reason})") from None


def _plan(input_path: Path, output: Path | None) -> list[tuple[Path, Path]]:
    if not _check_path(input_path, "IN"):
        raise VidcolorError(f"{input_path}: no such file or folder")
    out = Path(output) if output is not None else default_output(input_path)
    _check_path(out, "OUT", follow=False)  # (a dangling link is check_place's to refuse)
    if input_path.is_dir() and not is_frame_folder(input_path):
        return _plan_directory(input_path, out)
    if out.is_dir() and out.suffix.lower() != OUTPUT_VIDEO_SUFFIX:
        if is_frame_folder(out) and out.resolve() == input_path.resolve():
            raise VidcolorError(f"{out}: OUT is the input itself; refusing to overwrite it")
        if not is_frame_output(out):
            out = out / default_output(input_path).name  # an existing folder: the result goes inside
    if out.suffix and out.suffix.lower() != OUTPUT_VIDEO_SUFFIX:
        raise VidcolorError(f"{out}: OUT must be an .mp4 file or a frame folder (no extension)")
    if out.resolve() == input_path.resolve():
        raise VidcolorError(f"{out}: OUT is the input itself; refusing to overwrite it")
    outdir.check_place(out, "OUT", folder=not out.suffix, expected="an .mp4 file name")
    return [(input_path, out)]


def _plan_directory(input_path: Path, out: Path) -> list[tuple[Path, Path]]:
    """`plan` for a directory of inputs: one .mp4 per source under the folder ``out``."""
    sources = find_sources(input_path)
    if not sources:
        raise VidcolorError(f"{input_path}: no video files or frame folders in it")
    if out.suffix.lower() == OUTPUT_VIDEO_SUFFIX or out.is_file():
        raise VidcolorError(f"{out}: IN is a directory of videos, so OUT must be a folder")
    if out.resolve() == input_path.resolve():
        raise VidcolorError(
            f"{out}: OUT is the input folder itself; the results would overwrite the "
            f"inputs of the same name. Choose another folder (default {default_output(input_path)})"
        )
    outdir.check_place(out, "OUT", folder=True)
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
            raise VidcolorError(
                f"{target}: output would overwrite the input {s}; choose an OUT folder outside {input_path}"
            )
        taken.add(target.resolve())
        pairs.append((s, target))
    return pairs


def _refuse_existing(pairs: list[tuple[Path, Path]], input_path: Path, output: Path | None) -> None:
    """An error naming every planned output that already exists (none is replaced without --overwrite)."""
    existing = [out for _, out in pairs if out.exists() or out.is_symlink()]
    if not existing:
        return
    if len(pairs) == 1 and pairs[0][0] == input_path:
        raise outdir.exists_error("OUT", existing[0].absolute())
    folder = Path(output) if output is not None else default_output(input_path)
    shown = ", ".join(str(p) for p in existing[:10]) + (f" and {len(existing) - 10} more" if len(existing) > 10 else "")
    raise VidcolorError(
        f"OUT {folder.absolute()}: {len(existing)} of the {len(pairs)} outputs exist ({shown}); "
        "pass --overwrite to replace them"
    )


def results_table(results: list[Result]) -> str:
    """The table `vidcolor colorize` prints: one row per input."""
    head = ("input", "output", "frames", "size", "fps", "bad", "seconds", "frames/s", "note")
    rows = []
    for r in results:
        if r.error:
            rows.append((str(r.source), "-", "-", "-", "-", "-", "-", "-", f"FAILED: {r.error}"))
            continue
        rows.append(
            (
                str(r.source),
                str(r.output),
                r.frames,
                f"{r.width}x{r.height}",
                f"{float(r.fps):.3f}".rstrip("0").rstrip("."),
                r.failed_frames,
                fmt(r.seconds, 1),
                fmt(r.speed, 2),
                "; ".join(r.notes + (["audio kept"] if r.audio else [])),
            )
        )
    return format_table(head, rows)


def main(args) -> int:
    """Handler of `vidcolor colorize`."""
    input_path = Path(args.input)
    overwrite = bool(getattr(args, "overwrite", False))
    pairs = plan(input_path, Path(args.output) if args.output else None, overwrite=overwrite)
    if args.batch_size is not None and args.batch_size < 1:
        raise VidcolorError(f"--batch-size: must be >= 1, got {args.batch_size}")
    inference = FilmInference.from_checkpoint(
        args.checkpoint,
        device=args.device,
        size=args.size,
        temperature=args.temperature,
        stabilize=getattr(args, "stabilize", None),
    )
    batch_size = args.batch_size or BATCH_SIZE
    log.info(
        "colorizing on %s at working size %d (T=%.2f), batches of %d",
        inference.device,
        inference.size,
        inference.temperature,
        batch_size,
    )
    if inference.stabilizer is not None:
        log.info("stabilizing the colors over time (strength %.2f)", inference.stabilizer.strength)
    results: list[Result] = []
    single = len(pairs) == 1 and pairs[0][0] == input_path
    for src_path, out in pairs:
        try:
            info = probe(src_path)
            out.parent.mkdir(parents=True, exist_ok=True)
            results.append(
                colorize_source(
                    inference,
                    info,
                    out,
                    batch_size=batch_size,
                    overwrite=overwrite,
                    crf=args.crf,
                    preset=args.encoder_preset,
                )
            )
        except VidcolorError as exc:
            if single:
                raise
            log.error("%s", exc)
            results.append(Result(src_path, None, error=str(exc)))
    print(results_table(results))
    for r in results:
        if r.was_color:
            print(
                f"note: {r.source} is in color; it was turned gray (its L channel) and colorized anew, "
                f"so {r.output} can be compared with the original."
            )
    failed = [r for r in results if r.error]
    if failed:
        print(f"{len(failed)} of {len(results)} inputs failed; the others are complete.")
        return 1
    return 0
