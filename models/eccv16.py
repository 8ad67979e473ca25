"""Import of the official ECCV16 colorizer weights (Zhang et al. 2016) into a `base` checkpoint.

The release `colorization_release_v2-9b330a0b.pth` (richzhang/colorization, PyTorch port) is a
plain state dict: `model1.0.weight` ... `model8.6.weight/bias` (convs, BatchNorms, the
transposed conv and the 313-way 1x1 head) and `model_out.weight` of shape [2, 313, 1, 1], which
holds the 313 bin centers divided by 110 (the release decodes by that 1x1 conv: the mean, T = 1).
The file is read with `torch.load(weights_only=True)`, so nothing is unpickled beyond tensors,
and is expected on local disk (nothing is downloaded).

`import_eccv16` (the library side of `vidcolor import-eccv16 FILE.pth --out DIR`, whose handler
is `study.train.import_weights`) writes it as a checkpoint of this project: size `base`, grid 10,
the release's own 313 centers (not this project's 309 derived ones), config otherwise exp2's
(rebalanced), named "eccv16". Use it as `pretrained` for exp4/exp5.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from models.color import AB_NORM
from models.errors import VidcolorError
from models.gamut import ABGamut
from models.model import VideoColorizer
from models.presets import ExperimentConfig, get_preset

log = logging.getLogger(__name__)

RELEASE_NAME = "colorization_release_v2-9b330a0b.pth"
ECCV16_FRAME_SIZE = 256  # Zhang et al. trained on 256 x 256 ImageNet crops
_KEY = re.compile(r"^model([1-8])\.(\d+)\.(.+)$")


def eccv16_config() -> ExperimentConfig:
    return get_preset("exp2").replace(name="eccv16", size="base", grid=10)


def rename_key(key: str) -> str | None:
    """Release key -> this project's VideoColorizer key (None for `model_out.weight`)."""
    if key == "model_out.weight":
        return None
    m = _KEY.match(key)
    if not m:
        raise VidcolorError(f"ECCV16 weights: unexpected key {key!r}")
    block, index, rest = int(m.group(1)), int(m.group(2)), m.group(3)
    if block <= 7:
        return f"colorizer.trunk.{block - 1}.{index}.{rest}"
    if index == 6:
        return f"colorizer.head.{rest}"
    return f"colorizer.up.{index}.{rest}"


def centers_from_release(weight: torch.Tensor) -> np.ndarray:
    """model_out.weight [2, Q, 1, 1] (centers / 110) -> centers float32 (Q, 2) in ab units."""
    _check_tensor("model_out.weight", weight)
    if weight.dim() != 4 or weight.shape[0] != 2 or weight.shape[2:] != (1, 1):
        raise VidcolorError(f"ECCV16 weights: model_out.weight must be [2, Q, 1, 1], got {list(weight.shape)}")
    centers = weight[:, :, 0, 0].T.double().numpy() * AB_NORM  # (Q, 2)
    rounded = np.round(centers)
    if np.abs(centers - rounded).max() < 1e-2:  # the release's centers are integers stored / 110
        centers = rounded
    return centers.astype(np.float32)


def _grid_of(centers: np.ndarray) -> int:
    ints = np.abs(np.round(centers).astype(np.int64)).ravel()
    g = 0
    for v in ints.tolist():
        g = math.gcd(g, v)
    return g if g >= 2 else 10


def _check_tensor(key: object, value: object) -> None:
    """A release entry must be a finite floating-point tensor; else an error naming it."""
    if not isinstance(value, torch.Tensor):
        raise VidcolorError(f"ECCV16 weights: {key!r} is a {type(value).__name__}, not a tensor")
    if not value.is_floating_point():
        raise VidcolorError(f"ECCV16 weights: {key} is stored as {value.dtype}, expected a floating-point tensor")
    bad = int((~torch.isfinite(value)).sum())
    if bad:
        raise VidcolorError(f"ECCV16 weights: {key} holds {bad} non-finite value(s) (NaN or Inf)")


def convert_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[VideoColorizer, ABGamut]:
    """Release state dict -> (VideoColorizer of size base with those weights, its ABGamut)."""
    if not isinstance(state, Mapping) or "model_out.weight" not in state:
        raise VidcolorError("ECCV16 weights: not the release's state dict (no 'model_out.weight')")
    for key, value in state.items():  # before anything is built: names and values as a release has them
        if not isinstance(key, str):
            raise VidcolorError(f"ECCV16 weights: key {key!r} is a {type(key).__name__}, not a tensor name")
        _check_tensor(key, value)
    centers = centers_from_release(state["model_out.weight"])
    gamut = ABGamut(_grid_of(centers), centers=centers)
    config = eccv16_config().replace(grid=gamut.grid)
    model = VideoColorizer(config, gamut.num_bins)
    own = model.state_dict()
    converted: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = rename_key(key)
        if new is None:
            continue
        if new not in own:
            raise VidcolorError(f"ECCV16 weights: key {key!r} has no place in the base colorizer ({new})")
        if tuple(value.shape) != tuple(own[new].shape):
            raise VidcolorError(f"ECCV16 weights: {key} has shape {list(value.shape)}, expected {list(own[new].shape)}")
        converted[new] = value
    missing = [k for k in own if k not in converted and not k.endswith("num_batches_tracked")]
    if missing:
        raise VidcolorError(f"ECCV16 weights: missing {len(missing)} tensors (e.g. {', '.join(missing[:3])})")
    with torch.no_grad():
        for k, v in converted.items():
            own[k].copy_(v)
    model.set_gamut(gamut)
    return model.eval(), gamut


class Release(NamedTuple):
    """The release file read and converted: the model, its gamut, and what the checkpoint records of it."""

    model: VideoColorizer
    gamut: ABGamut
    extra: dict


def read_release(weights: str | Path) -> Release:
    """Read and convert the release file (weights only; an error names the file)."""
    path = Path(weights)
    if not path.is_file():
        raise VidcolorError(f"{path}: file not found (download {RELEASE_NAME} from the ECCV16 release yourself)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses anything but tensors and plain containers
        raise VidcolorError(f"{path}: not a loadable weights-only PyTorch state dict ({exc})") from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    model, gamut = convert_state_dict(state)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Release(model, gamut, {"source": "eccv16", "weights_file": path.name, "weights_sha256": digest})


def write_checkpoint(release: Release, out: str | Path) -> Path:
    """Save ``release`` as a checkpoint folder ``out`` (at the release's 256 px frame size)."""
    from models.checkpoint import save_checkpoint

    return save_checkpoint(
        out,
        release.model,
        release.model.config,
        release.gamut,
        prior=None,
        frame_size=ECCV16_FRAME_SIZE,
        extra=release.extra,
    )


def import_eccv16(weights: str | Path, out: str | Path):
    """Read the release file and write a checkpoint folder; returns (out, model, gamut)."""
    release = read_release(weights)
    return write_checkpoint(release, out), release.model, release.gamut
