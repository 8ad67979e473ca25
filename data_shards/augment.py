"""Training-time augmentation of frame windows: the same random flip and scaled crop for every frame
of a window (so the motion between them stays what it was), applied to decoded uint8 frames.

`Augment(flip=True, min_scale=0.6, size=64)`: with probability 1/2 a horizontal flip; a square crop
whose side is a uniform fraction in [min_scale, 1] of the frame's side, at a uniform position,
resized (bilinear, antialiased) to ``size`` (default: the frame's own size). ``min_scale=1`` and
``size=None`` keep the frames' geometry, so ``Augment(flip=False, min_scale=1.0)`` is the identity.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from models.errors import VidcolorError


@dataclass(frozen=True)
class Augment:
    flip: bool = True
    min_scale: float = 1.0
    size: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.min_scale <= 1.0:
            raise VidcolorError(f"crop_scale: must be in (0, 1], got {self.min_scale}")
        if self.size is not None and self.size < 8:
            raise VidcolorError(f"train_size: must be at least 8 px, got {self.size}")

    @property
    def identity(self) -> bool:
        return not self.flip and self.min_scale == 1.0 and self.size is None

    def __call__(self, frames: np.ndarray, rng: random.Random) -> np.ndarray:
        """uint8 (T, H, W, 3) -> uint8 (T, S, S, 3), S = ``size`` or min(H, W)."""
        t, h, w, _ = frames.shape
        side = min(h, w)
        out = self.size or side
        if self.flip and rng.random() < 0.5:
            frames = frames[:, :, ::-1]
        crop = max(1, round(side * rng.uniform(self.min_scale, 1.0)))
        y, x = rng.randint(0, h - crop), rng.randint(0, w - crop)
        frames = frames[:, y : y + crop, x : x + crop]
        if crop != out:
            x_t = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
            x_t = F.interpolate(x_t, size=(out, out), mode="bilinear", antialias=crop > out, align_corners=False)
            frames = x_t.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return np.ascontiguousarray(frames)
