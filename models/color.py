"""Color science in one place: sRGB <-> CIE Lab (D65), L/ab normalization and ab statistics.

Batched torch functions that run on whatever device their input lives on, so the training loop
converts uint8 frames to Lab on the GPU. The conversion follows IEC 61966-2-1 (sRGB transfer
curve, D65 primaries) and CIE 1976 L*a*b* with the D65 white point; it is the same arithmetic as
scikit-image's `rgb2lab`, written out here (about 30 lines) instead of adding a dependency.

Normalization follows Zhang et al. 2016 ("Colorful Image Colorization", official PyTorch port):
the network sees ``(L - 50) / 100`` and ab values are scaled by 110.
"""

from __future__ import annotations

import numpy as np
import torch

from models.errors import VidcolorError

L_CENT = 50.0  # the network input is (L - L_CENT) / L_NORM
L_NORM = 100.0
AB_NORM = 110.0  # ab values lie roughly in [-AB_NORM, AB_NORM]

# The 1-unit ab histogram of a shard set: axis 0 = a, axis 1 = b, cell i holds [i-128, i-127).
AB_HIST_MIN = -128
AB_HIST_BINS = 256

# linear sRGB -> XYZ (D65), IEC 61966-2-1; rows sum to the white point.
_RGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
_WHITE = (0.95047, 1.0, 1.08883)  # D65, Y = 1
_EPS = 216.0 / 24389.0  # CIE epsilon, (6/29)^3
_KAPPA = 24389.0 / 27.0  # CIE kappa


def _check_channels(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() < 3 or x.shape[-3] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise VidcolorError(f"{name}: expected a tensor of shape (..., 3, H, W), got {shape}")


def _mix(x: torch.Tensor, matrix) -> torch.Tensor:
    """3x3 color matrix applied to (..., 3, H, W) as one batched matmul (BLAS, much faster than einsum)."""
    m = torch.tensor(matrix, dtype=x.dtype, device=x.device)
    shape = x.shape
    return torch.matmul(m, x.reshape(-1, 3, shape[-2] * shape[-1])).reshape(shape)  # (B, 3, H*W)


def _srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    return torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def _f(t: torch.Tensor) -> torch.Tensor:
    """CIE f(t): cube root above epsilon, linear below; in place on ``t`` (a fresh tensor)."""
    low = t <= _EPS
    lin = t * (_KAPPA / 116.0) + (16.0 / 116.0)
    return t.clamp_(min=_EPS).pow_(1.0 / 3.0).masked_scatter_(low, lin[low]) if low.any() else t.pow_(1.0 / 3.0)


def _xyz_to_lab(xyz: torch.Tensor) -> torch.Tensor:
    white = torch.tensor(_WHITE, dtype=xyz.dtype, device=xyz.device).view(3, 1, 1)
    f = _f(xyz / white)
    fx, fy, fz = f.unbind(-3)
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], shape (..., 3, H, W) -> Lab (..., 3, H, W), L in [0, 100]."""
    _check_channels(rgb, "rgb_to_lab")
    if not rgb.is_floating_point():
        raise VidcolorError(f"rgb_to_lab: expected float RGB in [0, 1], got dtype {rgb.dtype}")
    orig_dtype = rgb.dtype
    rgb = rgb.float().clamp(0.0, 1.0)  # half precision is too coarse for the cube roots
    return _xyz_to_lab(_mix(_srgb_to_linear(rgb), _RGB_TO_XYZ)).to(orig_dtype)


_RGB_TO_LINEAR_UINT8: dict[torch.device, torch.Tensor] = {}


def _linear_lut(device: torch.device) -> torch.Tensor:
    """The sRGB decoding curve at the 256 uint8 levels (float32), computed once per device."""
    lut = _RGB_TO_LINEAR_UINT8.get(device)
    if lut is None:
        lut = _srgb_to_linear(torch.arange(256, dtype=torch.float64) / 255.0).float().to(device)
        _RGB_TO_LINEAR_UINT8[device] = lut
    return lut


def _uint8_to_linear(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> linear RGB float32 (..., H, W, 3) through a 256-entry table (no pow)."""
    lut = _linear_lut(frames.device)
    if frames.device.type == "cpu":
        # numpy's take indexes with the uint8 values directly: ~4x faster than torch's gather,
        # which first widens every index to int64.
        return torch.from_numpy(np.take(lut.numpy(), frames.numpy()))
    return lut[frames.long()]


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Lab (..., 3, H, W) -> sRGB in [0, 1] (out-of-gamut colors clamped)."""
    _check_channels(lab, "lab_to_rgb")
    orig_dtype = lab.dtype
    return _linear_to_srgb(_lab_to_linear(lab.float())).to(orig_dtype)


def _lab_to_linear(lab: torch.Tensor) -> torch.Tensor:
    """Lab float32 (..., 3, H, W) -> linear sRGB clamped to [0, 1]."""
    l, a, b = lab.unbind(-3)
    fy = (l + 16.0) / 116.0
    f = torch.stack((fy + a / 500.0, fy, fy - b / 200.0), dim=-3)
    f3 = f * f * f
    t = torch.where(f3 > _EPS, f3, (116.0 * f - 16.0) / _KAPPA)
    # L itself decides Y below the linear segment (the standard CIE inverse)
    t[..., 1, :, :] = torch.where(l > _KAPPA * _EPS, f3[..., 1, :, :], l / _KAPPA)
    t *= torch.tensor(_WHITE, dtype=t.dtype, device=t.device).view(3, 1, 1)
    return _mix(t, _XYZ_TO_RGB).clamp_(0.0, 1.0)


def _linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    low = linear <= 0.0031308
    out = linear.clamp_min(1e-12).pow_(1 / 2.4).mul_(1.055).sub_(0.055)
    out = torch.where(low, 12.92 * linear, out) if low.any() else out
    return out.clamp_(0.0, 1.0)


_XYZ_TO_RGB = torch.linalg.inv(torch.tensor(_RGB_TO_XYZ, dtype=torch.float64)).tolist()


def normalize_l(l: torch.Tensor) -> torch.Tensor:
    """L in [0, 100] -> the network input (L - 50) / 100, about [-0.5, 0.5]."""
    return (l - L_CENT) / L_NORM


def denormalize_l(l_norm: torch.Tensor) -> torch.Tensor:
    return l_norm * L_NORM + L_CENT


def frames_to_lab(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 frames (..., H, W, 3) as the shard reader yields them -> (l_norm (..., 1, H, W), ab (..., 2, H, W)).

    Converts on the frames' device; the training loop and inference both start here. The sRGB
    curve is a 256-entry table lookup here (exact for uint8 input), not a pow per value.
    """
    _check_frames(frames, "frames_to_lab")
    linear = _uint8_to_linear(frames).movedim(-1, -3)  # (..., 3, H, W)
    lab = _xyz_to_lab(_mix(linear, _RGB_TO_XYZ))
    return normalize_l(lab[..., :1, :, :]), lab[..., 1:, :, :]


