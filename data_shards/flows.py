"""The ground truth's optical flow of a training window, for the temporal loss (`models.losses`).

`window_flows(frames, first=False)`: for each frame t >= 1 of a uint8 window (T, H, W, 3), the
DIS flow from frame t to frame t-1 and the pixels of frame t it matches (the forward-backward
occlusion and motion-boundary check of Lai et al. 2018), both from `models.flow` (the same code as
the warping-error metric), at the logits' 1/4 resolution: computed on the whole frames, then taken
at every 4th pixel as `models.losses.downsample_ab` takes the ground truth's ab (coarse pixel
(i, j) is full pixel (4i, 4j)), the flow divided by 4. DIS on 16 x 16 frames would see little; on
the whole 64 px frames a pair costs about 2 ms on one core. With ``first`` the same for frame t
against the window's first frame (the long-term term).

The training loader (`data_shards.reader.train_loader(flows=True)`) calls it per window after the
augmentation, so the flows follow the crop and flip the model sees.
"""

from __future__ import annotations

import numpy as np
import torch

from models.flow import dis_flows, luma, occlusion

STRIDE = 4  # the logits' resolution: models.losses.LOGIT_STRIDE


def _gray(frames: np.ndarray) -> np.ndarray:
    """uint8 (T, H, W, 3) RGB -> uint8 (T, H, W) luma (what DIS works on)."""
    return luma(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)).numpy()


def pair_flow(gray: np.ndarray, gray_ref: np.ndarray, stride: int = STRIDE) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (H, W) x2 -> (flow (2, h, w) float32 from ``gray``'s pixels to ``gray_ref``, in
    pixels of the 1/stride grid; bool (h, w): ``gray``'s pixels with a trustworthy match)."""
    to_ref, from_ref = dis_flows(gray, gray_ref)
    keep = ~occlusion(to_ref, from_ref)
    return (to_ref[:, ::stride, ::stride] / stride).contiguous(), keep[::stride, ::stride].contiguous()


def window_flows(frames: np.ndarray, first: bool = False, stride: int = STRIDE) -> dict[str, torch.Tensor]:
    """uint8 (T, H, W, 3), T >= 2 -> {"flow": float32 (T-1, 2, h, w), "valid": bool (T-1, h, w)}
    (entry t-1: frame t to frame t-1), and with ``first`` "flow_first", "valid_first" (entry
    t-1: frame t to frame 0; the first entry is the short-term pair's), h = ceil(H / stride)."""
    gray = _gray(frames)
    short = [pair_flow(gray[t], gray[t - 1], stride) for t in range(1, len(gray))]
    out = {"flow": torch.stack([f for f, _ in short]), "valid": torch.stack([v for _, v in short])}
    if first:
        long = [short[0]] + [pair_flow(gray[t], gray[0], stride) for t in range(2, len(gray))]
        out["flow_first"] = torch.stack([f for f, _ in long])
        out["valid_first"] = torch.stack([v for _, v in long])
    return out
