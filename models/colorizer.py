"""The per-frame colorizer: Zhang et al. 2016's ECCV16 network with a width multiplier.

Topology (ECCV16, "Colorful Image Colorization", Table 4 / the official PyTorch port): seven
blocks of 2, 2, 3, 3, 3, 3, 3 conv3x3+ReLU, each block ending in BatchNorm; no pooling; the last
conv of blocks 1-3 has stride 2 (1/8 resolution), blocks 5-6 use dilation 2; block 8 upsamples
x2 with a transposed conv and two more conv+ReLU (1/4 resolution); a 1x1 conv gives Q logits.

Module names mirror the release so its weights map one to one (models/eccv16.py):
`trunk.{i}.{j}` = `model{i+1}.{j}`, `up.{j}` = `model8.{j}` (j < 6), `head` = `model8.6`.
The trunk + up block are the "trunk" kept by transfer learning; `head` depends on the bin grid.
"""

from __future__ import annotations

import torch
from torch import nn

from models.errors import VidcolorError

WIDTHS = {"tiny": 0.125, "small": 0.5, "base": 1.0}
PAPER_CHANNELS = (64, 128, 256, 512, 512, 512, 512)  # blocks 1-7
BLOCK_LAYERS = (2, 2, 3, 3, 3, 3, 3)
BLOCK_STRIDE = (2, 2, 2, 1, 1, 1, 1)  # on the block's last conv
BLOCK_DILATION = (1, 1, 1, 1, 2, 2, 1)
PAPER_UP_CHANNELS = 256  # block 8


def scaled(channels: int, width: float) -> int:
    return max(8, int(round(channels * width)))


class ConvBlock(nn.Sequential):
    """n x (conv3x3 + ReLU), the last conv strided, then BatchNorm (as ECCV16's modelN)."""

    def __init__(self, c_in: int, c_out: int, layers: int, stride: int = 1, dilation: int = 1):
        mods: list[nn.Module] = []
        for i in range(layers):
            s = stride if i == layers - 1 else 1
            mods += [
                nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, stride=s, padding=dilation, dilation=dilation),
                nn.ReLU(inplace=True),
            ]
        mods.append(nn.BatchNorm2d(c_out))
        super().__init__(*mods)


class Colorizer(nn.Module):
    """l_norm (N, 1, H, W) -> (features (N, C, H/4, W/4), ab_logits (N, Q, H/4, W/4)).

    H and W should be multiples of 8 (otherwise h = 2 * ceil(H / 8)).
    """

    def __init__(self, size: str, num_bins: int):
        super().__init__()
        if size not in WIDTHS:
            raise VidcolorError(f"size: must be one of {', '.join(WIDTHS)}, got {size!r}")
        width = WIDTHS[size]
        self.size, self.num_bins = size, int(num_bins)
        chans = [scaled(c, width) for c in PAPER_CHANNELS]
        blocks, c_in = [], 1
        for c_out, n, s, d in zip(chans, BLOCK_LAYERS, BLOCK_STRIDE, BLOCK_DILATION):
            blocks.append(ConvBlock(c_in, c_out, n, s, d))
            c_in = c_out
        self.trunk = nn.Sequential(*blocks)
        self.feature_channels = scaled(PAPER_UP_CHANNELS, width)
        c = self.feature_channels
        self.up = nn.Sequential(
            nn.ConvTranspose2d(c_in, c, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Conv2d(c, self.num_bins, 1)

    def forward(self, l_norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.up(self.trunk(l_norm))  # (N, C, h, w), h = H/4
        return features, self.head(features)  # (N, Q, h, w)