def frames_to_l(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames (..., H, W, 3) -> l_norm (..., 1, H, W) only (what inference needs from a
    frame): equal to ``frames_to_lab(frames)[0]`` at a fraction of the work (Y alone, no a/b)."""
    _check_frames(frames, "frames_to_l")
    linear = _uint8_to_linear(frames)  # (..., H, W, 3)
    y = torch.matmul(linear, torch.tensor(_RGB_TO_XYZ[1], device=linear.device))  # (..., H, W); Y_white = 1
    l = _f(y).mul_(116.0).sub_(16.0)
    return normalize_l(l).unsqueeze(-3)


def _check_frames(frames: torch.Tensor, name: str) -> None:
    if frames.dtype != torch.uint8 or frames.dim() < 3 or frames.shape[-1] != 3:
        raise VidcolorError(f"{name}: expected uint8 (..., H, W, 3), got {frames.dtype} {tuple(frames.shape)}")


def lab_to_frames(l_norm: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """(l_norm (..., 1, H, W), ab (..., 2, H, W)) -> uint8 frames (..., H, W, 3) on the same device."""
    lab = torch.cat((denormalize_l(l_norm).float(), ab.float()), dim=-3)
    rgb = _linear_to_srgb(_lab_to_linear(lab))
    return rgb.mul_(255.0).round_().to(torch.uint8).movedim(-3, -1)


def chroma(ab: torch.Tensor) -> torch.Tensor:
    """Per-pixel chroma sqrt(a^2 + b^2): ab (..., 2, H, W) -> (..., H, W)."""
    if ab.dim() < 3 or ab.shape[-3] != 2:
        raise VidcolorError(f"chroma: expected ab of shape (..., 2, H, W), got {tuple(ab.shape)}")
    return torch.linalg.vector_norm(ab.float(), dim=-3)


def ab_histogram(ab: torch.Tensor) -> np.ndarray:
    """Count ab values at 1-unit resolution: ab (..., 2, H, W) -> np.int64 (256, 256).

    Axis 0 is a, axis 1 is b; cell i holds values in [i - 128, i - 127). Values outside
    [-128, 128) land in the edge cells. Counted on the input's device.
    """
    if ab.dim() < 3 or ab.shape[-3] != 2:
        raise VidcolorError(f"ab_histogram: expected ab of shape (..., 2, H, W), got {tuple(ab.shape)}")
    idx = (torch.floor(ab.float()) - AB_HIST_MIN).long().clamp_(0, AB_HIST_BINS - 1)
    idx = idx.movedim(-3, 0).reshape(2, -1)  # (2, pixels)
    flat = idx[0] * AB_HIST_BINS + idx[1]
    counts = torch.bincount(flat, minlength=AB_HIST_BINS * AB_HIST_BINS)
    return counts.cpu().numpy().astype(np.int64).reshape(AB_HIST_BINS, AB_HIST_BINS)
