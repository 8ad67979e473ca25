"""Training losses: rebalanced soft cross-entropy L_cl, the sequence loss L_seq, and their mix.

Seed paper: L = lam L_cl + (1 - lam) L_seq, with
  L_cl  = - sum_{h,w} v(Z_hw) sum_q Z_hwq log Zhat_hwq   (Zhang et al. 2016, eq. 2)
  L_seq = - sum_j y_j log softmax(s)_j                  (cross-entropy of the sequence model)

Choices (following Zhang et al.'s released training code where the paper is silent):
- Ground truth at the logits' 1/4 resolution is taken by stride-4 subsampling of the full-size ab
  (`downsample_ab`), as Zhang's code does: every target is a real pixel color (average pooling
  would blend edge colors into desaturated ones).
- Z is the soft encoding (k nearest bins, Gaussian sigma); v(Z_hw) is the rebalancing weight of
  the pixel's nearest bin when `weights` is given (rebalance), else 1. The weight scales the
  pixel's loss; it does not touch the logits.
- Pixels without chroma: a frame with no pixel of |a| or |b| above 5 (a gray frame) gets zero
  loss, as Zhang's code does for gray images; losses are averaged over the remaining frames'
  pixels (a mean, not the paper's sum, so the scale does not depend on the resolution).
- L_cl covers every frame of the window. L_seq is the cross-entropy of the temporal prediction
  for the window's last frame (frames 0 .. T-2 are its context) against the same soft target
  y = Z (one-hot at soft_k = 1), unweighted, as in the seed paper's formula.
- Without a temporal module, lam is ignored and L = L_cl.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.errors import VidcolorError
from models.gamut import ABGamut, rebalance_weights

GRAY_AB_THRESHOLD = 5.0  # a frame with no |a| or |b| above this has no color to learn
LOGIT_STRIDE = 4


def downsample_ab(ab: torch.Tensor, factor: int = LOGIT_STRIDE) -> torch.Tensor:
    """Full-size ab (..., 2, H, W) -> (..., 2, H/4, W/4) by stride-4 subsampling (Zhang's code)."""
    return ab[..., ::factor, ::factor]


def color_frame_mask(ab: torch.Tensor) -> torch.Tensor:
    """ab (N, 2, h, w) -> bool (N,): frames with some |a| or |b| above GRAY_AB_THRESHOLD."""
    return (ab.abs() > GRAY_AB_THRESHOLD).flatten(1).any(dim=1)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """logits, target (N, Q, h, w) -> per-pixel CE (N, h, w), in float32."""
    return -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1)


def _masked_mean(per_pixel: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """Mean over the pixels of the frames in frame_mask; 0 (still in the graph) when none."""
    m = frame_mask.view(-1, *([1] * (per_pixel.dim() - 1))).to(per_pixel.dtype)
    denom = m.sum() * per_pixel[0].numel()
    return (per_pixel * m).sum() / denom.clamp_min(1.0)


def loss_weights(rebalance: bool, gamut: ABGamut, prior: torch.Tensor | None, gamma: float) -> torch.Tensor | None:
    """The `weights` argument of colorization_loss for a config: rebalancing weights or None."""
    if not rebalance:
        return None
    if prior is None:
        raise VidcolorError("rebalance: needs the training split's ab prior (shard set's ab_hist.npy)")
    return gamut.rebalance_weights(prior, gamma)


def colorization_loss(
    out,
    ab_gt: torch.Tensor,
    gamut: ABGamut,
    weights: torch.Tensor | None = None,
    lam: float = 1.0,
    soft_k: int = 5,
    soft_sigma: float = 5.0,
):
    """L = lam L_cl + (1 - lam) L_seq for one batch; see the module docstring.

    out: ColorizerOutput (ab_logits (B, T, Q, h, w), seq_logits or None); ab_gt (B, T, 2, h, w)
    at the logits' resolution (`downsample_ab`); weights (Q,) or None.
    Returns (loss, {"l_cl": detached, "l_seq": detached, 0 without a temporal module}).
    """
    ab_logits = out.ab_logits
    if (
        ab_gt.dim() != 5
        or ab_gt.shape[2] != 2
        or ab_gt.shape[:2] != ab_logits.shape[:2]
        or ab_gt.shape[-2:] != ab_logits.shape[-2:]
    ):
        raise VidcolorError(
            f"ab_gt: expected shape {tuple(ab_logits.shape[:2]) + (2,) + tuple(ab_logits.shape[-2:])} "
            f"to match the logits {tuple(ab_logits.shape)}, got {tuple(ab_gt.shape)}"
        )
    if ab_logits.shape[2] != gamut.num_bins:
        raise VidcolorError(f"logits have {ab_logits.shape[2]} bins, the gamut {gamut.num_bins}")
    if not 0.0 <= lam <= 1.0:
        raise VidcolorError(f"lam: must be in [0, 1], got {lam}")
    b, t = ab_gt.shape[:2]
    ab = ab_gt.flatten(0, 1).float()  # (B*T, 2, h, w)
    target, nearest = gamut.encode(ab, k=soft_k, sigma=soft_sigma)  # (B*T, Q, h, w), (B*T, h, w)
    mask = color_frame_mask(ab)  # (B*T,)
    per_pixel = soft_cross_entropy(ab_logits.flatten(0, 1), target)  # (B*T, h, w)
    if weights is not None:
        if weights.shape != (gamut.num_bins,):
            raise VidcolorError(f"weights: expected shape ({gamut.num_bins},), got {tuple(weights.shape)}")
        per_pixel = per_pixel * weights.to(per_pixel.device)[nearest]
    l_cl = _masked_mean(per_pixel, mask)
    if out.seq_logits is None:
        return l_cl, {"l_cl": l_cl.detach(), "l_seq": torch.zeros((), device=l_cl.device)}
    last = target.unflatten(0, (b, t))[:, -1]  # (B, Q, h, w)
    seq_pixel = soft_cross_entropy(out.seq_logits[:, -1], last)  # (B, h, w)
    l_seq = _masked_mean(seq_pixel, mask.view(b, t)[:, -1])
    loss = lam * l_cl + (1.0 - lam) * l_seq
    return loss, {"l_cl": l_cl.detach(), "l_seq": l_seq.detach()}


__all__ = [
    "colorization_loss",
    "downsample_ab",
    "loss_weights",
    "rebalance_weights",
    "color_frame_mask",
    "soft_cross_entropy",
    "GRAY_AB_THRESHOLD",
]
