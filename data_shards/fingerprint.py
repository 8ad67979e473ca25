"""A perceptual fingerprint of a source's stored frames, so `vidcolor shard` finds copies of one video.

A byte-identical copy of a video under another name, or the same footage re-encoded (another
bitrate, codec or resolution), would land in train and in test alike and leak the test set. Every
source is decoded once at ``--size`` anyway (`data_shards.staging`), so the fingerprint is taken
from those frames: the luma (Rec. 601) of `FRAMES` evenly spaced stored frames, each reduced to
32x32 (area mean), with a DCT pHash of each: the signs, against their median, of the 63 lowest
non-DC DCT coefficients (the 8x8 corner). With each frame's mean luma kept beside the bits, so
flat frames (whose coefficients are all about 0) of different brightness never look alike.

Two fingerprints match when the Hamming distance over all ``FRAMES * 63`` bits is at most
`MAX_DISTANCE` and the mean lumas differ by at most `MAX_MEAN_DIFF` on every frame. Measured on
the real footage (``../shared/data/real``, decoded at ``--size 64`` and ``256``, same figures
within 2 bits): the 1,596 pairs of its 57 different clips (51 training, 4 test, 2
black-and-white) are 178 to 328 bits apart (of 504; 1st percentile 210, median 252; the closest
two are a boxer and a rabbit eating, then two sign-language clips of one person in one room at
196). A byte-identical copy is 0; copies of 11 clips re-encoded are at most 26 (H.264 crf 38 at
half size; MPEG-4 at 200 kbit/s: 14; VP9 crf 45 at 3/4 size: 10), a gray copy (luma only) of a
color clip at most 8, every other frame dropped (half the frame rate, at 64 px) at most 30; mean lumas
within 4.7. `MAX_DISTANCE` = 64 is over twice the worst copy and under half the closest
different pair, so a false match (which moves a video to another split, or stops a split-file
run) stays unlikely in larger sets too.

What it misses: a copy trimmed at the start samples other moments (at 64 px, 2 frames off: 10
to 102 bits, 9 of 11 clips matched; 10 % off: 18 to 216), and a mirrored or cropped copy is
another picture (mirrored: about 250).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

FRAMES = 8  # stored frames sampled per source, the centers of FRAMES equal stretches
SIDE = 32  # luma reduced to SIDE x SIDE before the DCT
LOW = 8  # the LOW x LOW lowest DCT frequencies; the DC term is left out: 63 bits a frame
BITS = FRAMES * (LOW * LOW - 1)
#: The most differing bits (of `BITS`) for two sources to be copies (see the module docstring for
#: the measurement: different real clips >= 178, re-encoded copies <= 26).
MAX_DISTANCE = 64
#: The most two copies' mean luma (0-255) may differ on any sampled frame: a re-encode keeps it
#: within about 2, and flat frames of different brightness differ by more.
MAX_MEAN_DIFF = 12.0
_KEPT = 64  # frames held while streaming (at a stride that doubles), so memory does not grow with length


@dataclass(frozen=True)
class Fingerprint:
    """``bits``: bool (FRAMES, 63), one pHash per sampled frame; ``means``: float (FRAMES,) mean luma."""

    bits: np.ndarray
    means: np.ndarray

    def distance(self, other: Fingerprint) -> int:
        """Differing bits, 0 to `BITS`."""
        return int(np.count_nonzero(self.bits != other.bits))

    def matches(self, other: Fingerprint) -> bool:
        """Whether ``other`` is a copy of the same footage (see `MAX_DISTANCE`, `MAX_MEAN_DIFF`)."""
        return self.distance(other) <= MAX_DISTANCE and float(np.max(np.abs(self.means - other.means))) <= MAX_MEAN_DIFF

    def words(self) -> np.ndarray:
        """uint64 (FRAMES,): each frame's bits packed in one word."""
        packed = np.packbits(self.bits, axis=1, bitorder="little")  # (FRAMES, 8) bytes
        return np.ascontiguousarray(packed).view("<u8").ravel()

    def hex(self) -> str:
        """The bits as hex (for logs and debugging)."""
        return np.packbits(self.bits.ravel()).tobytes().hex()


