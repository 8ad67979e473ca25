"""Shared test fixtures: tiny generated videos and a 64 px shard set made from them (session-scoped).

`demo_videos`: 6 color scenes (2 s at 12 fps, 64x86 px, `scene_000.mp4` ...) + `bw_000.mp4`.
`demo_shards`: those sharded at 64 px with clip_len 8 (3 clips per video; split 4/1/1 + legacy).
Both are read-only for tests: copy them before modifying anything.
"""

from __future__ import annotations

from pathlib import Path

import pytest

DEMO_VIDEOS = 6
DEMO_SECONDS = 2.0
DEMO_FPS = 12
DEMO_SIZE = 64
DEMO_CLIP_LEN = 8


@pytest.fixture(scope="session")
def demo_videos(tmp_path_factory) -> Path:
    from data_shards.demo import make_demo_videos

    out = tmp_path_factory.mktemp("demo_videos")
    make_demo_videos(out, videos=DEMO_VIDEOS, seconds=DEMO_SECONDS, size=DEMO_SIZE, fps=DEMO_FPS, seed=0)
    return out


@pytest.fixture(scope="session")
def demo_shards(tmp_path_factory, demo_videos) -> Path:
    from data_shards.writer import write_shard_set

    out = tmp_path_factory.mktemp("demo_shards")
    write_shard_set([demo_videos], out, size=DEMO_SIZE, clip_len=DEMO_CLIP_LEN, seed=0, show_progress=False)
    return out
