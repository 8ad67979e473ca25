"""A shard set made by `vidcolor shard`, wherever it lies: its manifest, files and checksums.

`ShardSet(location)`: a local folder or a URL prefix (``http(s)://...``, or ``s3://BUCKET/PREFIX``
read through pyarrow's S3 filesystem, the one Ray's ``--storage`` uses, configured the same way:
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` or ``~/.aws``, ``AWS_ENDPOINT_URL`` for an
S3-compatible server; WebDataset opens ``s3://`` shards through the handler registered below).
``.manifest`` is parsed and checked on construction; ``.ab_histogram()`` never unpickles; ``.verify(split)``
checks the shards' sha256 against the manifest (for the damage that still decodes; the readers
count the samples of each shard through `data_shards.integrity.ShardTally`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from webdataset.gopen import gopen_schemes

from data_shards import manifest as mf
from data_shards import stats
from models.errors import VidcolorError

log = logging.getLogger(__name__)


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
                self.location = self.location[len("file://") :]
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
                with open_s3(where) as f:
                    yield f
        except FileNotFoundError:
            raise VidcolorError(f"{where}: not found; is this a shard set made by `vidcolor shard`?") from None
        except (OSError, urllib.error.URLError) as exc:
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
        self._check_checksums(names)
        return names

    def _check_checksums(self, names: list[str]) -> None:
        """Each shard's sha256 against the manifest's; one error naming every shard that differs."""
        manifest_where = self.where(mf.MANIFEST_FILE)
        if self.manifest["format"] == mf.FORMAT_V1:
            raise VidcolorError(
                f"{manifest_where}: format {mf.FORMAT_V1!r} records no checksums, so the shards "
                f"cannot be verified; shard the sources again to get {mf.FORMAT!r}"
            )
        bad = []
        for name in names:
            want = str(self.manifest["shard_stats"][name]["sha256"])
            got = self.digest(name)
            log.debug("sha256 %s %s", got, name)
            if got != want:
                bad.append(f"{self.where(name)} (sha256 {got[:16]}..., the manifest lists {want[:16]}...)")
        if bad:
            raise VidcolorError(
                f"{len(bad)} of {len(names)} shard(s) fail their checksum (damaged, or changed "
                f"after `vidcolor shard` wrote {manifest_where}): {'; '.join(bad)}"
            )
        log.info("verified the sha256 of %d shard(s) of %s", len(names), self.location)

    def url(self, name: str) -> str:
        """What WebDataset opens for one shard file (``s3://`` through `gopen_s3`)."""
        return self.where(name)

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
            raise VidcolorError(
                f"{self.where(mf.MANIFEST_FILE)}: no split {split!r} (has: {', '.join(self.splits) or 'none'})"
            ) from None

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


# ----------------------------------------------------------------------------- S3


@functools.lru_cache(maxsize=8)
def _s3_filesystem(bucket: str):
    """pyarrow's S3 filesystem for a bucket (credentials, region and endpoint from the environment
    and ~/.aws, as for Ray's storage); one per bucket and process."""
    from pyarrow import fs

    filesystem, _ = fs.FileSystem.from_uri(f"s3://{bucket}")
    return filesystem


def open_s3(url: str) -> BinaryIO:
    """A sequential binary stream of an ``s3://BUCKET/KEY`` object; FileNotFoundError when it is
    absent, OSError for any other failure."""
    rest = url[len("s3://") :]
    bucket, _, key = rest.partition("/")
    if not bucket or not key:
        raise OSError(f"{url}: not an s3://BUCKET/KEY URL")
    try:
        return _s3_filesystem(bucket).open_input_stream(f"{bucket}/{key}")
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise OSError(str(exc)) from None


def gopen_s3(url: str, mode: str = "rb", bufsize: int = 8192, **kw) -> BinaryIO:
    """WebDataset's opener for ``s3://`` shard URLs (its gopen has none of its own)."""
    if mode != "rb":
        raise ValueError(f"{url}: shard sets on S3 are read-only here (mode {mode!r})")
    return open_s3(url)


gopen_schemes["s3"] = gopen_s3
