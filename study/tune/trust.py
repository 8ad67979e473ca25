"""Whether a study's Ray storage may be resumed from: `tune --resume` unpickles it.

``Tuner.restore`` loads Tune's experiment state, its searcher and the trials' state with pickle,
so whoever can write the experiment folder under ``--storage`` can run code as the user who
resumes. Before a restore, a local experiment folder is checked: every file and folder in it (and
the folder itself) must be owned by this user and not writable by others, and none may be a
symbolic link. Group write is allowed
(a lab's shared group is trusted like the user). A remote storage (``s3://``...) cannot be checked
here: resuming from it trusts everyone who can write the bucket, which a warning says.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from models.errors import VidcolorError

log = logging.getLogger(__name__)

REMOTE_WARNING = (
    "--resume unpickles Ray's saved state from %s: anyone who can write there can run code as you; "
    "resume only from storage that you alone (or people you trust) can write"
)


def _why_untrusted(path: Path, uid: int) -> str | None:
    """What makes ``path`` untrusted (owner, write bits, being a link), or None."""
    info = path.lstat()
    if info.st_uid != uid:
        return f"is owned by uid {info.st_uid}, not by you (uid {uid})"
    if stat.S_ISLNK(info.st_mode):  # Ray never makes links there; one could lead anywhere
        return f"is a symbolic link (to {os.path.realpath(path)}), which Ray does not write"
    if info.st_mode & stat.S_IWOTH:
        return f"is writable by every user (mode {stat.filemode(info.st_mode)})"
    return None


def check_resumable(*folders: str) -> None:
    """Refuse to restore from local folders that someone else could have written; warn for a
    remote one. The error names the first such file and why."""
    uid = os.geteuid()
    for folder in folders:
        if "://" in folder and not folder.startswith("file://"):
            log.warning(REMOTE_WARNING, folder)
            continue
        root = Path(folder.removeprefix("file://"))
        if not root.exists():
            continue  # nothing to restore from there
        paths = [root]
        for dirpath, dirnames, filenames in os.walk(root):
            paths.extend(Path(dirpath, name) for name in dirnames + filenames)
        for path in paths:
            why = _why_untrusted(path, uid)
            if why:
                raise VidcolorError(
                    f"--resume: {path} {why}. Resuming unpickles Ray's saved state from {root}, which "
                    "runs code as you: check who changed it; if it is yours, fix its owner and mode "
                    "(chown, chmod o-w), or start the study again under another name or --storage"
                )
