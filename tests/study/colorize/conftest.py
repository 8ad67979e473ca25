"""Fixtures for the colorize tests: comparing two videos frame by frame (plain PyAV)."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest


def _frames(path: str | Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _video_rmse(a: str | Path, b: str | Path) -> float:
    """Per-pixel RMSE (RGB, 0-255) over all frames of two videos of equal size and length."""
    fa, fb = _frames(a), _frames(b)
    assert len(fa) == len(fb) and fa, f"{a}: {len(fa)} frames, {b}: {len(fb)}"
    assert fa[0].shape == fb[0].shape, f"{a}: {fa[0].shape}, {b}: {fb[0].shape}"
    d = np.stack(fa).astype(np.float64) - np.stack(fb).astype(np.float64)
    return math.sqrt(float(np.vdot(d, d)) / d.size)


@pytest.fixture
def video_rmse():
    """`video_rmse(a, b)`: per-pixel RGB RMSE (0-255) over all frames of two equal-size videos."""
    return _video_rmse
