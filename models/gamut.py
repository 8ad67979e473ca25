"""Quantized ab color space: the in-gamut bins, soft encoding, annealed-mean decoding, rebalancing.

Follows Zhang et al. 2016, "Colorful Image Colorization" (sections 2.1-2.2): the ab plane is cut
into a grid of bins, ground truth is soft-encoded onto the k nearest bins with a Gaussian kernel,
the prediction is decoded with the annealed mean at temperature T, and the loss of each pixel is
scaled by the rarity weight of its true bin.

The in-gamut rule (any grid size): a grid point c = (grid*i, grid*j) is a bin if one of the four
grid x grid cells that have c as a corner holds some sRGB color (at some L); equivalently, some
sRGB ab value lies within Chebyshev distance `grid` of c. So every sRGB color is surrounded by
bins on all four sides and its soft encoding is not lopsided at the gamut edge. The sRGB ab
gamut is found by converting the six faces of the RGB cube (512 x 512 samples each): the ab
projection of the color solid is the projection of its surface. Grid 10 gives 309 bins (Zhang's
released table has 313; about 309 of them meet this rule), grid 5 gives 1055, grid 20 gives 101.
"""

from __future__ import annotations

import functools
import hashlib
import logging

import numpy as np
import torch
import torch.nn.functional as F

from models.color import AB_HIST_BINS, AB_HIST_MIN, rgb_to_lab
from models.errors import VidcolorError

log = logging.getLogger(__name__)

DEFAULT_GRID = 10
DEFAULT_SOFT_K = 5
DEFAULT_SOFT_SIGMA = 5.0
DEFAULT_TEMPERATURE = 0.38
#: Annealed-mean temperatures a config, `vidcolor evaluate` and `vidcolor colorize` take.
MAX_TEMPERATURE = 10.0
DEFAULT_GAMMA = 0.5
DEFAULT_PRIOR_SIGMA = 5.0
MIN_GRID, MAX_GRID = 2, 64
_FACE_SAMPLES = 512
_CHUNK = 1 << 16  # pixels per distance computation (bounds memory to _CHUNK * Q floats)


def check_temperature(value: float, name: str = "--temperature") -> float:
    """``value`` as a float when it is an annealed-mean T in [0, MAX_TEMPERATURE], else an error naming ``name``."""
    if not 0.0 <= value <= MAX_TEMPERATURE:  # NaN fails this too
        raise VidcolorError(f"{name}: must be in [0, {MAX_TEMPERATURE:g}], got {value!r}")
    return float(value)


@functools.cache
def _srgb_ab_samples() -> np.ndarray:
    """ab of the RGB cube's six faces, float32 (2, 6 * 512 * 512). Computed once per process."""
    g = torch.linspace(0.0, 1.0, _FACE_SAMPLES)
    u, v = torch.meshgrid(g, g, indexing="ij")
    faces = []
    for axis in range(3):
        others = [i for i in range(3) if i != axis]
        for value in (0.0, 1.0):
            ch = [None, None, None]
            ch[axis] = torch.full_like(u, value)
            ch[others[0]], ch[others[1]] = u, v
            faces.append(torch.stack(ch))
    lab = rgb_to_lab(torch.stack(faces))  # (6, 3, n, n)
    return lab[:, 1:].permute(1, 0, 2, 3).reshape(2, -1).numpy()


@functools.cache
def gamut_centers(grid: int) -> np.ndarray:
    """In-gamut bin centers for a grid size, float32 (Q, 2) sorted by (a, b). Cached per grid."""
    ab = _srgb_ab_samples()
    cells = np.floor(ab / grid).astype(np.int64)  # (2, n): lower-left corner index of each sample's cell
    offset = 1 << 10
    flat = np.unique((cells[0] + offset) * (offset * 4) + (cells[1] + offset))
    ci, cj = flat // (offset * 4) - offset, flat % (offset * 4) - offset
    corners = set()
    for di in (0, 1):
        for dj in (0, 1):
            corners.update(zip((ci + di).tolist(), (cj + dj).tolist()))
    centers = np.array(sorted(corners), dtype=np.float32) * grid
    log.debug("grid %d: %d in-gamut bins", grid, len(centers))
    return centers


