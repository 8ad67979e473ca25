"""Checkpoints: a folder with `model.safetensors` (weights) and `config.json` (everything else).

config.json holds the format tag, kind (single | ensemble), the ExperimentConfig (and the members'
for an ensemble), the frame size the model was trained at (the working size inference uses), the
bin grid with its centers and their digest, the ab prior the weights were trained with (values and
digest, or null), the sha256 of model.safetensors (`weights_sha256`, checked on loading: a damaged
or edited weights file is an error; checkpoints older than the field load unchecked), library
versions and the caller's `extra`. Weights are read with safetensors and JSON only: loading never
unpickles. An ensemble stores all members in one safetensors file under `members.{i}.` keys.

Loading refuses, naming the file and the field or tensor: a config.json key the writer never wrote,
gamut centers that do not match their digest (or, without a digest, the grid's own bins), weights
whose names or shapes do not fit the config, a floating weight stored with an integer or bool
dtype, and weights with NaN or Inf values.

`load_ensemble` assembles exp3 from trained member folders. `load_pretrained_trunk` is the
transfer-learning start of exp4/exp5: it copies the grid-free trunk of a trained colorizer into a
new model and keeps the new model's head when the bins differ.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import platform
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from models.ensemble import Ensemble
from models.errors import VidcolorError
from models.gamut import ABGamut, prior_digest
from models.model import VideoColorizer, check_frame_size
from models.presets import ExperimentConfig, get_preset

log = logging.getLogger(__name__)

FORMAT = "vidcolor-checkpoint/1"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
#: The top-level keys of config.json that save_checkpoint writes (members only for an ensemble;
#: frame_size, gamut_digest, prior_digest and weights_sha256 are absent in older checkpoints).
META_KEYS = frozenset(
    (
        "format",
        "kind",
        "config",
        "frame_size",
        "num_bins",
        "grid",
        "gamut_centers",
        "gamut_digest",
        "prior",
        "prior_digest",
        "versions",
        "created",
        "extra",
        "members",
        "weights_sha256",
    )
)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LoadedCheckpoint(NamedTuple):
    model: nn.Module  # VideoColorizer or Ensemble, in eval mode on the requested device
    config: ExperimentConfig
    gamut: ABGamut
    meta: dict[str, Any]  # config.json as read (prior: list or None, versions, extra, ...)

    @property
    def frame_size(self) -> int | None:
        """The square frame size the model was trained at (None for a checkpoint that predates it)."""
        return self.meta.get("frame_size")

    @property
    def prior(self) -> torch.Tensor | None:
        p = self.meta.get("prior")
        return None if p is None else torch.tensor(p, dtype=torch.float32)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DDP (`.module`) and torch.compile (`._orig_mod`) wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    try:
        from importlib.metadata import version

        out["vidcolor"] = version("vidcolor")
        out["safetensors"] = version("safetensors")
    except Exception:  # not installed as a distribution: versions are informative only
        pass
    return out


def save_checkpoint(
    directory: str | os.PathLike,
    model: nn.Module,
    config: ExperimentConfig,
    gamut: ABGamut,
    prior: torch.Tensor | np.ndarray | None = None,
    extra: dict[str, Any] | None = None,
    *,
    frame_size: int | None = None,
) -> Path:
    """Write model.safetensors and config.json into `directory` (created; files replaced atomically).

    `frame_size` is the square size of the training frames (the shard set's `size`): inference
    runs the net at that working size."""
    model = unwrap(model)
    if frame_size is not None:
        check_frame_size(frame_size, "save_checkpoint: frame_size")
    if not isinstance(model, (VideoColorizer, Ensemble)):
        raise VidcolorError(f"save_checkpoint: expected a VideoColorizer or Ensemble, got {type(model).__name__}")
    if model.num_bins != gamut.num_bins:
        raise VidcolorError(f"save_checkpoint: the model has {model.num_bins} bins, the gamut {gamut.num_bins}")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "kind": "ensemble" if isinstance(model, Ensemble) else "single",
        "config": config.to_dict(),
        "frame_size": frame_size,
        "num_bins": gamut.num_bins,
        "grid": gamut.grid,
        "gamut_centers": gamut.centers.tolist(),
        "gamut_digest": gamut.digest(),
        "prior": None if prior is None else [float(v) for v in torch.as_tensor(prior).flatten().tolist()],
        "prior_digest": prior_digest(prior),
        "versions": versions(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "extra": extra or {},
    }
    if meta["prior"] is not None and len(meta["prior"]) != gamut.num_bins:
        raise VidcolorError(f"prior: expected {gamut.num_bins} values, got {len(meta['prior'])}")
    if isinstance(model, Ensemble):
        meta["members"] = [m.config.to_dict() for m in model.members]
    try:
        json.dumps(meta["extra"])
    except TypeError as exc:
        raise VidcolorError(f"save_checkpoint: extra must be JSON-serializable ({exc})") from None
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmp = d / f".{WEIGHTS}.tmp"
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    meta["weights_sha256"] = file_sha256(tmp)
    os.replace(tmp, d / WEIGHTS)
    tmp = d / f".{CONFIG}.tmp"
    tmp.write_text(json.dumps(meta, indent=1) + "\n")
    os.replace(tmp, d / CONFIG)  # config.json last: a folder with it is complete
    log.info("saved %s checkpoint %s (%s, %d bins)", meta["kind"], d, config.name, gamut.num_bins)
    return d


def read_meta(directory: str | os.PathLike) -> dict[str, Any]:
    """config.json of a checkpoint folder, checked for the format."""
    d = Path(directory)
    path = d / CONFIG
    try:
        is_dir = d.is_dir()
    except OSError as exc:  # a name too long: the system cannot even look
        raise VidcolorError(f"{d}: cannot be used as a checkpoint folder ({exc.strerror or exc})") from None
    if not is_dir:
        raise VidcolorError(f"{d}: checkpoint folder not found")
    if not path.is_file():
        raise VidcolorError(f"{d}: not a checkpoint (no {CONFIG})")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VidcolorError(f"{path}: unreadable ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise VidcolorError(f"{path}: format is {got!r}, expected {FORMAT!r}")
    unknown = sorted(set(meta) - META_KEYS)
    if unknown:
        raise VidcolorError(
            f"{path}: unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"(allowed: {', '.join(sorted(META_KEYS))})"
        )
    for key in ("kind", "config", "grid", "gamut_centers", "num_bins"):
        if key not in meta:
            raise VidcolorError(f"{path}: missing field {key!r}")
    if meta["kind"] not in ("single", "ensemble"):
        raise VidcolorError(f"{path}: kind must be single or ensemble, got {meta['kind']!r}")
    if meta.get("frame_size") is not None:
        check_frame_size(meta["frame_size"], f"{path}: frame_size")
    return meta


def load_checkpoint(directory: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild the model of a checkpoint folder (eval mode, on `device`) with its config and gamut."""
    d = Path(directory)
    meta = read_meta(d)
    path = d / CONFIG
    config = ExperimentConfig.from_dict(meta["config"], str(path), ("config",))
    try:
        gamut = ABGamut(int(meta["grid"]), centers=np.asarray(meta["gamut_centers"], dtype=np.float32))
    except (VidcolorError, ValueError, TypeError) as exc:
        raise VidcolorError(f"{path}: gamut: {exc}") from None
    _check_gamut(gamut, meta.get("gamut_digest"), path)
    if gamut.num_bins != meta["num_bins"]:
        raise VidcolorError(f"{path}: num_bins is {meta['num_bins']} but gamut_centers has {gamut.num_bins}")
    if meta["kind"] == "single":
        model: nn.Module = VideoColorizer(config, gamut.num_bins)
    else:
        members = meta.get("members")
        if not isinstance(members, list) or len(members) < 2:
            raise VidcolorError(f"{path}: an ensemble checkpoint needs a 'members' list of two or more configs")
        models = [
            VideoColorizer(ExperimentConfig.from_dict(m, str(path), ("members", i)), gamut.num_bins)
            for i, m in enumerate(members)
        ]
        for m in models:
            m.set_gamut(gamut)
        model = Ensemble(models, config)
    weights = d / WEIGHTS
    if not weights.is_file():
        raise VidcolorError(f"{d}: not a checkpoint (no {WEIGHTS})")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise VidcolorError(f"{weights}: unreadable ({exc})") from None
    _check_digest(weights, meta)
    _check_state(model, state, weights)
    model.load_state_dict(state, strict=True)
    if isinstance(model, VideoColorizer):
        model.set_gamut(gamut)
    else:
        model.ab_centers.copy_(gamut.centers)
    model.to(device).eval()
    log.info(
        "loaded %s checkpoint %s (%s, size %s, %d bins)", meta["kind"], d, config.name, config.size, gamut.num_bins
    )
    return LoadedCheckpoint(model, config, gamut, meta)


def load_ensemble(
    directories: list[str | os.PathLike], device: str | torch.device = "cpu", config: ExperimentConfig | None = None
) -> LoadedCheckpoint:
    """exp3: the ensemble of trained single-model checkpoints (e.g. the exp1 and exp2 runs' best/).

    Each member is read once. The members must share the bin grid (Ensemble checks); the
    ensemble's prior is the first member's and its frame size the members' (they must agree)."""
    if len(directories) < 2:
        raise VidcolorError(f"ensemble: needs at least two member checkpoints, got {len(directories)}")
    loaded = [load_checkpoint(d, device=device) for d in directories]
    for d, member in zip(directories, loaded):
        if not isinstance(member.model, VideoColorizer):
            raise VidcolorError(f"{d}: an ensemble member must be a single-model checkpoint")
    sizes = {m.frame_size for m in loaded if m.frame_size is not None}
    if len(sizes) > 1:
        raise VidcolorError(
            f"ensemble: members were trained at different frame sizes {sorted(sizes)} "
            f"({', '.join(map(str, directories))})"
        )
    first = loaded[0]
    if config is None:
        config = get_preset("exp3").replace(
            grid=first.config.grid, size=first.config.size, ensemble=tuple(str(d) for d in directories)
        )
    ensemble = Ensemble([m.model for m in loaded], config).to(device).eval()
    meta = {
        "kind": "ensemble",
        "frame_size": sizes.pop() if sizes else None,
        "prior": first.meta.get("prior"),
        "extra": {"members": [str(d) for d in directories]},
    }
    return LoadedCheckpoint(ensemble, config, first.gamut, meta)


def _check_digest(weights: Path, meta: dict[str, Any]) -> None:
    """The weights file must hash to config.json's `weights_sha256` (absent in older checkpoints)."""
    expected = meta.get("weights_sha256")
    if expected is None:
        log.debug("%s: config.json records no weights_sha256 (an older checkpoint): not checked", weights)
        return
    if not isinstance(expected, str) or file_sha256(weights) != expected.lower():
        raise VidcolorError(f"{weights}: sha256 does not match {CONFIG} (damaged or edited?)")


def _check_gamut(gamut: ABGamut, digest: Any, path: Path) -> None:
    """The centers must hash to `gamut_digest`; a checkpoint without one (older) must hold its grid's own bins."""
    if digest is not None:
        if not isinstance(digest, str) or digest.lower() != gamut.digest():
            raise VidcolorError(f"{path}: gamut_centers do not match gamut_digest (edited file?)")
        return
    own = ABGamut(gamut.grid)
    if own == gamut:
        return
    if own.num_bins != gamut.num_bins:
        what = f"{gamut.num_bins} centers, grid {gamut.grid} has {own.num_bins} bins"
    else:
        i = int((gamut.centers != own.centers).any(dim=1).nonzero()[0])
        (a, b), (a0, b0) = gamut.centers[i].tolist(), own.centers[i].tolist()
        what = f"center {i} is ({a:g}, {b:g}), grid {gamut.grid} has ({a0:g}, {b0:g})"
    raise VidcolorError(
        f"{path}: field gamut_centers: {what}, and there is no gamut_digest to record other centers (edited file?)"
    )


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _check_state(model: nn.Module, state: dict[str, torch.Tensor], where: Path) -> None:
    """The weights must fit the model: the same names and shapes, floating where the model's are, all finite."""
    own = model.state_dict()
    expected = {k: tuple(v.shape) for k, v in own.items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} with other shapes (e.g. {k}: file {tuple(state[k].shape)}, config {expected[k]})"
            )
        raise VidcolorError(f"{where}: weights do not match config.json: " + "; ".join(parts))
    # the kind of dtype, compared with the model's own (integer buffers such as num_batches_tracked stay integer)
    kind = [k for k in own if state[k].is_floating_point() != own[k].is_floating_point()]  # in the model's order
    if kind:
        k = kind[0]
        more = f" ({len(kind) - 1} more tensors likewise)" if len(kind) > 1 else ""
        raise VidcolorError(
            f"{where}: tensor {k} is stored as {_dtype(state[k])}, expected {_dtype(own[k])} (the model's){more}"
        )
    bad = [k for k in own if state[k].is_floating_point() and not torch.isfinite(state[k]).all()]
    if bad:
        named = [f"{k} ({int(state[k].isnan().sum())} NaN, {int(state[k].isinf().sum())} Inf)" for k in bad[:3]]
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise VidcolorError(
            f"{where}: non-finite weights in {len(bad)} tensor{'s' if len(bad) > 1 else ''}: {', '.join(named)}{more}"
        )


