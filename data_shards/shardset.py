"""A shard set made by `vidcolor shard`, wherever it lies: its manifest, files and checksums.

`ShardSet(location)`: a local folder or a URL prefix (``http(s)://...``; ``s3://...`` is read
through ``aws s3 cp URL -``, and WebDataset opens its shards through ``pipe:``). ``.manifest`` is
parsed and checked on construction; ``.ab_histogram()`` never unpickles; ``.verify(split)``
checks the shards' sha256 against the manifest (`data_shards.integrity.verify_shards`).
"""

from __future__ import annotations

import contextlib
import hashlib
import shlex
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from data_shards import integrity, stats
from data_shards import manifest as mf
from models.errors import VidcolorError


class ShardSet:
    """A shard set made by `vidcolor shard`: a local folder or a URL prefix."""

    def __init__(self, location: str | Path):
        self.location = str(location).rstrip("/") or "/"
        if self.location.startswith(("http://", "https://")):
            self.scheme = "http"
        elif self.location.startswith("s3://"):
            self.scheme = "s3"
        else:
            self.scheme = "local"
            if self.location.startswith("file://"):
                self.location = self.location[len("file://"):]
            if not Path(self.location).is_dir():
                raise VidcolorError(f"{self.location}: no such shard set folder")
            # absolute, so the location still holds when handed to processes with another cwd
            # (Ray runs trials and workers in their own folders)
            self.location = str(Path(self.location).resolve())
        self.manifest = mf.parse_manifest(self._read(mf.MANIFEST_FILE), self.where(mf.MANIFEST_FILE))

    def __repr__(self) -> str:
        return f"ShardSet({self.location!r})"

    def where(self, name: str) -> str:
        """The path or URL of one file of the set (for messages)."""
        return str(Path(self.location) / name) if self.scheme == "local" else f"{self.location}/{name}"

    @contextlib.contextmanager
    def _open(self, name: str) -> Iterator[BinaryIO]:
        """One file of the set as a binary stream; errors name it."""
        where = self.where(name)
        try:
            if self.scheme == "local":
                with open(where, "rb") as f:
                    yield f
            elif self.scheme == "http":
                with urllib.request.urlopen(where, timeout=60) as resp:
                    yield resp
            else:
                with subprocess.Popen(["aws", "s3", "cp", where, "-"], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE) as proc:
                    yield proc.stdout
                    proc.stdout.read()  # drain, so aws can exit
                    err = proc.stderr.read().decode(errors="replace").strip()
                    if proc.wait(timeout=300):
                        raise OSError(err or f"aws exited {proc.returncode}")
        except FileNotFoundError:
            raise VidcolorError(f"{where}: not found; is this a shard set made by `vidcolor shard`?") from None
        except (OSError, urllib.error.URLError, subprocess.TimeoutExpired) as exc:
            raise VidcolorError(f"{where}: cannot read ({exc})") from None

    def _read(self, name: str) -> bytes:
        with self._open(name) as f:
            return f.read()

    def digest(self, name: str) -> str:
        """The sha256 hex digest of one file of the set, read in chunks."""
        sha = hashlib.sha256()
        with self._open(name) as f:
            while chunk := f.read(mf.CHUNK):
                sha.update(chunk)
        return sha.hexdigest()

    def verify(self, split: str | None = None) -> list[str]:
        """Check the sha256 of every shard of ``split`` (default: of every split) against the
        manifest; a VidcolorError names each shard that differs. Returns the shards checked."""
        splits = [split] if split is not None else self.splits
        names = list(dict.fromkeys(n for s in splits for n in self._split(s)["shards"]))
        integrity.verify_shards(self, names)
        return names

    def url(self, name: str) -> str:
        """What WebDataset opens for one shard file."""
        where = self.where(name)
        return f"pipe:aws s3 cp {shlex.quote(where)} -" if self.scheme == "s3" else where

    @property
    def size(self) -> int:
        return int(self.manifest["size"])

    @property
    def clip_len(self) -> int:
        return int(self.manifest["clip_len"])

    @property
    def splits(self) -> list[str]:
        return list(self.manifest["splits"])

    def _split(self, split: str) -> dict[str, Any]:
        try:
            return self.manifest["splits"][split]
        except KeyError:
            raise VidcolorError(f"{self.where(mf.MANIFEST_FILE)}: no split {split!r} "
                                f"(has: {', '.join(self.splits) or 'none'})") from None

    def urls(self, split: str) -> list[str]:
        return [self.url(name) for name in self._split(split)["shards"]]

    def videos(self, split: str) -> list[dict[str, Any]]:
        self._split(split)
        return [v for v in self.manifest["videos"] if v["split"] == split]

    def num_videos(self, split: str) -> int:
        return int(self._split(split)["videos"])

    def num_clips(self, split: str) -> int:
        return int(self._split(split)["clips"])

    def num_frames(self, split: str) -> int:
        return int(self._split(split)["frames"])

    def ab_histogram(self) -> np.ndarray:
        """The training split's ab histogram, np.int64 (256, 256); never unpickles."""
        return stats.load_histogram(self._read(stats.AB_HIST_FILE))
