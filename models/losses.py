"""Training losses: rebalanced soft cross-entropy L_cl, the sequence loss L_seq, the temporal loss
L_temp, and their mix.

Seed paper: L = lam L_cl + (1 - lam) L_seq, with
  L_cl  = - sum_{h,w} v(Z_hw) sum_q Z_hwq log Zhat_hwq   (Zhang et al. 2016, eq. 2)
  L_seq = - sum_j y_j log softmax(s)_j                  (cross-entropy of the sequence model)
and, beyond the seed (issue 22), + w_t L_temp with
  L_temp = mean over matched pixels x of frames t >= 1 of |ab_t(x) - ab_{t-1}(x + F_{t->t-1}(x))|
           (Lai et al. 2018's short-term loss, L1, averaged over the two channels; in ab units)

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
- L_cl and L_seq cover every frame of the window: the temporal model runs over a whole clip with
  its state carried from frame to frame as at inference, and every frame's prediction is scored
  (frame 0's with an empty state, as the first frame of every clip and film is predicted). L_seq
  is the cross-entropy of the temporal prediction against the same soft target y = Z (one-hot at
  soft_k = 1), weighted by the same rebalancing weights as L_cl when given. The seed paper's
  formula scores the last frame only, unweighted: that left the other frames untrained and pulled
  the final prediction to the unrebalanced, grayish colours (why: `models.temporal`).
- L_temp (`temporal_loss`) scores the final prediction (seq_logits, else ab_logits) decoded
  differentiably (`soft_decode`: the annealed mean at the config's T, the plain softmax
  expectation at T = 0) at the logits' 1/4 resolution, warped by the ground-truth colour frames'
  DIS flow (`models.flow`; computed in the training loader, `data_shards.flows`) over the pixels
  that pass the forward-backward occlusion check. With the long-term option, every frame t >= 1
  is also compared with the window's first frame warped by the flow t -> 0; both terms are
  averaged over their matched pixels and added.
- Without a temporal module, lam is ignored and L = L_cl (+ w_t L_temp).
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


def soft_decode(logits: torch.Tensor, centers: torch.Tensor, temperature: float) -> torch.Tensor:
    """Differentiable ab of logits (..., Q, h, w) -> (..., 2, h, w) float32: the annealed mean
    (softmax(logits / T) over the bin centers (Q, 2)); at T = 0 (the mode, not differentiable) the
    plain softmax expectation (T = 1). Always in float32, autocast or not: under bf16 the ab steps
    (0.25 - 0.5 for |ab| of 32 - 128) would be larger than the frame-to-frame changes L_temp scores."""
    t = temperature if temperature > 0 else 1.0
    with torch.autocast(logits.device.type, enabled=False):
        probs = torch.softmax(logits.float() / t, dim=-3)
        return torch.einsum("...qhw,qc->...chw", probs, centers.to(device=probs.device, dtype=torch.float32))


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Batched, differentiable `models.flow.backward_warp`: image (N, C, h, w) sampled at x +
    flow(x), flow (N, 2, h, w) in pixels (x then y); bilinear, edge values beyond the frame."""
    n, _, h, w = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=flow.device, dtype=torch.float32),
        torch.arange(w, device=flow.device, dtype=torch.float32),
        indexing="ij",
    )
    gx = (xs + flow[:, 0].float()) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1].float()) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1)  # (N, h, w, 2)
    return F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)


def _pair_loss(ab: torch.Tensor, ref: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor) -> tuple:
    """Sum over the valid pixels of |ab - warp(ref, flow)| averaged over the channels, and their
    number; ab, ref (N, 2, h, w), flow (N, 2, h, w), valid bool (N, h, w)."""
    diff = (ab - warp(ref, flow)).abs().mean(dim=1)  # (N, h, w)
    keep = valid.to(diff.dtype)
    return (diff * keep).sum(), keep.sum()


