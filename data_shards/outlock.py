"""The ``--out`` folder of `vidcolor shard`: locked, cleaned, and the new set installed.

The folder is checked like every command's output (`data_shards.outdir.check_folder`: a non-empty
folder is refused unless ``--overwrite``, and only one holding a shard set is ever replaced); the
replacement removes only the shard set's own files (`install`), so notes kept beside it stay. A
run takes ``.vidcolor-shard.lock`` in ``--out`` (an exclusive, non-blocking ``fcntl.flock``,
with the holder's pid written inside) before it looks at what the folder holds, so two runs into
one folder cannot both succeed: the second fails at once naming the folder and the holder's pid.
The kernel drops the lock when its holder dies, so a killed run's lock file is simply taken over.
Holding the lock, a run removes the ``.vidcolor-build-*`` folders that killed runs left behind
(no live run can be using them), builds in a fresh one and installs the set from it; the lock
file is removed on release.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import shutil
from pathlib import Path

from data_shards import manifest as mf
from data_shards import outdir, stats
from models.errors import VidcolorError

log = logging.getLogger(__name__)

BUILD_PREFIX = ".vidcolor-build-"
LOCK_FILE = ".vidcolor-shard.lock"
_SHARD_NAME = re.compile(r"^[a-z]+-\d{6}\.tar$")


def check_out(out: str | Path, overwrite: bool) -> Path:
    """``--out`` (absolute) checked by `data_shards.outdir.check_folder`: not empty (a lock file and
    build leftovers do not count) is refused unless ``overwrite``, and holding no shard set even
    then. Called before the lock is taken and again while holding it."""
    return outdir.check_folder(
        out, "--out", overwrite, holds=(mf.MANIFEST_FILE,), what="shard set", ignore=(BUILD_PREFIX, LOCK_FILE)
    )


def remove_leftovers(out: Path) -> list[str]:
    """Remove the build folders of killed runs (call only while holding the lock); their names."""
    gone = []
    for p in sorted(out.iterdir()):
        if p.name.startswith(BUILD_PREFIX) and p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
            log.info("removed %s, left by an interrupted `vidcolor shard` run", p)
            gone.append(p.name)
    return gone


def install(build: Path, out: Path) -> None:
    """Replace the shard set in ``out`` by the one in ``build``; the manifest goes last."""
    (out / mf.MANIFEST_FILE).unlink(missing_ok=True)
    for p in out.iterdir():
        if p.is_file() and (_SHARD_NAME.match(p.name) or p.name == stats.AB_HIST_FILE):
            p.unlink()
    for p in sorted(build.iterdir()):
        if p.is_file() and p.name != mf.MANIFEST_FILE:
            os.replace(p, out / p.name)
    os.replace(build / mf.MANIFEST_FILE, out / mf.MANIFEST_FILE)


class OutLock:
    """``with OutLock(out):`` holds ``out``'s lock file, or raises VidcolorError naming ``out`` and
    the pid of the run that holds it."""

    def __init__(self, out: Path):
        self.out, self.path = out, out / LOCK_FILE
        self.fd: int | None = None

    def __enter__(self) -> OutLock:
        while self.fd is None:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_pid(fd)
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise VidcolorError(
                        f"--out {self.out}: another `vidcolor shard` run is writing there "
                        f"(pid {holder or 'unknown'}, lock {self.path}); wait for it to "
                        "finish or choose another folder"
                    ) from None
                raise VidcolorError(f"--out {self.out}: cannot lock {self.path} ({exc.strerror or exc})") from None
            if _same_file(fd, self.path):
                self.fd = fd
            else:  # the holder removed it between our open and our lock: take the new one
                os.close(fd)
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())
        return self

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise VidcolorError(f"--out {self.out}: cannot write to it ({exc.strerror or exc})") from None

    def __exit__(self, *exc_info) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)  # before unlocking, so no one locks a removed file
            os.close(self.fd)
            self.fd = None


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)
