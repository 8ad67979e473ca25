"""Where the source videos are: video files by extension and DAVIS-style frame folders.

A *source* is one video: either a file FFmpeg can decode, or a folder of numbered frames
(``00000.jpg, 00001.jpg, ...`` as in DAVIS ``JPEGImages/480p/<sequence>/``). `find_sources`
collects them under a path; `frame_files` orders a folder's frames by number (a missing number is
logged, never invented). Decoding them is `data_shards.video`'s job.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from models.errors import VidcolorError

log = logging.getLogger(__name__)

VIDEO_EXTS = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
        ".avi",
        ".mpg",
        ".mpeg",
        ".ts",
        ".mts",
        ".m2ts",
        ".flv",
        ".wmv",
        ".ogv",
        ".3gp",
        ".gif",
        ".y4m",
    }
)
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
_NUMBER = re.compile(r"(\d+)")


def list_folder(folder: Path) -> list[Path]:
    """The entries of ``folder``, sorted; a folder that cannot be read (permission denied, ...) is
    an error naming it."""
    try:
        return sorted(Path(folder).iterdir())
    except OSError as exc:
        raise VidcolorError(f"{folder}: cannot be read ({exc.strerror or exc})") from None


def is_frame_folder(path: Path) -> bool:
    """A folder that directly holds image files (the DAVIS layout)."""
    path = Path(path)
    return path.is_dir() and any(p.suffix.lower() in IMAGE_EXTS for p in list_folder(path) if p.is_file())


def _frame_number(p: Path) -> int | None:
    nums = _NUMBER.findall(p.stem)
    return int(nums[-1]) if nums else None


def frame_files(folder: Path) -> list[Path]:
    """The numbered frames of a folder in order; raises if any file is not a numbered image."""
    folder = Path(folder)
    files = [p for p in list_folder(folder) if p.is_file() and not p.name.startswith(".")]
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
        log.warning(
            "%s: %d frame number(s) missing (%s); the frames present are used as consecutive", folder, missing, runs
        )
        return missing
    return 0


def find_sources(src: str | Path, skipped: list[dict[str, str]] | None = None) -> list[Path]:
    """Video files and frame folders under ``src`` (itself one of them, or a directory searched recursively).

    Explicitly named files are returned whatever their extension (a non-video file is then
    skipped later with a reason); inside directories only known video extensions count. Folders
    named ``Annotations*`` (DAVIS segmentation masks) are not color video and are left out.
    A folder that cannot be read is an error naming it, or with ``skipped`` is appended to it
    (``{"source", "reason"}``) with a warning and left out.
    """
    src = Path(src)
    if not src.is_dir():
        return [src]
    try:
        if is_frame_folder(src):
            return [src]
        children = list_folder(src)
    except VidcolorError as exc:
        if skipped is None:
            raise
        log.warning("skipped %s", exc)
        skipped.append({"source": str(src), "reason": str(exc)})
        return []
    found: list[Path] = []
    for child in children:
        if child.name.startswith("."):
            continue
        if child.is_dir():
            if child.name.lower().startswith("annotations"):
                log.info("%s: DAVIS mask folder, not searched", child)
                continue
            found.extend(find_sources(child, skipped))
        elif child.suffix.lower() in VIDEO_EXTS:
            found.append(child)
        else:
            log.debug("%s: not a video file, ignored", child)
    return found
