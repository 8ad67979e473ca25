"""Which video goes to which split: the ``--split`` percentages and the seeded assignment by video.

Splits are drawn by whole video (never by clip), so no scene is seen in training and evaluation
alike; black-and-white sources are not drawn at all (the writer puts them in ``legacy``).
"""

from __future__ import annotations

import math
import random

from data_shards.manifest import SPLITS
from models.errors import VidcolorError


def parse_split(text: str) -> dict[str, float]:
    """``"80,10,10"`` -> {"train": 80, "val": 10, "test": 10}; errors name the value."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 3:
        raise VidcolorError(f"--split {text!r}: expected three percentages train,val,test such as 80,10,10")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise VidcolorError(f"--split {text!r}: {next(p for p in parts if not _is_number(p))!r} is not a number") from None
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise VidcolorError(f"--split {text!r}: percentages must be finite and non-negative")
    if abs(sum(values) - 100.0) > 1e-6:
        raise VidcolorError(f"--split {text!r}: percentages add up to {sum(values):g}, not 100")
    if values[0] <= 0:
        raise VidcolorError(f"--split {text!r}: the train percentage must be above 0")
    return dict(zip(SPLITS, values))


def _is_number(p: str) -> bool:
    try:
        float(p)
        return True
    except ValueError:
        return False


def split_counts(n: int, percents: dict[str, float]) -> dict[str, int]:
    """Videos per split: largest-remainder rounding, then one video for every non-empty split while
    there are enough (train first), so 6 videos at 80/10/10 give 4/1/1."""
    names = list(percents)
    raw = [n * percents[s] / 100.0 for s in names]
    counts = [math.floor(r) for r in raw]
    by_remainder = sorted(range(len(names)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    for i, s in enumerate(names):
        if percents[s] > 0 and counts[i] == 0:
            donor = max(range(len(names)), key=lambda j: counts[j])
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[i] += 1
    return dict(zip(names, counts))


def assign_splits(video_ids: list[str], percents: dict[str, float], seed: int) -> dict[str, str]:
    """Seeded split by video: shuffle the sorted ids, then cut by `split_counts`."""
    ids = sorted(video_ids)
    random.Random(seed).shuffle(ids)
    out: dict[str, str] = {}
    start = 0
    for split, count in split_counts(len(ids), percents).items():
        for vid in ids[start:start + count]:
            out[vid] = split
        start += count
    return out
