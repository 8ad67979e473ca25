"""Optical flow between gray frames and what is built on it: one piece of code for the warping
error metric (`study.evaluation.consistency`), the `--stabilize` filter (`models.stabilize`) and
any temporal loss.

- `dis_flows`: OpenCV DIS flow (medium preset) in both directions between two uint8 gray frames,
  as Lai et al. 2018's evaluation code computes it ("Learning Blind Video Temporal Consistency",
  ECCV); optionally at a reduced size for large frames, the flow scaled back.
- `occlusion`: their occlusion and motion-boundary test (``detect_occlusion``), plus flow that
  leaves the frame; its parts `flow_mismatch`, `motion_boundary`, `leaves_frame`.
- `backward_warp`: an image sampled along a flow (bilinear, edge values beyond the frame).
- `luma`: the 8-bit gray DIS works on, from RGB.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from models.errors import VidcolorError

FLOW_MIN_SIZE = 12  # OpenCV's DIS refuses smaller frames: their pairs get no flow


def dis_flows(
    gray: np.ndarray, gray_next: np.ndarray, max_side: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV DIS flow (medium preset) between two uint8 (H, W) frames: (forward, backward), each
    (2, H, W) float32 in pixels; forward maps ``gray`` to ``gray_next`` (gray(x) ~ gray_next(x +
    forward(x))). Frames under FLOW_MIN_SIZE on a side are refused. With ``max_side``, frames whose
    long side exceeds it are shrunk (area average) to that long side for DIS and the flows
    upsampled bilinearly and scaled back to pixels of the original size (DIS's cost grows with the
    pixels; the metric never shrinks)."""
    if min(gray.shape) < FLOW_MIN_SIZE:
        raise VidcolorError(
            f"dis_flows: frames of {gray.shape[1]}x{gray.shape[0]} are under {FLOW_MIN_SIZE} pixels on a side"
        )
    h, w = gray.shape
    scale = 1.0 if max_side is None or max(h, w) <= max_side else max_side / max(h, w)
    small = (max(FLOW_MIN_SIZE, round(w * scale)), max(FLOW_MIN_SIZE, round(h * scale)))  # (w, h) for OpenCV
    if scale < 1.0:
        gray = cv2.resize(gray, small, interpolation=cv2.INTER_AREA)
        gray_next = cv2.resize(gray_next, small, interpolation=cv2.INTER_AREA)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flows = [dis.calc(gray, gray_next, None), dis.calc(gray_next, gray, None)]
    if scale < 1.0:
        sx, sy = w / small[0], h / small[1]
        flows = [cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32([sx, sy]) for f in flows]
    fw, bw = (torch.from_numpy(np.ascontiguousarray(f, dtype=np.float32)).permute(2, 0, 1) for f in flows)
    return fw, bw


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
    et al.'s ``detect_occlusion``: forward-backward inconsistency (`flow_mismatch`), motion
    boundaries (`motion_boundary`), and, added here, forward flow that leaves the frame
    (`leaves_frame`)."""
    return flow_mismatch(flow_fw, flow_bw) | motion_boundary(flow_fw) | leaves_frame(flow_fw)


def _sq_norm(f: torch.Tensor) -> torch.Tensor:
    """|f|^2 of a (2, H, W) field -> (H, W) (two planes added: a reduction over dim 0 is slower)."""
    return f[0] * f[0] + f[1] * f[1]


def flow_mismatch(flow_fw: torch.Tensor, flow_bw: torch.Tensor) -> torch.Tensor:
    """Lai et al.'s forward-backward test, (2, H, W) x2 -> bool (H, W): |F_fw + W(F_bw)|^2 >
    0.01 (|F_fw|^2 + |W(F_bw)|^2) + 0.5, W(F_bw) being the backward flow warped to t by F_fw."""
    fw = flow_fw.double()
    bw = backward_warp(flow_bw, fw)
    return _sq_norm(fw + bw) > 0.01 * (_sq_norm(fw) + _sq_norm(bw)) + 0.5


def motion_boundary(flow_fw: torch.Tensor) -> torch.Tensor:
    """Lai et al.'s motion boundaries, (2, H, W) -> bool (H, W): the squared forward differences
    of the flow (right and down neighbours) summed > 0.01 |F_fw|^2 + 0.002."""
    fw = flow_fw.double()
    du, dv = torch.zeros_like(fw), torch.zeros_like(fw)
    du[:, :, :-1] = fw[:, :, :-1] - fw[:, :, 1:]
    dv[:, :-1, :] = fw[:, :-1, :] - fw[:, 1:, :]
    return (_sq_norm(du) + _sq_norm(dv)) > 0.01 * _sq_norm(fw) + 0.002


def leaves_frame(flow_fw: torch.Tensor) -> torch.Tensor:
    """Pixels whose flow lands outside the frame, (2, H, W) -> bool (H, W)."""
    fw = flow_fw.double()
    h, w = fw.shape[1:]
    x = torch.arange(w, dtype=torch.float64) + fw[0]
    y = torch.arange(h, dtype=torch.float64).unsqueeze(1) + fw[1]
    return (x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 gray of RGB on 0-255, (..., 3, H, W) -> (..., H, W): Rec. 601 weights, as OpenCV's
    RGB2GRAY (DIS works on one 8-bit channel)."""
    r, g, b = rgb.double().unbind(-3)
    return (0.299 * r + 0.587 * g + 0.114 * b).round().clamp(0, 255).to(torch.uint8)
