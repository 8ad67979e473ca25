"""Temporary output files: named after the process writing them, published only when complete.

A writer puts its output under a hidden temporary name tagged ``PID@HOST`` (`partial_tag`) in the
output's folder and `publish`es it onto the final name only when it is complete, so a failed run
never leaves a half-written file under that name. A killed run cannot remove its temporary file;
the next writer of the same output removes those of dead processes of this host
(`remove_stale_partials`; a live writer's file is never touched). Used by the H.264 writer
(`study.media.video_out`) and by `vidcolor colorize`'s numbered-PNG output.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
from pathlib import Path

from models.errors import VidcolorError

log = logging.getLogger(__name__)


def partial_tag() -> str:
    """``PID@HOST`` of this process: the part of a temporary name that tells whose it is."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
    return f"{os.getpid()}@{host}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OSError:
        return True  # cannot tell: keep the file
    return True


def stale_partials(folder: Path, prefix: str, suffix: str) -> list[Path]:
    """Entries ``{prefix}{PID@HOST}{suffix}`` (or an older ``{prefix}{PID}{suffix}``) in ``folder``
    whose process is dead: this host's, never this process's, never a live one's."""
    _, host = partial_tag().split("@", 1)
    found = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return []
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(suffix)) or len(name) <= len(prefix) + len(suffix):
            continue
        match = re.fullmatch(r"(\d+)(?:@([A-Za-z0-9-]+))?", name[len(prefix) : len(name) - len(suffix)])
        if match is None or (match.group(2) is not None and match.group(2) != host):
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and not _pid_alive(pid):
            found.append(entry)
    return found


def remove_stale_partials(folder: Path, prefix: str, suffix: str) -> list[Path]:
    """Remove `stale_partials` (files or folders) left by killed runs; returns what was removed."""
    removed = []
    for entry in stale_partials(folder, prefix, suffix):
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as exc:
            log.warning("%s: left by a killed run, could not be removed (%s)", entry, exc)
            continue
        log.info("removed %s, left by a killed run", entry)
        removed.append(entry)
    return removed


def publish(tmp: Path, path: Path, overwrite: bool = True) -> None:
    """Move the finished ``tmp`` onto ``path``. Without ``overwrite`` an existing ``path`` is an
    error (checked atomically with a hard link where the file system has them)."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise VidcolorError(f"{path}: exists (pass --overwrite to replace it)") from None
    except OSError:  # no hard links on this file system: check, then rename
        if path.exists():
            raise VidcolorError(f"{path}: exists (pass --overwrite to replace it)") from None
        os.replace(tmp, path)
        return
    tmp.unlink()
