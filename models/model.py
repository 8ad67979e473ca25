"""The video colorizer: per-frame colorizer + temporal module, and the model factory.

`VideoColorizer` runs the ECCV16-style colorizer (models/colorizer.py) on every frame of a
window (frames folded into the batch), then the temporal module (models/temporal.py) over the
frames' features. With `temporal="none"` it is the image colorizer of exp1, exp2 and exp4; with
`"convlstm"` the sequence model of exp5, whose `seq_logits` are the final prediction.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from models.colorizer import Colorizer
from models.errors import VidcolorError
from models.gamut import ABGamut, annealed_mean
from models.presets import ExperimentConfig
from models.temporal import ConvLSTM, IdentityTemporal

log = logging.getLogger(__name__)


class ColorizerOutput(NamedTuple):
    ab_logits: torch.Tensor  # (B, T, Q, h, w): per-frame colorizer
    seq_logits: torch.Tensor | None  # (B, T, Q, h, w): temporal module, None without one
    state: Any  # temporal state to pass to the next call (None without a temporal module)


def final_logits(out: ColorizerOutput) -> torch.Tensor:
    """The prediction to decode: seq_logits when the model is temporal, else ab_logits."""
    return out.seq_logits if out.seq_logits is not None else out.ab_logits


def check_l_norm(l_norm: torch.Tensor) -> None:
    if not isinstance(l_norm, torch.Tensor) or l_norm.dim() != 5 or l_norm.shape[2] != 1:
        shape = tuple(l_norm.shape) if isinstance(l_norm, torch.Tensor) else type(l_norm).__name__
        raise VidcolorError(f"l_norm: expected shape (B, T, 1, H, W), got {shape}")


NET_STRIDE = 8  # conv1-3 each halve the frame: sizes the net sees are padded to a multiple of 8
MIN_FRAME_SIZE = NET_STRIDE
_CPU_DECODE_VALUES = 1 << 21  # logits decoded per annealed-mean call on the CPU (8 MB of float32)
MAX_FRAME_SIZE = 4096  # the largest `vidcolor shard --size`; larger working sizes are refused (memory)


def check_frame_size(size: object, where: str = "frame size") -> int:
    """A working (frame) size the net can run at: an int in [MIN_FRAME_SIZE, MAX_FRAME_SIZE]."""
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_FRAME_SIZE <= size <= MAX_FRAME_SIZE:
        raise VidcolorError(f"{where}: must be an integer in [{MIN_FRAME_SIZE}, {MAX_FRAME_SIZE}], got {size!r}")
    return size


class Predictor:
    """`predict_ab`, the one decode path from logits to ab, for any module whose forward returns
    a ColorizerOutput and that has an `ab_centers` buffer and a `config` (VideoColorizer, Ensemble)."""

    config: ExperimentConfig
    ab_centers: torch.Tensor

    @torch.no_grad()
    def predict_ab(
        self,
        l_norm: torch.Tensor,
        temperature: float | None = None,
        state: Any = None,
        size: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, Any]:
        """l_norm (B, T, 1, H, W) -> (ab (B, T, 2, *size) float32, state).

        Decodes the final logits with the annealed mean at `temperature` (default: the config's)
        in float32 (also under autocast) and upsamples bilinearly to `size` = (height, width),
        default the input's (H, W). Any H, W works (padded to a multiple of NET_STRIDE inside).
        Pass the returned state to the next call to stream a long video window by window.
        """
        ab, state = self.predict_ab_coarse(l_norm, temperature, state)
        h, w = l_norm.shape[-2:]
        with torch.autocast(l_norm.device.type, enabled=False):
            return upsample_ab(ab.flatten(0, 1), (h, w), size).unflatten(0, ab.shape[:2]), state

    @torch.no_grad()
    def predict_ab_coarse(
        self, l_norm: torch.Tensor, temperature: float | None = None, state: Any = None
    ) -> tuple[torch.Tensor, Any]:
        """`predict_ab` before the upsampling: ab (B, T, 2, H'/4, W'/4) float32 at the logits'
        resolution, H' and W' being H and W padded to a multiple of NET_STRIDE; `upsample_ab` takes
        it to any output size (a frame at a time, so a batch never has to exist at full size)."""
        check_l_norm(l_norm)
        if not bool(self.ab_centers.abs().sum() > 0):
            raise VidcolorError(
                "model has no bin centers: build it with create_model(config, gamut) or load_checkpoint"
            )
        t = self.config.temperature if temperature is None else temperature
        b, n, _, h, w = l_norm.shape
        ph, pw = (-h) % NET_STRIDE, (-w) % NET_STRIDE
        x = l_norm
        if ph or pw:
            x = F.pad(l_norm.flatten(0, 1), (0, pw, 0, ph), mode="replicate").unflatten(0, (b, n))
        out = self(x, state)
        with torch.autocast(l_norm.device.type, enabled=False):
            logits = final_logits(out).flatten(0, 1)  # (B*T, Q, (H+ph)/4, (W+pw)/4)
            # on the CPU a few frames at a time: the softmax's temporaries for a whole batch of large
            # frames (hundreds of MB) cost more in page faults and cache misses than the arithmetic
            chunk = max(1, _CPU_DECODE_VALUES // logits[0].numel()) if logits.device.type == "cpu" else len(logits)
            ab = torch.cat([annealed_mean(part.float(), self.ab_centers, t) for part in logits.split(chunk)])
        return ab.unflatten(0, (b, n)), out.state


def upsample_ab(ab: torch.Tensor, input_size: tuple[int, int], size: tuple[int, int] | None = None) -> torch.Tensor:
    """Coarse ab (N, 2, H'/4, W'/4) of `Predictor.predict_ab_coarse` for an input of ``input_size``
    = (H, W) -> (N, 2, *size) float32, bilinear; ``size`` defaults to the input's. The padded
    prediction is upsampled so that its unpadded part covers exactly ``size``."""
    h, w = input_size
    ph, pw = (-h) % NET_STRIDE, (-w) % NET_STRIDE
    out_h, out_w = (h, w) if size is None else size
    full_h, full_w = round(out_h * (h + ph) / h), round(out_w * (w + pw) / w)
    return F.interpolate(ab.float(), size=(full_h, full_w), mode="bilinear", align_corners=False)[..., :out_h, :out_w]


class VideoColorizer(Predictor, nn.Module):
    """l_norm (B, T, 1, H, W) -> ColorizerOutput; see the module docstring."""

    def __init__(self, config: ExperimentConfig, num_bins: int):
        super().__init__()
        if config.is_ensemble:
            raise VidcolorError(f"{config.name}: an ensemble is built from trained members (models.ensemble.Ensemble)")
        self.config = config
        self.num_bins = int(num_bins)
        self.colorizer = Colorizer(config.size, self.num_bins)
        c = self.colorizer.feature_channels
        self.temporal = ConvLSTM(c, self.num_bins) if config.is_temporal else IdentityTemporal()
        # bin centers for predict_ab; rebuilt from the checkpoint's config, so not saved with the weights
        self.register_buffer("ab_centers", torch.zeros(self.num_bins, 2), persistent=False)

    @property
    def is_temporal(self) -> bool:
        return self.config.is_temporal

    def set_gamut(self, gamut: ABGamut) -> None:
        if gamut.num_bins != self.num_bins:
            raise VidcolorError(f"gamut has {gamut.num_bins} bins, the model {self.num_bins}")
        self.ab_centers.copy_(gamut.centers)

    def forward(self, l_norm: torch.Tensor, state: Any = None, truncate: int | None = None) -> ColorizerOutput:
        """``truncate``: the temporal module's gradient is cut every that many frames (training)."""
        check_l_norm(l_norm)
        b, t = l_norm.shape[:2]
        features, ab_logits = self.colorizer(l_norm.flatten(0, 1))  # (B*T, C, h, w), (B*T, Q, h, w)
        features = features.unflatten(0, (b, t))  # (B, T, C, h, w)
        ab_logits = ab_logits.unflatten(0, (b, t))  # (B, T, Q, h, w)
        seq_logits, state = self.temporal(features, ab_logits, state, truncate)
        return ColorizerOutput(ab_logits, seq_logits, state)

    def trunk_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights that do not depend on the bin grid (colorizer trunk + upsampling block)."""
        return {k: v for k, v in self.state_dict().items() if k.startswith(("colorizer.trunk.", "colorizer.up."))}


def create_model(config: ExperimentConfig, gamut: ABGamut) -> VideoColorizer:
    """A fresh VideoColorizer for a config, its head sized and its decoder set for the gamut."""
    if config.grid != gamut.grid:
        raise VidcolorError(f"grid: config has {config.grid}, the gamut {gamut.grid}")
    model = VideoColorizer(config, gamut.num_bins)
    model.set_gamut(gamut)
    log.debug(
        "created %s (size %s, temporal %s, %d bins, %d parameters)",
        config.name,
        config.size,
        config.temporal,
        gamut.num_bins,
        count_parameters(model),
    )
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