_BYTE_BITS = np.array([bin(i).count("1") for i in range(256)], np.uint8)  # set bits of each byte value


def _popcount(words: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 in ``words`` (N, FRAMES) -> (N, FRAMES)."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2
        return np.bitwise_count(words)
    return _BYTE_BITS[words.view(np.uint8)].reshape(*words.shape, 8).sum(axis=-1)


@cache
def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix: ``D @ x`` transforms the columns of ``x``."""
    k = np.arange(n)[:, None]
    d = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d


def luma_thumbnail(frame: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> float32 (SIDE, SIDE) Rec. 601 luma, area-averaged (box filter)."""
    luma = frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.asarray(Image.fromarray(luma, mode="F").resize((SIDE, SIDE), Image.Resampling.BOX), np.float32)


def frame_hash(thumb: np.ndarray) -> np.ndarray:
    """bool (63,): the pHash of one (SIDE, SIDE) luma thumbnail."""
    d = _dct_matrix(SIDE)
    coeffs = (d @ thumb.astype(np.float64) @ d.T)[:LOW, :LOW].ravel()[1:]
    coeffs = coeffs.round(6)  # a flat frame's coefficients are rounding noise: 0, so all bits are 0
    return coeffs > np.median(coeffs)


class FrameSampler:
    """Takes the stored frames as they stream by and keeps the few the fingerprint needs.

    The count is known only at the end, so every frame at a multiple of a stride is kept (as a
    luma thumbnail), the stride doubling (and every other kept frame dropped) when more than
    `_KEPT` are held; at the end each of the `FRAMES` positions takes the nearest kept frame. Two
    copies with the same stored frames keep the same ones."""

    def __init__(self) -> None:
        self.stride = 1
        self.kept: dict[int, np.ndarray] = {}
        self.count = 0

    def add(self, frame: np.ndarray) -> None:
        """The next stored frame, uint8 (H, W, 3)."""
        position = self.count
        self.count += 1
        if position % self.stride:
            return
        self.kept[position] = luma_thumbnail(frame)
        if len(self.kept) > _KEPT:
            self.stride *= 2
            self.kept = {p: t for p, t in self.kept.items() if p % self.stride == 0}

    def fingerprint(self) -> Fingerprint | None:
        """The fingerprint of the frames added (None when there were none)."""
        if not self.kept:
            return None
        positions = np.array(sorted(self.kept))
        thumbs = []
        for k in range(FRAMES):
            target = (2 * k + 1) * self.count / (2 * FRAMES) - 0.5
            thumbs.append(self.kept[int(positions[np.argmin(np.abs(positions - target))])])
        return Fingerprint(np.stack([frame_hash(t) for t in thumbs]), np.array([t.mean() for t in thumbs]))


def duplicate_groups(fingerprints: list[Fingerprint | None]) -> list[list[int]]:
    """Indices of the sources that match one another (directly or through a chain of matches),
    grouped; each group in index order, the groups ordered by their first. Sources without a
    fingerprint match nothing. Each frame's bits are packed in one 64-bit word and every source
    compared with all later ones at once (3,000 sources: about 1 s on a busy 2-core machine)."""
    present = [i for i, f in enumerate(fingerprints) if f is not None]
    parent = list(range(len(fingerprints)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if present:
        packed = np.stack([fingerprints[i].words() for i in present])
        means = np.stack([fingerprints[i].means for i in present]).astype(np.float64)
        for a in range(len(present) - 1):  # each against all later ones at once
            bits = _popcount(packed[a + 1 :] ^ packed[a]).sum(axis=1)
            close = (bits <= MAX_DISTANCE) & (np.abs(means[a + 1 :] - means[a]).max(axis=1) <= MAX_MEAN_DIFF)
            for b in np.flatnonzero(close) + a + 1:
                ri, rj = root(present[a]), root(present[b])
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[int]] = {}
    for i in range(len(fingerprints)):
        groups.setdefault(root(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])
