"""The per-frame colorization metrics, on tensors of any leading shape: RGB MSE and RMSE (0-255),
ab RMSE, PSNR, Hasler-Süsstrunk colorfulness, temporal_error of consecutive frames, and SSIM.

Each takes whole frames, (..., C, H, W), and returns one float64 value per frame, (...); the
definitions and their sources are in `study.evaluation.metrics`, whose `VideoMetrics` averages
them per video.
"""

from __future__ import annotations

import torch

from models.errors import VidcolorError

PSNR_CAP = 100.0  # dB, for a frame identical to its ground truth
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5  # Wang et al. 2004; C1 = (0.01 L)^2, C2 = (0.03 L)^2 with L = 255
_SSIM_C1, _SSIM_C2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2


def mse_rgb(pred_rgb: torch.Tensor, gt_rgb: torch.Tensor) -> torch.Tensor:
    """Mean squared error over pixels and channels of RGB on 0-255: (..., 3, H, W) x2 -> (...)."""
    _check_pair(pred_rgb, gt_rgb, 3, "mse_rgb")
    return (pred_rgb.double() - gt_rgb.double()).pow(2).mean(dim=(-3, -2, -1))


def rmse_rgb(pred_rgb: torch.Tensor, gt_rgb: torch.Tensor) -> torch.Tensor:
    """Per-frame RGB RMSE on 0-255: (..., 3, H, W) x2 -> (...)."""
    return mse_rgb(pred_rgb, gt_rgb).sqrt()


def rmse_ab(pred_ab: torch.Tensor, gt_ab: torch.Tensor) -> torch.Tensor:
    """Per-frame ab RMSE, sqrt(mean_pixels(Δa² + Δb²)): (..., 2, H, W) x2 -> (...)."""
    _check_pair(pred_ab, gt_ab, 2, "rmse_ab")
    return (pred_ab.double() - gt_ab.double()).pow(2).sum(dim=-3).mean(dim=(-2, -1)).sqrt()


def psnr(pred_rgb: torch.Tensor, gt_rgb: torch.Tensor) -> torch.Tensor:
    """Per-frame PSNR in dB for RGB on 0-255, capped at PSNR_CAP: (..., 3, H, W) x2 -> (...)."""
    mse = mse_rgb(pred_rgb, gt_rgb)
    out = 10.0 * torch.log10(255.0**2 / mse.clamp_min(1e-300))
    return out.clamp(max=PSNR_CAP)


def colorfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Hasler-Süsstrunk colorfulness of RGB on 0-255: (..., 3, H, W) -> (...). Population std."""
    if rgb.dim() < 3 or rgb.shape[-3] != 3:
        raise VidcolorError(f"colorfulness: expected RGB of shape (..., 3, H, W), got {tuple(rgb.shape)}")
    r, g, b = rgb.double().unbind(-3)
    rg = (r - g).flatten(-2)  # (..., H*W)
    yb = (0.5 * (r + g) - b).flatten(-2)
    std = torch.sqrt(rg.var(dim=-1, correction=0) + yb.var(dim=-1, correction=0))
    mean = torch.sqrt(rg.mean(dim=-1) ** 2 + yb.mean(dim=-1) ** 2)
    return std + 0.3 * mean


def temporal_error(
    pred_prev: torch.Tensor, pred: torch.Tensor, gt_prev: torch.Tensor, gt: torch.Tensor
) -> torch.Tensor:
    """Error of the predicted frame-to-frame ab change against the true one: (..., 2, H, W) x4 -> (...)."""
    _check_pair(pred, gt, 2, "temporal_error")
    d = (pred.double() - pred_prev.double()) - (gt.double() - gt_prev.double())
    return d.pow(2).sum(dim=-3).mean(dim=(-2, -1)).sqrt()


def ssim(pred_rgb: torch.Tensor, gt_rgb: torch.Tensor) -> torch.Tensor:
    """Per-frame SSIM of RGB on 0-255: (..., 3, H, W) x2 -> (...), in float64.

    Gaussian-weighted means, variances and covariance (population) over the valid positions of
    the window (no padding), the SSIM map averaged per channel, then over the 3 channels. Frames
    smaller than 11 pixels use the largest odd window that fits, min(11, H, W) (minus 1 when
    even), with the same sigma 1.5 Gaussian renormalized over its taps (scikit-image refuses them).
    The separable filter is two products with banded matrices: on CPU 10x faster than conv2d."""
    _check_pair(pred_rgb, gt_rgb, 3, "ssim")
    *lead, _, h, w = pred_rgb.shape
    size = min(SSIM_WINDOW, h, w)
    size -= 1 - size % 2
    x, y = pred_rgb.double().reshape(-1, 1, h, w), gt_rgb.double().reshape(-1, 1, h, w)
    maps = torch.cat((x, y, x * x, y * y, x * y), dim=1)  # (N*3, 5, H, W)
    m = _gaussian_band(h, size, x.device).T @ maps @ _gaussian_band(w, size, x.device)  # valid filtering
    mx, my, mxx, myy, mxy = m.unbind(1)
    vx, vy, cxy = mxx - mx * mx, myy - my * my, mxy - mx * my
    s = ((2 * mx * my + _SSIM_C1) * (2 * cxy + _SSIM_C2)) / ((mx * mx + my * my + _SSIM_C1) * (vx + vy + _SSIM_C2))
    return s.mean(dim=(-2, -1)).view(*lead, 3).mean(dim=-1)


def _gaussian_band(n: int, size: int, device: torch.device) -> torch.Tensor:
    """(n, n - size + 1) float64: column j holds the normalized sigma-1.5 Gaussian of `size` taps
    at rows j ... j + size - 1, so X @ band is X filtered along its last dim, valid positions only."""
    taps = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(taps**2) / (2 * SSIM_SIGMA**2))
    k = torch.arange(n, device=device).unsqueeze(1) - torch.arange(n - size + 1, device=device)  # tap index
    inside = (k >= 0) & (k < size)
    return torch.where(inside, (g / g.sum())[k.clamp(0, size - 1)], torch.zeros((), dtype=torch.float64, device=device))


def _check_pair(pred: torch.Tensor, gt: torch.Tensor, channels: int, name: str) -> None:
    if pred.shape != gt.shape or pred.dim() < 3 or pred.shape[-3] != channels:
        raise VidcolorError(
            f"{name}: expected two tensors of the same shape (..., {channels}, H, W), "
            f"got {tuple(pred.shape)} and {tuple(gt.shape)}"
        )
