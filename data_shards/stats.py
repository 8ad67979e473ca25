"""Color statistics of shard sets: the 1-unit ab histogram and the black-and-white test.

The training split's ab histogram (``ab_hist.npy`` beside the manifest) is all the models need
to derive the empirical color prior for any bin grid and the class-rebalancing weights of Zhang
et al. 2016, so the bin grid stays a tunable hyperparameter without re-sharding. The same
histogram, per source, tells black-and-white sources (near-zero chroma) from color ones.
Conversions go through `models.color` so shards and models agree on Lab.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from models.color import AB_HIST_BINS, AB_HIST_MIN, ab_histogram, rgb_to_lab
from models.errors import VidcolorError

AB_HIST_FILE = "ab_hist.npy"

# The black-and-white rule (sources that go to the ``legacy`` split), on the source's ab histogram:
#
# 1. Gray: fewer than GRAY_MAX_SHARE (0.5 %) of its pixels have a chroma above GRAY_CHROMA (6 ab
#    units). Compression noise in a gray H.264/JPEG stays well below that; any real color scene,
#    even a faded one, has far more colorful pixels (a test pattern desaturated to 6 % of its
#    colors still has 12 % of its pixels above 6).
# 2. Tinted monochrome (sepia, cyanotype, a toned print): the colorful pixels (chroma above
#    GRAY_CHROMA) all share one hue. Fewer than TINT_MAX_SHARE (2 %) of them lie more than
#    TINT_HUE_DEG (15 degrees) from their mean hue. A toning process gives every pixel the same
#    hue (a sepia clip: 0.1 % off by more than 15 degrees), while real color footage, even a
#    dull or faded one with a color cast, spreads its hues (the cockatoo clip, mostly white and
#    gray with a pale yellow crest: 16-46 % in every 40-frame window; a faded, yellowed test
#    pattern: over 50 %). Such a film has no color information to learn from, and colorizing
#    it is exactly the legacy use.
# So low saturation alone never makes a source black-and-white; only near-zero chroma, or a
# single hue, does. A color scene that is genuinely one hue everywhere (rare) is treated as tinted.
GRAY_CHROMA = 6.0
GRAY_MAX_SHARE = 0.005
TINT_HUE_DEG = 15.0
TINT_MAX_SHARE = 0.02


def empty_histogram() -> np.ndarray:
    return np.zeros((AB_HIST_BINS, AB_HIST_BINS), np.int64)


def frames_histogram(frames: np.ndarray) -> np.ndarray:
    """uint8 frames (N, H, W, 3) -> np.int64 (256, 256) ab histogram (models.color's layout)."""
    # One clip at a time is too little work to share between threads: on a busy machine torch's
    # thread pool spins and runs ~40x slower than a single thread, so count single-threaded.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rgb = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0  # (N, 3, H, W)
        lab = rgb_to_lab(rgb)
        return ab_histogram(lab[:, 1:])
    finally:
        torch.set_num_threads(threads)


def _bin_chroma() -> np.ndarray:
    centers = np.arange(AB_HIST_BINS) + AB_HIST_MIN + 0.5  # cell i holds [i-128, i-127)
    return np.hypot(centers[:, None], centers[None, :])


def colorful_share(hist: np.ndarray, threshold: float = GRAY_CHROMA) -> float:
    """Share of pixels whose chroma exceeds ``threshold`` (0 for an empty histogram)."""
    total = hist.sum()
    return float(hist[_bin_chroma() > threshold].sum() / total) if total else 0.0


def off_hue_share(hist: np.ndarray, threshold: float = GRAY_CHROMA, degrees: float = TINT_HUE_DEG) -> float:
    """Among pixels with chroma above ``threshold``: the share whose hue lies more than ``degrees``
    from their (count-weighted circular) mean hue. 0 when no pixel is that colorful."""
    centers = np.arange(AB_HIST_BINS) + AB_HIST_MIN + 0.5
    a, b = np.meshgrid(centers, centers, indexing="ij")  # axis 0 = a, axis 1 = b
    colorful = np.where(np.hypot(a, b) > threshold, hist, 0).astype(np.float64)
    total = colorful.sum()
    if not total:
        return 0.0
    hue = np.arctan2(b, a)
    mean = np.angle((colorful * np.exp(1j * hue)).sum())
    off = np.abs(np.angle(np.exp(1j * (hue - mean)))) > np.radians(degrees)
    return float(colorful[off].sum() / total)


def tone(hist: np.ndarray) -> str:
    """``"gray"``, ``"tinted"`` (one hue: sepia and other toned monochrome) or ``"color"``."""
    if colorful_share(hist) < GRAY_MAX_SHARE:
        return "gray"
    if off_hue_share(hist) < TINT_MAX_SHARE:
        return "tinted"
    return "color"


def save_histogram(path: str | Path, hist: np.ndarray) -> None:
    check_histogram(hist, str(path))
    np.save(path, hist.astype(np.int64), allow_pickle=False)


def load_histogram(source: str | Path | bytes) -> np.ndarray:
    """Load an ``ab_hist.npy`` (path or its bytes) without unpickling; checks shape and dtype."""
    where = "ab_hist.npy" if isinstance(source, bytes) else str(source)
    try:
        hist = np.load(io.BytesIO(source) if isinstance(source, bytes) else source, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise VidcolorError(f"{where}: not a readable ab histogram ({exc})") from None
    check_histogram(hist, where)
    return hist.astype(np.int64)


def check_histogram(hist: np.ndarray, where: str) -> None:
    if not isinstance(hist, np.ndarray) or hist.shape != (AB_HIST_BINS, AB_HIST_BINS) or hist.dtype.kind not in "iu":
        got = f"{hist.dtype} {hist.shape}" if isinstance(hist, np.ndarray) else type(hist).__name__
        raise VidcolorError(f"{where}: expected an integer ({AB_HIST_BINS}, {AB_HIST_BINS}) ab histogram, got {got}")
    if (hist < 0).any():
        raise VidcolorError(f"{where}: ab histogram has negative counts")
