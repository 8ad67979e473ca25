"""`--stabilize`: a streaming, flow-guided temporal filter of a colorized video's ab channels, for
any model (it sees only the gray frames and the predicted ab: single nets, ensembles, imported
ECCV16 alike).

For each frame t, with the previous gray frame and the previous *stabilized* ab kept as state:

1. Flow from the current gray frame to the previous one (`models.flow.dis_flows`, OpenCV DIS on
   the gray input: all a black-and-white film has). Frames whose long side exceeds
   ``flow_max_side`` get their flow at that reduced size, scaled back (DIS's cost grows with the
   pixels; the chroma being filtered is smooth anyway).
2. The previous gray frame warped to t (`backward_warp`), a global gain and offset fitted away
   (`luminance_residual`: the brightness flicker of old film is no reason to distrust the flow):
   its absolute residual against frame t gives the per-pixel confidence ``exp(-residual^2 / (2
   sigma^2))``, so whatever the flow does not explain (new objects, lighting changes, bad flow)
   keeps the current prediction and never smears. Pixels that Lai et al.'s occlusion test
   (`models.flow.occlusion`: forward-backward mismatch, motion boundaries, leaving the frame)
   rejects get no blending either.
3. A shot cut: when more than ``cut_share`` of the pixels are unexplained (forward-backward
   mismatch, or a residual above ``cut_residual`` gray levels), no flow leads from the previous
   frame to this one; the state is reset and frame t passes unchanged (the first frame of a shot
   is the model's own). A change of frame size does the same. A missed cut does little harm
   (its pixels have no confidence anyway) and neither does a false one (one frame unfiltered).
4. The output blends the current prediction P with the warped previous output W by
   ``alpha = strength * confidence``, keeping the chroma magnitude (`blend_chroma`): the direction
   of ``(1 - alpha) P + alpha W`` with the length ``(1 - alpha) |P| + alpha |W|`` (the linear
   average of two different hues is paler than either; this keeps the blend as saturated as its
   parts, so the filter does not wash colors out).

``strength`` in [0, 1]: 0 is the identity, 1 holds a tracked pixel's color as long as the flow
follows it; `DEFAULT_STRENGTH` was chosen on real validation clips (docs/colorize.md). Memory is one
previous frame (constant over a film); call `Stabilizer.reset` between films. Frames under
`models.flow.FLOW_MIN_SIZE` on a side pass through unchanged (DIS refuses them).
Cost on one CPU core: about 3 ms a frame at 64x64, 60 ms at 456x256 (half of it the two DIS flows).

The method is a simplified form of Bonneel et al. 2015 ("Blind Video Temporal Consistency",
SIGGRAPH Asia) and of the short-term term of Lai et al. 2018 ("Learning Blind Video Temporal
Consistency", ECCV): the output is pulled toward the previous output warped by optical flow, with
occlusions masked. Unlike Bonneel et al., there is no gradient-domain solve against the
per-frame result (a per-pixel recursive blend instead, no spatial term), the flow is computed on
the gray input rather than on the processed frames, and only ab is filtered (L is the film's
own). Unlike Lai et al., nothing is learned: no network and no long-term term; the confidence from
the luminance residual, the cut detector and the chroma-keeping blend are added here.
"""

from __future__ import annotations

import numpy as np
import torch

from models import DEFAULT_STABILIZE_STRENGTH
from models.errors import VidcolorError
from models.flow import FLOW_MIN_SIZE, backward_warp, dis_flows, flow_mismatch, leaves_frame, motion_boundary

DEFAULT_STRENGTH = DEFAULT_STABILIZE_STRENGTH  # defined in models/__init__.py so the CLI needs no torch
CONFIDENCE_SIGMA = 6.0  # gray levels: a warp residual of sigma keeps exp(-1/2) = 0.61 of the blend
CUT_RESIDUAL = 20.0  # gray levels: a pixel the flow does not explain
# share of unexplained pixels from which a frame starts a new shot: on 52 real clips at 96 px, 99.9%
# of consecutive pairs stayed under 0.69 (the most, 0.79, a scooter's fast pan), 95% of pairs
# across two clips were above 0.9 (both kinds of mistake are cheap: see the module docstring)
CUT_SHARE = 0.8
FLOW_MAX_SIDE = 512  # px: longer frames get their flow at this long side, scaled back
MAX_CHROMA_GAIN = 4.0  # bound on blend_chroma's rescaling where two opposite hues nearly cancel