def load_pretrained_trunk(model: nn.Module, directory: str | os.PathLike) -> dict[str, Any]:
    """Initialize `model` (a VideoColorizer) from a trained single-model checkpoint (exp4/exp5).

    Copies the colorizer trunk and upsampling block (they must have the same size). The head is
    copied only when the bins are identical; otherwise the model keeps its fresh head for its own
    grid, which is logged. The ConvLSTM is copied when both models have one (its output conv only
    with identical bins). Returns
    {"trunk": tensors copied, "head": bool, "temporal": bool, "source": directory}.
    """
    target = unwrap(model)
    if not isinstance(target, VideoColorizer):
        raise VidcolorError(f"pretrained: can only initialize a single colorizer, got {type(target).__name__}")
    loaded = load_checkpoint(directory)
    src = loaded.model
    if not isinstance(src, VideoColorizer):
        raise VidcolorError(f"pretrained: {directory} is an ensemble checkpoint; give a single colorizer")
    if src.config.size != target.config.size:
        raise VidcolorError(f"pretrained: {directory} has size {src.config.size!r}, the model {target.config.size!r}")
    src_state = src.state_dict()
    own = target.state_dict()
    trunk = src.trunk_state_dict()
    copied = dict(trunk)
    same_bins = src.num_bins == target.num_bins and torch.equal(src.ab_centers.cpu(), target.ab_centers.cpu())
    if same_bins:
        copied.update({k: v for k, v in src_state.items() if k.startswith("colorizer.head.")})
    else:
        log.info(
            "pretrained %s: bins differ (grid %d, %d bins -> grid %d, %d bins): keeping the trunk, starting a new head",
            directory,
            loaded.gamut.grid,
            src.num_bins,
            target.config.grid,
            target.num_bins,
        )
    # the ConvLSTM cell is grid-free; its output conv is copied only with the same bins
    temporal_keys = {
        k: v
        for k, v in src_state.items()
        if k.startswith("temporal.") and (same_bins or not k.startswith("temporal.out."))
    }
    same_temporal = bool(temporal_keys) and all(k in own and own[k].shape == v.shape for k, v in temporal_keys.items())
    if same_temporal:
        copied.update(temporal_keys)
    elif target.is_temporal:
        log.info("pretrained %s: no matching temporal module; the ConvLSTM starts fresh", directory)
    with torch.no_grad():
        for k, v in copied.items():
            own[k].copy_(v.to(own[k].device))
    log.info(
        "pretrained %s: copied %d tensors (head: %s, temporal: %s)", directory, len(copied), same_bins, same_temporal
    )
    return {"trunk": len(trunk), "head": same_bins, "temporal": same_temporal, "source": str(directory)}
