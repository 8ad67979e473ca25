"""The shard set's `manifest.json`: what is in it, where it came from, and what was skipped.

Readers use it instead of scanning tars (sample counts per split, shard and video), so
equal-length epochs across ranks can be planned up front. Layout (CONTRACT.md "Shards")::

    format: "vidcolor-shards/2", size, clip_len, fps (target or null), lossless,
    videos: [{id, source, split, frames, clips, fps, width, height, grayscale, tone, shards, has_audio}]
    (``tone``: gray | tinted | color, see data_shards.stats; ``grayscale`` = tone != color),
    splits: {name: {shards, clips, frames, videos}}, shard_stats: {file: {clips, frames, bytes, sha256}},
    skipped: [{source, reason}], duplicates: [[{id, source, split, distance}]], command, versions, created

``shard_stats`` gives the readers what each shard must hold: they count the samples they get
against ``clips`` and warn about every shortfall, and ``ShardSet.verify`` checks ``sha256`` (of
the whole tar file). Sets made before checksums (``vidcolor-shards/1``: ``shard_stats`` has only
clips and frames) are still read; only verifying them is refused.

``duplicates`` lists the groups of sources that hold one video (a perceptual hash of their frames
matches, `data_shards.fingerprint`), each in the order found, with ``distance`` the hash bits
that differ from the group's first; a group's color videos share one split. Sets made before it
have no such key and read as having none.

A video's ``frames`` are its distinct stored frames (all decoded frames after fps picking); it is
cut into ``clips = ceil(frames / clip_len)`` clips, the last one aligned to the video's end (so it
may overlap the one before). ``shard_stats`` frames count stored frames, overlap included.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

from models.errors import VidcolorError

FORMAT = "vidcolor-shards/2"
FORMAT_V1 = "vidcolor-shards/1"  # no checksums; still read
CHUNK = 1 << 20  # bytes hashed at a time
MANIFEST_FILE = "manifest.json"
SPLITS = ("train", "val", "test")
LEGACY = "legacy"
_REQUIRED = {
    "format": str,
    "size": int,
    "clip_len": int,
    "lossless": bool,
    "videos": list,
    "splits": dict,
    "shard_stats": dict,
    "skipped": list,
}
_VIDEO_REQUIRED = ("id", "source", "split", "frames", "clips", "fps")


def versions() -> dict[str, str]:
    """Versions of the packages that decide what the shards hold."""
    from importlib.metadata import PackageNotFoundError, version

    import av
    import numpy
    import PIL
    import webdataset

    try:
        vidcolor = version("vidcolor")
    except PackageNotFoundError:  # running from a checkout without install
        vidcolor = "unknown"
    return {
        "vidcolor": vidcolor,
        "python": platform.python_version(),
        "av": av.__version__,
        "ffmpeg": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
        "webdataset": webdataset.__version__,
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
    }


def clip_starts(frames: int, clip_len: int) -> list[int]:
    """First stored-frame position of each clip: consecutive, the last aligned to the end."""
    if frames < clip_len:
        return []
    starts = list(range(0, frames - clip_len + 1, clip_len))
    if starts[-1] + clip_len < frames:
        starts.append(frames - clip_len)
    return starts


def parse_manifest(text: str | bytes, where: str) -> dict[str, Any]:
    """Parse and check a manifest; errors name ``where`` and the field."""
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VidcolorError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise VidcolorError(f"{where}: expected a JSON object")
    if manifest.get("format") not in (FORMAT, FORMAT_V1):
        raise VidcolorError(
            f"{where}: field 'format' is {manifest.get('format')!r}, expected {FORMAT!r} (or the older {FORMAT_V1!r})"
        )
    for field, kind in _REQUIRED.items():
        if not isinstance(manifest.get(field), kind):
            raise VidcolorError(f"{where}: field {field!r} missing or not a {kind.__name__}")
    for i, video in enumerate(manifest["videos"]):
        if not isinstance(video, dict):
            raise VidcolorError(f"{where}: videos[{i}] is {_kind(video)}, not an object")
        for field in _VIDEO_REQUIRED:
            if field not in video:
                raise VidcolorError(f"{where}: videos[{i}] has no field {field!r}")
    for name, split in manifest["splits"].items():
        if not isinstance(split, dict):
            raise VidcolorError(f"{where}: splits.{name} is {_kind(split)}, not an object")
        for field in ("shards", "clips", "frames", "videos"):
            if field not in split:
                raise VidcolorError(f"{where}: splits.{name} has no field {field!r}")
        if not isinstance(split["shards"], list):
            raise VidcolorError(f"{where}: splits.{name}.shards is {_kind(split['shards'])}, not a list")
        for j, shard in enumerate(split["shards"]):
            if not isinstance(shard, str):
                raise VidcolorError(f"{where}: splits.{name}.shards[{j}] is {_kind(shard)}, not a file name")
    if not isinstance(manifest.get("duplicates", []), list):
        raise VidcolorError(f"{where}: field 'duplicates' is not a list")
    _check_shard_stats(manifest, where)
    return manifest


def _kind(value: Any) -> str:
    """How a JSON value is named in an error: ``null``, or its JSON type and value."""
    if value is None:
        return "null"
    kind = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), "a number")
    return f"{kind} ({json.dumps(value)[:40]})"


def _check_shard_stats(manifest: dict[str, Any], where: str) -> None:
    """Every shard of every split has its counts (and, from format 2 on, its checksum)."""
    fields = ("clips", "frames") + (("bytes", "sha256") if manifest["format"] == FORMAT else ())
    for split in manifest["splits"].values():
        for name in split["shards"]:
            stat = manifest["shard_stats"].get(name)
            if not isinstance(stat, dict):
                raise VidcolorError(f"{where}: shard_stats has no entry for shard {name!r}")
            for field in fields:
                if field not in stat:
                    raise VidcolorError(f"{where}: shard_stats.{name} has no field {field!r}")


def file_digest(path: str | Path) -> tuple[int, str]:
    """(size in bytes, sha256 hex digest) of a file, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def write_manifest(path: str | Path, manifest: dict[str, Any]) -> None:
    """Write atomically (temporary name, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, path)