def temporal_loss(
    ab: torch.Tensor,
    flow: torch.Tensor,
    valid: torch.Tensor,
    flow_first: torch.Tensor | None = None,
    valid_first: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_temp of a window's predicted ab (B, T, 2, h, w), T >= 2 (see the module docstring).

    flow (B, T-1, 2, h, w): entry t-1 maps frame t's pixels to frame t-1 (pixels, x then y);
    valid bool (B, T-1, h, w): frame t's pixels that the forward-backward check keeps. The short
    term is the mean over the valid pixels of |ab_t - warp(ab_t-1)| averaged over the two
    channels. With flow_first / valid_first (same shapes; entry t-1 maps frame t to frame 0),
    the long term, the same mean against the first frame, is added. A term without a valid pixel
    is 0 (still in the graph)."""
    b, t = ab.shape[:2]
    want = (b, t - 1, 2, *ab.shape[-2:])
    if flow is None or valid is None:
        raise VidcolorError("temporal_loss: needs the window's flow and valid (the training loader's flows=True)")
    for name, f, v in (("flow", flow, valid), ("flow_first", flow_first, valid_first)):
        if f is not None and (tuple(f.shape) != want or v is None or tuple(v.shape) != want[:2] + want[3:]):
            got = (tuple(f.shape), None if v is None else tuple(v.shape))
            raise VidcolorError(
                f"{name}: expected shapes {want} and {want[:2] + want[3:]} for ab {tuple(ab.shape)}, got {got}"
            )
    cur = ab[:, 1:].flatten(0, 1)
    total, count = _pair_loss(cur, ab[:, :-1].flatten(0, 1), flow.flatten(0, 1), valid.flatten(0, 1))
    loss = total / count.clamp_min(1.0)
    if flow_first is not None:
        first = ab[:, :1].expand(-1, t - 1, -1, -1, -1).flatten(0, 1)
        total, count = _pair_loss(cur, first, flow_first.flatten(0, 1), valid_first.flatten(0, 1))
        loss = loss + total / count.clamp_min(1.0)
    return loss


def colorization_loss(
    out,
    ab_gt: torch.Tensor,
    gamut: ABGamut,
    weights: torch.Tensor | None = None,
    lam: float = 1.0,
    soft_k: int = 5,
    soft_sigma: float = 5.0,
    temporal_weight: float = 0.0,
    temperature: float = 1.0,
    flows: dict[str, torch.Tensor] | None = None,
):
    """L = lam L_cl + (1 - lam) L_seq + w_t L_temp for one batch; see the module docstring.

    out: ColorizerOutput (ab_logits (B, T, Q, h, w), seq_logits or None); ab_gt (B, T, 2, h, w)
    at the logits' resolution (`downsample_ab`); weights (Q,) or None. With temporal_weight > 0,
    ``flows`` holds the window's ground-truth flows (`temporal_loss`'s flow, valid and optionally
    flow_first, valid_first) and ``temperature`` is the decode's T (`soft_decode`).
    Returns (loss, {"l_cl", "l_seq", "l_temp"}: detached; l_seq 0 without a temporal module,
    l_temp 0 when temporal_weight is 0).
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
    zero = torch.zeros((), device=l_cl.device)
    loss, l_seq = l_cl, zero
    if out.seq_logits is not None:
        seq_pixel = soft_cross_entropy(out.seq_logits.flatten(0, 1), target)  # (B*T, h, w): every frame
        if weights is not None:
            seq_pixel = seq_pixel * weights.to(seq_pixel.device)[nearest]
        l_seq = _masked_mean(seq_pixel, mask)
        loss = lam * l_cl + (1.0 - lam) * l_seq
    l_temp = zero
    if temporal_weight < 0:
        raise VidcolorError(f"temporal_weight: must be >= 0, got {temporal_weight}")
    if temporal_weight > 0:
        if not flows or "flow" not in flows or "valid" not in flows or t < 2:
            raise VidcolorError(
                f"temporal_weight {temporal_weight}: needs windows of 2 frames or more (got {t}) and "
                "their flows (the training loader's flows=True)"
            )
        final = out.seq_logits if out.seq_logits is not None else ab_logits
        ab_pred = soft_decode(final, gamut.centers_on(final.device), temperature)  # (B, T, 2, h, w)
        l_temp = temporal_loss(
            ab_pred, flows["flow"], flows["valid"], flows.get("flow_first"), flows.get("valid_first")
        )
        loss = loss + temporal_weight * l_temp
    return loss, {"l_cl": l_cl.detach(), "l_seq": l_seq.detach(), "l_temp": l_temp.detach()}


__all__ = [
    "colorization_loss",
    "soft_decode",
    "temporal_loss",
    "warp",
    "downsample_ab",
    "loss_weights",
    "rebalance_weights",
    "color_frame_mask",
    "soft_cross_entropy",
    "GRAY_AB_THRESHOLD",
]
