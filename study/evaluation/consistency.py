"""Temporal consistency of a colorized video, the literature's two measures and their pieces.

- `cdc`: Color Distribution Consistency of Liu et al. ("Temporally Consistent Video Colorization
  with Deep Feature Propagation and Self-regularization Learning", TCVC): the Jensen-Shannon
  divergence of per-channel 256-bin histograms (`rgb_histograms`, `js_divergence`) of frames
  t and t+s of the prediction, for s in CDC_STEPS.
- `warp_error`: the warping error of Lai et al. 2018 ("Learning Blind Video Temporal
  Consistency", ECCV) as their evaluation code computes it: OpenCV DIS flow between ground-truth
  frames (`dis_flows`, on `luma`), their occlusion and motion-boundary mask (`occlusion`), the
  next predicted frame warped back (`backward_warp`); those flow helpers live in `models.flow`,
  shared with the `--stabilize` filter. `FlowCache` shares the ground truth's flows between
  accumulators fed the same frames (FLOW_MIN_SIZE: smaller frames get no warp_error).

`study.evaluation.metrics.VideoMetrics` accumulates both per video.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from models.errors import VidcolorError
from models.flow import FLOW_MIN_SIZE, backward_warp, dis_flows, luma, occlusion  # noqa: F401 (re-exported)

CDC_STEPS = (1, 2, 4)  # TCVC's frame distances


def rgb_histograms(rgb: torch.Tensor) -> torch.Tensor:
    """256-bin histogram of each channel of the rounded, clamped 0-255 values:
    (..., C, H, W) -> int64 counts (..., C, 256)."""
    if rgb.dim() < 3:
        raise VidcolorError(f"rgb_histograms: expected (..., C, H, W), got {tuple(rgb.shape)}")
    lead = rgb.shape[:-2]
    v = rgb.detach().round().clamp(0, 255).long().reshape(-1, rgb.shape[-2] * rgb.shape[-1])
    v = v + 256 * torch.arange(v.shape[0], device=v.device).unsqueeze(1)
    return torch.bincount(v.flatten(), minlength=v.shape[0] * 256).view(*lead, 256)


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence (natural log) of histograms along the last dim, each normalized
    to a distribution first: 0.5 KL(P||M) + 0.5 KL(Q||M), M = (P + Q) / 2; (..., K) x2 -> (...)."""
    p, q = p.double(), q.double()
    p, q = p / p.sum(dim=-1, keepdim=True), q / q.sum(dim=-1, keepdim=True)
    m = 0.5 * (p + q)

    def kl(a: torch.Tensor) -> torch.Tensor:
        return torch.where(a > 0, a * (a / m).log(), torch.zeros_like(a)).sum(dim=-1)

    return 0.5 * kl(p) + 0.5 * kl(q)


def cdc(histograms: Mapping[int, torch.Tensor], runs: Mapping[int, int] | None = None) -> float:
    """TCVC's Color Distribution Consistency of one video from frame index -> (3, 256) histogram:
    for each s of CDC_STEPS the mean over the pairs (t, t+s) present and the 3 channels of the
    JS divergence, then the mean over the steps that have a pair (NaN when none has). ``runs``
    (frame -> run): only pairs of frames of the same run count (None: all pairs)."""
    per_step = []

    def same_run(a: int, b: int) -> bool:
        return runs is None or runs.get(a) == runs.get(b)

    for s in CDC_STEPS:
        pairs = [(f, f + s) for f in sorted(histograms) if f + s in histograms and same_run(f, f + s)]
        if pairs:
            p = torch.stack([torch.as_tensor(histograms[a]) for a, _ in pairs])
            q = torch.stack([torch.as_tensor(histograms[b]) for _, b in pairs])
            per_step.append(float(js_divergence(p, q).mean()))
    return sum(per_step) / len(per_step) if per_step else math.nan


def warp_error(pred: torch.Tensor, pred_next: torch.Tensor, flow_fw: torch.Tensor, flow_bw: torch.Tensor) -> float:
    """Lai et al.'s warping error of one pair: pred, pred_next (3, H, W) RGB in [0, 1], flows
    (2, H, W) t -> t+1 and t+1 -> t. pred_next is warped back to t by flow_fw; the squared
    difference summed over the non-occluded pixels and the channels, over 3 x their number (their
    ``N = sum(noc_mask)`` over a 3-channel mask: a mean per channel). A fully occluded pair
    scores 0, as theirs does (its masked difference is all zero)."""
    return masked_warp_error(pred, pred_next, flow_fw, ~occlusion(flow_fw, flow_bw))


def masked_warp_error(pred: torch.Tensor, pred_next: torch.Tensor, flow_fw: torch.Tensor, keep: torch.Tensor) -> float:
    """`warp_error` with the non-occluded mask ``keep`` (H, W) already computed (`FlowCache`)."""
    n = int(keep.sum())
    if n == 0:
        return 0.0
    diff = (pred.double() - backward_warp(pred_next, flow_fw)) * keep
    return float(diff.pow(2).sum()) / (3 * n)


class FlowCache:
    """Ground-truth flow t -> t+1 and non-occluded mask of frame pairs, keyed by (video, t), for
    accumulators fed the same frames (the model's and the gray baseline's: the flow depends on the
    ground truth only, and is most of warp_error's cost). Whoever shares one clears it after each
    batch: a batch's pairs are scored while it is fed."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def get(
        self, video_id: str, f: int, gray: torch.Tensor, gray_next: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(forward flow (2, H, W), non-occluded mask (H, W)) of frames f, f + 1 of the video."""
        key = (video_id, f)
        if key not in self._pairs:
            fw, bw = dis_flows(gray.numpy(), gray_next.numpy())
            self._pairs[key] = (fw, ~occlusion(fw, bw))
        return self._pairs[key]

    def clear(self) -> None:
        self._pairs.clear()