def check_strength(value: object, where: str = "--stabilize") -> float:
    """A stabilizer strength: a number in [0, 1] (an error names ``where`` and the value)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise VidcolorError(f"{where}: must be a number in [0, 1] (0 = off, 1 = strongest), got {value!r}")
    return float(value)


def luminance_residual(gray: np.ndarray, warped: torch.Tensor) -> torch.Tensor:
    """|gray - (gain * warped + offset)| per pixel (H, W) float64, gain and offset fitted by least
    squares over the frame: what the flow does not explain, a global exposure change (the
    brightness flicker of old film) taken out."""
    target = torch.from_numpy(gray).double().flatten()
    design = torch.stack((warped.flatten(), torch.ones_like(target)), dim=1)
    gain, offset = torch.linalg.lstsq(design, target[:, None]).solution.flatten().tolist()
    return (torch.from_numpy(gray).double() - (gain * warped + offset)).abs()


def blend_chroma(current: torch.Tensor, previous: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """ab (2, H, W) x2 and alpha (H, W) in [0, 1] -> ab (2, H, W): the direction of the linear blend
    ``(1 - alpha) current + alpha previous``, rescaled to the blend of the two chroma magnitudes
    (the rescaling at most MAX_CHROMA_GAIN). alpha 0 gives ``current``, 1 gives ``previous``."""
    mixed = current + alpha * (previous - current)
    now, before = torch.hypot(*current), torch.hypot(*previous)
    length = now + alpha * (before - now)
    mixed_length = torch.hypot(*mixed)
    gain = torch.where(mixed_length > 1e-6, length / mixed_length.clamp_min(1e-6), torch.ones_like(length))
    return mixed * gain.clamp(max=MAX_CHROMA_GAIN)


class Stabilizer:
    """The filter of the module docstring over one film's frames, in order: `step` per frame,
    `reset` between films. ``cuts`` counts the shot cuts found since construction."""

    def __init__(
        self,
        strength: float = DEFAULT_STRENGTH,
        *,
        sigma: float = CONFIDENCE_SIGMA,
        cut_residual: float = CUT_RESIDUAL,
        cut_share: float = CUT_SHARE,
        flow_max_side: int = FLOW_MAX_SIDE,
    ):
        self.strength = check_strength(strength, "stabilizer strength")
        if not sigma > 0 or not cut_residual > 0 or not 0 < cut_share <= 1 or flow_max_side < FLOW_MIN_SIZE:
            raise VidcolorError(
                f"Stabilizer: sigma {sigma!r} and cut_residual {cut_residual!r} must be > 0, "
                f"cut_share {cut_share!r} in (0, 1], flow_max_side {flow_max_side!r} "
                f">= {FLOW_MIN_SIZE}"
            )
        self.sigma, self.cut_residual, self.cut_share = float(sigma), float(cut_residual), float(cut_share)
        self.flow_max_side = int(flow_max_side)
        self.cuts = 0
        self.reset()

    def reset(self) -> None:
        """Start a new film (or shot): the next frame passes unchanged."""
        self._gray: np.ndarray | None = None
        self._ab: torch.Tensor | None = None

    def step(self, gray: np.ndarray | torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """The next frame: gray uint8 (H, W), the model's ab (2, H, W) -> stabilized ab (2, H, W)
        float32 on ab's device."""
        gray = _check_frame(gray, ab)
        current = ab.detach().to("cpu", torch.float64)
        if self.strength == 0.0 or min(gray.shape) < FLOW_MIN_SIZE:
            self.reset()
            return ab.detach().float()
        if self._gray is None or self._gray.shape != gray.shape:
            return self._restart(gray, current, ab)
        forward, backward = dis_flows(gray, self._gray, max_side=self.flow_max_side)  # t -> t-1, t-1 -> t
        residual = luminance_residual(gray, backward_warp(torch.from_numpy(self._gray)[None], forward)[0])
        mismatch = flow_mismatch(forward, backward)
        if float((mismatch | (residual > self.cut_residual)).double().mean()) > self.cut_share:
            self.cuts += 1
            return self._restart(gray, current, ab)
        tracked = ~(mismatch | motion_boundary(forward) | leaves_frame(forward))  # ~models.flow.occlusion
        confidence = torch.exp(-0.5 * (residual / self.sigma) ** 2) * tracked
        out = blend_chroma(current, backward_warp(self._ab, forward), self.strength * confidence)
        self._gray, self._ab = gray, out
        return out.to(ab.device, torch.float32)

    def _restart(self, gray: np.ndarray, current: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        self._gray, self._ab = gray, current
        return ab.detach().float()


def _check_frame(gray: np.ndarray | torch.Tensor, ab: torch.Tensor) -> np.ndarray:
    """gray as a contiguous uint8 numpy (H, W) matching ab (2, H, W); an error names the shapes."""
    gray = gray.cpu().numpy() if isinstance(gray, torch.Tensor) else np.asarray(gray)
    if gray.dtype != np.uint8 or gray.ndim != 2 or tuple(ab.shape) != (2, *gray.shape):
        raise VidcolorError(
            f"Stabilizer.step: expected gray uint8 (H, W) and ab (2, H, W), got gray "
            f"{gray.dtype} {tuple(gray.shape)} and ab {tuple(ab.shape)}"
        )
    return np.ascontiguousarray(gray)


def stabilize_clip(
    gray: np.ndarray | torch.Tensor, ab: torch.Tensor, strength: float = DEFAULT_STRENGTH, **settings
) -> torch.Tensor:
    """One video's frames in order: gray uint8 (T, H, W), ab (T, 2, H, W) -> stabilized ab
    (T, 2, H, W) float32 (a fresh `Stabilizer(strength, **settings)`; cuts inside reset it)."""
    if len(gray) != len(ab):
        raise VidcolorError(f"stabilize_clip: {len(gray)} gray frames but {len(ab)} ab frames")
    stabilizer = Stabilizer(strength, **settings)
    if len(ab) == 0:
        return ab.detach().float()
    return torch.stack([stabilizer.step(g, a) for g, a in zip(gray, ab)])
