"""Output paths: the one check every `vidcolor` command runs on what it will write, before any work.

A command's output is a file (``evaluate --json``, ``ctt export --out``, ``colorize`` OUT.mp4), a
folder it owns as a whole (``import-eccv16 --out``, ``demo-data --out``, ``train --out``, the
shard set of ``shard --out``), or a folder it only adds to (``ctt build --out``, ``demo
--workdir``, ``tune --storage``). Before its long work a command checks each one here, and every
refusal is a `VidcolorError` naming the flag and the path:

- `check_place` (every kind): a folder where a file must go, a file where a folder must go or on
  the parent path, a nearest existing folder this process cannot write; missing parent folders
  are fine (they are created on writing).
- `check_file`: also an existing file, unless ``overwrite`` (``--overwrite``).
- `check_folder`: also an existing folder that is not empty, unless ``overwrite``; and, when the
  caller names what its own output ``holds``, a non-empty folder holding none of it, even with
  ``overwrite`` (``--out ~ --overwrite`` must not replace a home folder).

A refused existing output reads ``{flag} {path}: exists; pass --overwrite to replace it``
(`exists_error`). With ``overwrite`` a file is replaced by a whole one (written under a
temporary name and renamed, `study.report.write_atomically`) and a folder whole, so no folder
ever mixes old and new files: through `replace_folder` (the new one is written beside it and
swapped in when complete, so a failure keeps the old one), or, where the output must be written
in place (a Ray Train run records its absolute paths), `empty_folder` (the old one deleted
first). `vidcolor shard` replaces only the files of its shard set (`data_shards.outlock`). The
standard library only (and `models.errors`): torch-free commands such as `ctt export` import it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from models.errors import VidcolorError

OVERWRITE_HINT = "pass --overwrite to replace it"
NEW_TAG = ".vidcolor-new-"  # the temporary sibling of a folder being replaced: .NAME.vidcolor-new-PID


def exists_error(flag: str, path: str | os.PathLike, detail: str = "exists") -> VidcolorError:
    """The refusal of an existing output: ``{flag} {path}: {detail}; pass --overwrite to replace it``."""
    return VidcolorError(f"{flag} {path}: {detail}; {OVERWRITE_HINT}")


def check_place(path: str | os.PathLike, flag: str, *, folder: bool, expected: str = "a file name") -> Path:
    """``path`` (absolute) where a command will write a file (``folder=False``) or a folder, or a
    VidcolorError naming ``flag`` and the path: a folder in a file's place ("expected
    ``expected``"), a file in a folder's place, a file on the parent path, or a nearest existing
    folder (the folder itself when it exists) that is not writable. Existing outputs pass."""
    path = Path(path).absolute()
    try:  # a name too long, a link that loops: the system cannot even look there
        os.stat(path, follow_symlinks=False)
        if path.is_symlink():
            path.resolve()  # RuntimeError on a loop before Python 3.13, OSError after
    except (FileNotFoundError, NotADirectoryError):
        pass
    except (OSError, RuntimeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "a symbolic link loop"
        raise VidcolorError(f"{flag} {path}: cannot be used ({reason})") from None
    if folder and path.exists() and not path.is_dir():
        raise VidcolorError(f"{flag} {path}: exists and is a file, not a folder")
    if not folder and path.is_dir():
        raise VidcolorError(f"{flag} {path}: is a folder, expected {expected}")
    nearest = (
        next(p for p in (path, *path.parents) if p.exists()) if folder else next(p for p in path.parents if p.exists())
    )
    if not nearest.is_dir():
        raise VidcolorError(f"{flag} {path}: {nearest} is a file, not a folder")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise VidcolorError(f"{flag} {path}: cannot write to {nearest} (permission denied)")
    return path


def check_file(path: str | os.PathLike, flag: str, overwrite: bool = False, *, expected: str = "a file name") -> Path:
    """`check_place` for a file output; an existing file (or link) is refused unless ``overwrite``."""
    path = check_place(path, flag, folder=False, expected=expected)
    if not overwrite and (path.exists() or path.is_symlink()):
        raise exists_error(flag, path)
    return path


def check_folder(
    path: str | os.PathLike,
    flag: str,
    overwrite: bool = False,
    *,
    holds: Iterable[str] = (),
    what: str = "output",
    ignore: Iterable[str] = (),
) -> Path:
    """`check_place` for a folder the command owns as a whole. A folder that exists and is not
    empty (names starting with an ``ignore`` prefix do not count) is refused unless ``overwrite``;
    with ``holds`` (names one of which every folder this command writes has, e.g. a checkpoint's
    ``config.json``) one that holds none of them is refused even then: it is not this command's
    ``what``."""
    path = check_place(path, flag, folder=True)
    try:
        present = (
            sorted(p.name for p in path.iterdir() if not p.name.startswith(tuple(ignore))) if path.is_dir() else []
        )
    except OSError as exc:
        raise VidcolorError(f"{flag} {path}: cannot list the folder ({exc.strerror or exc})") from None
    if not present:
        return path
    holds = tuple(holds)
    listing = ", ".join(present[:3]) + (", ..." if len(present) > 3 else "")
    if holds and not any(name in present for name in holds):
        raise VidcolorError(
            f"{flag} {path}: not empty ({listing}) and holds no {what} ({holds[0]} missing); "
            "refusing to replace it: choose a new or empty folder"
        )
    if not overwrite:
        raise exists_error(flag, path, f"exists and is not empty ({listing})")
    return path


@contextmanager
def replace_folder(path: str | os.PathLike) -> Iterator[Path]:
    """``with replace_folder(out) as folder:`` write the output folder into ``folder``. A missing or
    empty ``out`` is ``folder`` itself (made empty again when the body fails). Otherwise ``folder``
    is an empty folder beside ``out``, ``.NAME.vidcolor-new-PID``: when the body succeeds it takes
    ``out``'s place (the old ``out`` is removed only then), when it fails it is removed and ``out``
    is as it was. Such folders left by killed runs are removed first."""
    path = Path(path).absolute()
    _remove_dead_leftovers(path)
    if not path.is_dir() or not any(path.iterdir()):
        fresh = not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VidcolorError(f"{path}: cannot create the folder ({exc.strerror or exc})") from None
        try:
            yield path
        except BaseException:
            _clear(path, remove=fresh)
            raise
        return
    new = path.with_name(f".{path.name}{NEW_TAG}{os.getpid()}")
    try:
        shutil.rmtree(new, ignore_errors=True)
        new.mkdir()
    except OSError as exc:
        raise VidcolorError(f"{path}: cannot create the new folder beside it, {new} ({exc.strerror or exc})") from None
    try:
        yield new
        _swap_in(new, path)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise


def empty_folder(path: str | os.PathLike) -> Path:
    """Remove ``path`` (a folder `check_folder` let ``--overwrite`` replace) and make it again, empty:
    for outputs that must be written in place (a Ray Train run records its absolute paths)."""
    path = Path(path).absolute()
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VidcolorError(f"{path}: cannot empty the folder ({exc.strerror or exc})") from None
    return path


def _clear(path: Path, remove: bool) -> None:
    if remove:
        shutil.rmtree(path, ignore_errors=True)
        return
    for p in path.iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _swap_in(new: Path, path: Path) -> None:
    old = path.with_name(f".{path.name}.vidcolor-old-{os.getpid()}")
    try:
        if path.is_dir() and not path.is_symlink():
            os.replace(path, old)
        elif path.exists() or path.is_symlink():
            path.unlink()
        os.replace(new, path)
    except OSError as exc:
        if old.exists() and not path.exists():
            os.replace(old, path)
        raise VidcolorError(f"{path}: cannot move the new folder in place ({exc.strerror or exc})") from None
    shutil.rmtree(old, ignore_errors=True)


def _remove_dead_leftovers(path: Path) -> None:
    prefix = f".{path.name}{NEW_TAG}"
    try:
        siblings = list(path.parent.iterdir()) if path.parent.is_dir() else []
    except OSError:
        return
    for p in siblings:
        pid = p.name[len(prefix) :]
        if p.name.startswith(prefix) and pid.isdigit() and not _alive(int(pid)) and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
