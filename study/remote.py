"""Checkpoints wherever Ray's storage put them: a local folder, or a URI (``s3://...``, ``gs://...``)
read through pyarrow's filesystems, the ones Ray writes them with (configured the same way, e.g.
``AWS_ENDPOINT_URL`` and credentials in the environment for S3)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from models.errors import VidcolorError


def is_uri(path: str | os.PathLike) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


@contextlib.contextmanager
def local_checkpoint(path: str | os.PathLike) -> Iterator[Path]:
    """A local folder holding the checkpoint at ``path``: the folder itself, or for a URI a
    temporary copy removed on exit. A missing or unreadable remote checkpoint is a VidcolorError
    naming the URI."""
    text = str(path)
    if not is_uri(text):
        yield Path(text[len("file://") :] if text.startswith("file://") else text)
        return
    from pyarrow import fs

    folder = Path(tempfile.mkdtemp(prefix="vidcolor-ckpt-"))
    try:
        try:
            remote, where = fs.FileSystem.from_uri(text.rstrip("/"))
            if remote.get_file_info(where).type != fs.FileType.Directory:
                raise VidcolorError(f"{text}: no such checkpoint folder")
            fs.copy_files(where, str(folder), source_filesystem=remote, destination_filesystem=fs.LocalFileSystem())
        except VidcolorError:
            raise
        except Exception as exc:
            raise VidcolorError(f"{text}: cannot read the checkpoint ({exc})") from None
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