class ABGamut:
    """The Q in-gamut ab bins of one grid size and the conversions between ab and bins.

    `ABGamut(grid)` derives the bins from the sRGB gamut (see the module docstring);
    `ABGamut(grid, centers=...)` uses given centers (e.g. the 313 of the ECCV16 release).
    Tensors are moved to the input's device on use; `centers` itself stays on the CPU.
    """

    def __init__(self, grid: int = DEFAULT_GRID, centers: np.ndarray | torch.Tensor | None = None):
        if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or not MIN_GRID <= grid <= MAX_GRID:
            raise VidcolorError(f"grid: must be an integer in [{MIN_GRID}, {MAX_GRID}], got {grid!r}")
        self.grid = int(grid)
        if centers is None:
            c = torch.from_numpy(gamut_centers(self.grid).copy())
        else:
            c = torch.as_tensor(np.asarray(centers, dtype=np.float32))
            if c.dim() != 2 or c.shape[1] != 2 or c.shape[0] < 2 or not torch.isfinite(c).all():
                raise VidcolorError(f"centers: expected a finite float array of shape (Q, 2), got {tuple(c.shape)}")
        self.centers = c.contiguous()  # (Q, 2) float32
        self._device_cache: dict[tuple, torch.Tensor] = {}

    @property
    def num_bins(self) -> int:
        return int(self.centers.shape[0])

    def __repr__(self) -> str:
        return f"ABGamut(grid={self.grid}, num_bins={self.num_bins})"

    def __eq__(self, other) -> bool:
        return isinstance(other, ABGamut) and self.grid == other.grid and torch.equal(self.centers, other.centers)

    def __getstate__(self):  # pickles cleanly to Ray workers (no device tensors)
        return {"grid": self.grid, "centers": self.centers}

    def __setstate__(self, state):
        self.grid, self.centers, self._device_cache = state["grid"], state["centers"], {}

    def digest(self) -> str:
        """sha256 of the centers (float32 little-endian bytes): identifies the bin layout."""
        return hashlib.sha256(self.centers.numpy().astype("<f4").tobytes()).hexdigest()

    def centers_on(self, device, dtype=torch.float32) -> torch.Tensor:
        key = (str(device), dtype)
        if key not in self._device_cache:
            self._device_cache[key] = self.centers.to(device=device, dtype=dtype)
        return self._device_cache[key]

    # ---- ab -> bins -------------------------------------------------------------------------

    def _pixels(self, ab: torch.Tensor, name: str) -> torch.Tensor:
        if ab.dim() != 4 or ab.shape[1] != 2:
            raise VidcolorError(f"{name}: expected ab of shape (N, 2, h, w), got {tuple(ab.shape)}")
        return ab.float().permute(0, 2, 3, 1).reshape(-1, 2)  # (P, 2)

    def _sq_dist(self, px: torch.Tensor) -> torch.Tensor:
        c = self.centers_on(px.device)
        return torch.cdist(px, c, compute_mode="donot_use_mm_for_euclid_dist") ** 2  # (P, Q)

    def nearest_bin(self, ab: torch.Tensor) -> torch.Tensor:
        """ab (N, 2, h, w) -> index of the nearest bin, int64 (N, h, w)."""
        n, _, h, w = ab.shape if ab.dim() == 4 else (0, 0, 0, 0)
        px = self._pixels(ab, "nearest_bin")
        out = (
            torch.cat([self._sq_dist(chunk).argmin(dim=1) for chunk in px.split(_CHUNK)])
            if len(px)
            else torch.zeros(0, dtype=torch.long, device=ab.device)
        )
        return out.view(n, h, w)

    def soft_encode(self, ab: torch.Tensor, k: int = DEFAULT_SOFT_K, sigma: float = DEFAULT_SOFT_SIGMA) -> torch.Tensor:
        """ab (N, 2, h, w) -> soft targets (N, Q, h, w): the k nearest bins weighted by a Gaussian of
        width sigma (ab units), summing to 1 per pixel. k=1 gives the one-hot nearest bin."""
        return self.encode(ab, k, sigma)[0]

    def encode(
        self, ab: torch.Tensor, k: int = DEFAULT_SOFT_K, sigma: float = DEFAULT_SOFT_SIGMA
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(soft_encode(ab), nearest_bin(ab)) from one distance computation (the loss needs both)."""
        if not 1 <= int(k) <= self.num_bins:
            raise VidcolorError(f"soft_k: must be in [1, {self.num_bins}], got {k}")
        if not sigma > 0:
            raise VidcolorError(f"soft_sigma: must be > 0, got {sigma}")
        n, _, h, w = ab.shape if ab.dim() == 4 else (0, 0, 0, 0)
        px = self._pixels(ab, "soft_encode")
        target = torch.zeros(px.shape[0], self.num_bins, device=ab.device)
        nearest = torch.zeros(px.shape[0], dtype=torch.long, device=ab.device)
        for start in range(0, px.shape[0], _CHUNK):
            d2 = self._sq_dist(px[start : start + _CHUNK])
            d2_k, idx = d2.topk(int(k), dim=1, largest=False, sorted=True)  # (P, k), nearest first
            # subtract the nearest distance before exp so far-out-of-gamut pixels do not underflow
            wts = torch.exp(-(d2_k - d2_k[:, :1]) / (2.0 * sigma * sigma))
            target[start : start + _CHUNK].scatter_(1, idx, wts / wts.sum(dim=1, keepdim=True))
            nearest[start : start + _CHUNK] = idx[:, 0]
        return target.view(n, h, w, self.num_bins).permute(0, 3, 1, 2), nearest.view(n, h, w)

    # ---- bins -> ab -------------------------------------------------------------------------

    def decode(self, ab_logits: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
        """Annealed mean: ab_logits (N, Q, h, w) -> ab (N, 2, h, w).

        softmax(logits / T) re-normalizes the predicted distribution sharpened by T (Zhang's
        f_T(z) = exp(log z / T) / sum); its expectation over the centers is the color. T = 1 is
        the mean, T -> 0 the mode, and T = 0 returns the mode exactly. Log-probabilities work as
        logits, so an ensemble's averaged distribution decodes the same way.
        """
        if ab_logits.dim() != 4 or ab_logits.shape[1] != self.num_bins:
            raise VidcolorError(
                f"decode: expected ab_logits of shape (N, {self.num_bins}, h, w), got {tuple(ab_logits.shape)}"
            )
        return annealed_mean(ab_logits, self.centers_on(ab_logits.device), temperature)

    # ---- class rebalancing ------------------------------------------------------------------

    def _cell_to_bin(self) -> np.ndarray:
        """Nearest bin of every 1-unit histogram cell (its center), int64 (256 * 256,)."""
        if "_lut" not in self.__dict__:
            vals = torch.arange(AB_HIST_BINS, dtype=torch.float32) + AB_HIST_MIN + 0.5
            a, b = torch.meshgrid(vals, vals, indexing="ij")
            ab = torch.stack((a, b)).unsqueeze(0)  # (1, 2, 256, 256)
            self._lut = self.nearest_bin(ab).reshape(-1).numpy()
        return self._lut

    def prior_from_histogram(self, hist: np.ndarray, sigma: float = DEFAULT_PRIOR_SIGMA) -> torch.Tensor:
        """Empirical bin distribution p (Q,) float32 (sums to 1) from a 1-unit ab histogram.

        The 256 x 256 histogram (axis 0 = a, axis 1 = b) is smoothed with a Gaussian of width
        sigma ab units (sigma = 0: no smoothing), then every 1-unit cell adds its mass to its
        nearest bin. Zhang et al. smooth the bin distribution with sigma = 5; smoothing at 1-unit
        resolution first keeps the result valid for any grid.
        """
        hist = np.asarray(hist)
        if hist.shape != (AB_HIST_BINS, AB_HIST_BINS):
            raise VidcolorError(f"ab histogram: expected shape ({AB_HIST_BINS}, {AB_HIST_BINS}), got {hist.shape}")
        if not np.isfinite(hist).all() or (hist < 0).any() or hist.sum() <= 0:
            raise VidcolorError("ab histogram: must hold non-negative counts with a positive total")
        if sigma < 0:
            raise VidcolorError(f"prior sigma: must be >= 0, got {sigma}")
        h = torch.from_numpy(hist.astype(np.float64))
        if sigma > 0:
            radius = int(np.ceil(3 * sigma))
            x = torch.arange(-radius, radius + 1, dtype=torch.float64)
            g = torch.exp(-(x**2) / (2 * sigma * sigma))
            g = g / g.sum()
            img = h.view(1, 1, AB_HIST_BINS, AB_HIST_BINS)
            img = F.conv2d(F.pad(img, (0, 0, radius, radius)), g.view(1, 1, -1, 1))  # along a
            img = F.conv2d(F.pad(img, (radius, radius, 0, 0)), g.view(1, 1, 1, -1))  # along b
            h = img.view(AB_HIST_BINS, AB_HIST_BINS)
        prior = np.bincount(self._cell_to_bin(), weights=h.reshape(-1).numpy(), minlength=self.num_bins)
        prior = prior / prior.sum()
        return torch.from_numpy(prior.astype(np.float32))

    def rebalance_weights(self, prior: torch.Tensor | np.ndarray, gamma: float = DEFAULT_GAMMA) -> torch.Tensor:
        """Same as the module-level `rebalance_weights`, checking the prior's length."""
        prior = torch.as_tensor(prior)
        if prior.shape != (self.num_bins,):
            raise VidcolorError(f"prior: expected shape ({self.num_bins},) for {self!r}, got {tuple(prior.shape)}")
        return rebalance_weights(prior, gamma)


def annealed_mean(ab_logits: torch.Tensor, centers: torch.Tensor, temperature: float) -> torch.Tensor:
    """ab_logits (N, Q, h, w) and centers (Q, 2) on the same device -> ab (N, 2, h, w); see `ABGamut.decode`."""
    if not temperature >= 0:
        raise VidcolorError(f"temperature: must be >= 0, got {temperature}")
    centers = centers.to(torch.float32)
    if temperature == 0:
        return centers[ab_logits.argmax(dim=1)].permute(0, 3, 1, 2)
    probs = torch.softmax(ab_logits.float() / temperature, dim=1)  # (N, Q, h, w)
    return torch.einsum("nqhw,qc->nchw", probs, centers)


def rebalance_weights(prior: torch.Tensor | np.ndarray, gamma: float = DEFAULT_GAMMA) -> torch.Tensor:
    """Class-rebalancing weights w = ((1 - gamma) p + gamma / Q)^-1, scaled so E_p[w] = sum p w = 1.

    prior (Q,) sums to 1 -> float32 (Q,). A uniform prior gives all ones; rare bins get the
    largest weights (at most 1 / (gamma / Q) before scaling).
    """
    p = torch.as_tensor(prior, dtype=torch.float64)
    if p.dim() != 1 or p.numel() < 2 or not torch.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise VidcolorError(
            f"prior: expected a non-negative vector (Q,) with a positive sum, got shape {tuple(p.shape)}"
        )
    if not 0.0 < gamma <= 1.0:
        raise VidcolorError(f"gamma: must be in (0, 1], got {gamma}")
    p = p / p.sum()
    w = 1.0 / ((1.0 - gamma) * p + gamma / p.numel())
    w = w / (p * w).sum()
    return w.float()


def prior_digest(prior: torch.Tensor | np.ndarray | None) -> str | None:
    """sha256 of a prior's float32 values, or None."""
    if prior is None:
        return None
    return hashlib.sha256(np.asarray(torch.as_tensor(prior).detach().cpu().numpy(), dtype="<f4").tobytes()).hexdigest()
