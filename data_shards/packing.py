"""The main-process side of `vidcolor shard`: staged clips copied into ``{split}-NNNNNN.tar`` shards.

The workers (`data_shards.staging`) leave one staging tar per source; `pack_split` copies the
clips of one split's sources from them into that split's shards, without re-encoding, adding each
sample's ``json`` (``video_id, split, fps, frame_indices, source, clip, start``). A shard is rolled
over by its real tar size (headers and padding included), so it stays within ``--shard-size``
unless one clip alone is larger. `data_shards.writer` runs the whole shard set.
"""

from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path
from typing import Any

import webdataset as wds

from data_shards.staging import read_staging


def _tar_bytes(key: str, sample: dict[str, Any]) -> int:
    """Bytes the members of one sample take in a tar: a 512-byte header each, data padded to 512
    (plus a long-name header pair for member names over 100 characters)."""
    total = 0
    for member, data in sample.items():
        if member.startswith("__"):
            continue
        name_extra = 1024 + -(-len(key) // 512) * 512 if len(key) + 1 + len(member) > 100 else 0
        total += 512 + name_extra + -(-len(data) // 512) * 512
    return total


def _tar_file_size(member_bytes: int) -> int:
    """File size of a tar holding ``member_bytes``: two zero end blocks, padded to 10240-byte records."""
    return -(-(member_bytes + 1024) // tarfile.RECORDSIZE) * tarfile.RECORDSIZE


class SplitShards:
    """The ``{split}-NNNNNN.tar`` files of one split, rolled over by hand on the real tar size
    (headers and padding included), so a shard stays within the limit unless one clip is larger.
    An integer mtime keeps tarfile from adding a PAX header (1 KB) to every member."""

    def __init__(self, build: Path, split: str, shard_bytes: int, mtime: int):
        self.writer = wds.ShardWriter(
            str(build / f"{split}-%06d.tar"),
            maxcount=10**12,
            maxsize=float("inf"),
            verbose=0,
            encoder=False,
            mtime=mtime,
        )
        self.shard_bytes = shard_bytes
        self.used = 0
        self.names: list[str] = []  # shard files in order

    def write(self, sample: dict[str, Any]) -> str:
        """Write one sample; returns the name of the shard it went to."""
        need = _tar_bytes(sample["__key__"], sample)
        if self.used and _tar_file_size(self.used + need) > self.shard_bytes:
            self.writer.next_stream()
            self.used = 0
        self.writer.write(sample)
        self.used += need
        name = Path(self.writer.fname).name
        if name not in self.names:
            self.names.append(name)
        return name

    def close(self) -> None:
        self.writer.close()


def pack_split(
    split: str,
    members: list[dict[str, Any]],
    build: Path,
    shard_bytes: int,
    clip_len: int,
    shard_stats: dict[str, dict[str, int]],
) -> tuple[list[str], list[dict[str, Any]]]:
    """Copy the staged clips of one split's sources (the workers' results, staging tars under
    ``build/staging``) into its shards of at most ``shard_bytes`` in ``build``; counts each shard's
    clips and frames into ``shard_stats``. Returns (shard names, manifest video entries)."""
    shards = SplitShards(build, split, shard_bytes, mtime=int(time.time()))
    videos = []
    try:
        for r in members:
            r_shards: list[str] = []
            for (key, frames), clip in zip(read_staging(build / "staging" / f"{r['index']:06d}.tar"), r["clips"]):
                meta = {
                    "video_id": r["id"],
                    "split": split,
                    "fps": r["fps"],
                    "frame_indices": clip["frame_indices"],
                    "source": r["source"],
                    "clip": int(key.rsplit("_clip", 1)[1]),
                    "start": clip["start"],
                }
                name = shards.write({"__key__": key, **frames, "json": json.dumps(meta).encode()})
                stat = shard_stats.setdefault(name, {"clips": 0, "frames": 0})
                stat["clips"] += 1
                stat["frames"] += clip_len
                if name not in r_shards:
                    r_shards.append(name)
            videos.append(_video_entry(r, split, r_shards))
    finally:
        shards.close()
    return shards.names, videos


def _video_entry(r: dict[str, Any], split: str, shards: list[str]) -> dict[str, Any]:
    """The manifest's entry of one source (a worker's result) packed into ``shards``."""
    return {
        "id": r["id"],
        "source": r["source"],
        "split": split,
        "frames": r["frames"],
        "clips": len(r["clips"]),
        "fps": r["fps"],
        "width": r["width"],
        "height": r["height"],
        "grayscale": r["grayscale"],
        "tone": r["tone"],
        "has_audio": r["has_audio"],
        "shards": shards,
    }
