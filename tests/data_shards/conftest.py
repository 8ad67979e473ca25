"""Fixtures for the data_shards tests: read shard tars back and count decoded frames without the
code under test (plain tarfile, Pillow and PyAV)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image


def read_samples(tar_path: Path) -> list[dict]:
    """Samples of one shard tar as {"key", "frames" uint8 (C, H, W, 3), "ext", "json"} in order."""
    groups: dict[str, dict[str, bytes]] = {}
    with tarfile.open(tar_path) as tar:
        for info in tar:
            key, member = info.name.split(".", 1)
            groups.setdefault(key, {})[member] = tar.extractfile(info).read()
    out = []
    for key, members in groups.items():
        names = sorted(m for m in members if m != "json")
        frames = np.stack([np.asarray(Image.open(io.BytesIO(members[n])).convert("RGB")) for n in names])
        out.append({"key": key, "frames": frames, "ext": names[0].split(".")[1], "json": json.loads(members["json"])})
    return out


def all_samples(shard_dir: Path) -> list[dict]:
    return [s for tar in sorted(Path(shard_dir).glob("*.tar")) for s in read_samples(tar)]


@pytest.fixture
def shard_io():
    """`read_samples(tar)` and `all_samples(dir)`: plain tarfile + Pillow, independent of data_shards."""

    class _IO:
        pass

    io_ = _IO()
    io_.read_samples, io_.all_samples = read_samples, all_samples
    return io_


def _count_frames(path: str | Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture
def count_frames():
    """`count_frames(path)`: how many frames PyAV decodes (the ground truth frame counts are compared to)."""
    return _count_frames
