"""Temporal consistency of a colorized video, the literature's two measures and their pieces.

- `cdc`: Color Distribution Consistency of Liu et al. ("Temporally Consistent Video Colorization
  with Deep Feature Propagation and Self-regularization Learning", TCVC): the Jensen-Shannon
  divergence of per-channel 256-bin histograms (`rgb_histograms`, `js_divergence`) of frames
  t and t+s of the prediction, for s in CDC_STEPS.
- `warp_error`: the warping error of Lai et al. 2018 ("Learning Blind Video Temporal
  Consistency", ECCV) as their evaluation code computes it: OpenCV DIS flow between ground-truth
  frames (`dis_flows`, on `luma`), their occlusion and motion-boundary mask (`occlusion`), the
  next predicted frame warped back (`backward_warp`). `FlowCache` shares the ground truth's flows
  between accumulators fed the same frames.

`study.evaluation.metrics.VideoMetrics` accumulates both per video.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from models.errors import VidcolorError

CDC_STEPS = (1, 2, 4)  # TCVC's frame distances
FLOW_MIN_SIZE = 12  # OpenCV's DIS refuses smaller frames: their pairs get no warp_error


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


def cdc(histograms: Mapping[int, torch.Tensor]) -> float:
    """TCVC's Color Distribution Consistency of one video from frame index -> (3, 256) histogram:
    for each s of CDC_STEPS the mean over the pairs (t, t+s) present and the 3 channels of the
    JS divergence, then the mean over the steps that have a pair (NaN when none has)."""
    per_step = []
    for s in CDC_STEPS:
        pairs = [(f, f + s) for f in sorted(histograms) if f + s in histograms]
        if pairs:
            p = torch.stack([torch.as_tensor(histograms[a]) for a, _ in pairs])
            q = torch.stack([torch.as_tensor(histograms[b]) for _, b in pairs])
            per_step.append(float(js_divergence(p, q).mean()))
    return sum(per_step) / len(per_step) if per_step else math.nan


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """image (C, H, W) sampled at x + flow(x), flow (2, H, W) in pixels (x then y): bilinear, the
    edge values beyond the frame (float64)."""
    _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    gx = (xs + flow[0].double()) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[1].double()) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1)[None]
    return F.grid_sample(image.double()[None], grid, mode="bilinear", padding_mode="border", align_corners=True)[0]


def occlusion(flow_fw: torch.Tensor, flow_bw: torch.Tensor) -> torch.Tensor:
    """Pixels of frame t without a trustworthy match in t+1, (2, H, W) x2 -> bool (H, W), as Lai
    et al.'s ``detect_occlusion``: forward-backward inconsistency |F_fw + W(F_bw)|^2 > 0.01
    (|F_fw|^2 + |W(F_bw)|^2) + 0.5 (W: warped to t by F_fw), motion boundaries (squared forward
    differences of F_fw summed > 0.01 |F_fw|^2 + 0.002), and, added here, forward flow that
    leaves the frame."""
    fw = flow_fw.double()
    bw = backward_warp(flow_bw, fw)

    def mag(f: torch.Tensor) -> torch.Tensor:
        return f.pow(2).sum(dim=0)

    inconsistent = mag(fw + bw) > 0.01 * (mag(fw) + mag(bw)) + 0.5
    du, dv = torch.zeros_like(fw), torch.zeros_like(fw)
    du[:, :, :-1] = fw[:, :, :-1] - fw[:, :, 1:]
    dv[:, :-1, :] = fw[:, :-1, :] - fw[:, 1:, :]
    boundary = (mag(du) + mag(dv)) > 0.01 * mag(fw) + 0.002
    h, w = fw.shape[1:]
    x = torch.arange(w, dtype=torch.float64) + fw[0]
    y = torch.arange(h, dtype=torch.float64).unsqueeze(1) + fw[1]
    outside = (x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)
    return inconsistent | boundary | outside


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


def dis_flows(gray: np.ndarray, gray_next: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV DIS flow (medium preset) between two uint8 (H, W) frames: (forward, backward), each
    (2, H, W) float32 in pixels. Frames under FLOW_MIN_SIZE on a side are refused."""
    if min(gray.shape) < FLOW_MIN_SIZE:
        raise VidcolorError(f"dis_flows: frames of {gray.shape[1]}x{gray.shape[0]} are under "
                            f"{FLOW_MIN_SIZE} pixels on a side")
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    fw = dis.calc(gray, gray_next, None)
    bw = dis.calc(gray_next, gray, None)
    return torch.from_numpy(fw).permute(2, 0, 1), torch.from_numpy(bw).permute(2, 0, 1)


class FlowCache:
    """Ground-truth flow t -> t+1 and non-occluded mask of frame pairs, keyed by (video, t), for
    accumulators fed the same frames (the model's and the gray baseline's: the flow depends on the
    ground truth only, and is most of warp_error's cost). Whoever shares one clears it after each
    batch: a batch's pairs are scored while it is fed."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def get(self, video_id: str, f: int, gray: torch.Tensor,
            gray_next: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(forward flow (2, H, W), non-occluded mask (H, W)) of frames f, f + 1 of the video."""
        key = (video_id, f)
        if key not in self._pairs:
            fw, bw = dis_flows(gray.numpy(), gray_next.numpy())
            self._pairs[key] = (fw, ~occlusion(fw, bw))
        return self._pairs[key]

    def clear(self) -> None:
        self._pairs.clear()


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 gray of RGB on 0-255, (..., 3, H, W) -> (..., H, W): Rec. 601 weights, as OpenCV's
    RGB2GRAY (DIS works on one 8-bit channel)."""
    r, g, b = rgb.double().unbind(-3)
    return (0.299 * r + 0.587 * g + 0.114 * b).round().clamp(0, 255).to(torch.uint8)
