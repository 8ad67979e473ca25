"""Optimizer state in a checkpoint without pickle: tensors as safetensors, the rest as JSON.

``torch.save(optimizer.state_dict())`` would pickle; a checkpoint must load without ever
unpickling, so Adam's moments go to ``optimizer.safetensors`` (keys ``{param_id}.{name}``) and its
hyperparameters and step counts to ``optimizer.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from models.errors import VidcolorError

OPTIMIZER_FILE = "optimizer.safetensors"
OPTIMIZER_META = "optimizer.json"


def save_optimizer(optimizer: torch.optim.Optimizer, folder: str | Path) -> None:
    """Write the optimizer's state into ``folder`` (safetensors + JSON)."""
    from safetensors.torch import save_file

    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for pid, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                plain.setdefault(str(pid), {})[name] = value
    save_file(tensors, str(Path(folder) / OPTIMIZER_FILE))
    meta = {"param_groups": state["param_groups"], "plain": plain, "type": type(optimizer).__name__}
    (Path(folder) / OPTIMIZER_META).write_text(json.dumps(meta, default=_json_default))


def load_optimizer(optimizer: torch.optim.Optimizer, folder: str | Path, device: torch.device | None = None) -> bool:
    """Restore what ``save_optimizer`` wrote (moments moved to ``device`` when given); False when
    the folder has no optimizer state."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / OPTIMIZER_FILE).is_file() or not (folder / OPTIMIZER_META).is_file():
        return False
    meta = json.loads((folder / OPTIMIZER_META).read_text())
    if meta.get("type") != type(optimizer).__name__:
        raise VidcolorError(
            f"{folder / OPTIMIZER_META}: optimizer {meta.get('type')!r}, expected {type(optimizer).__name__!r}"
        )
    state: dict[int, dict[str, Any]] = {}
    for key, tensor in load_file(str(folder / OPTIMIZER_FILE)).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = tensor
    for pid, entry in meta["plain"].items():
        state.setdefault(int(pid), {}).update(entry)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    if device is not None:
        for entry in optimizer.state.values():
            for name, value in entry.items():
                if isinstance(value, torch.Tensor) and name != "step":
                    entry[name] = value.to(device)
    return True


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, torch.Tensor):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


TRAIN_WEIGHTS_FILE = "train_weights.safetensors"


def ema_decay(decay: float, updates: int) -> float:
    """The decay of the weight average's ``updates``-th update: ``decay``, warmed up as
    ``1 - (1 + updates) ** -0.75`` while that is smaller (timm's warm-up), so a short run or the
    first epoch averages over the steps it has made instead of keeping the random start."""
    return min(decay, 1.0 - (1.0 + updates) ** -0.75)


def ema_avg_fn(decay: float):
    """``multi_avg_fn`` for ``torch.optim.swa_utils.AveragedModel``: an exponential moving average
    with `ema_decay`'s warm-up (the model's integer buffers are copied, not averaged). AveragedModel
    calls it once per device and dtype, so each call's tensors are all floating or all integer."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        if averaged[0].is_floating_point():  # one fused kernel, as torch's get_ema_multi_avg_fn does
            torch._foreach_lerp_(averaged, current, 1.0 - ema_decay(decay, int(n_averaged)))
        else:
            torch._foreach_copy_(averaged, current)

    return update


def save_train_weights(model: torch.nn.Module, ema, folder: str | Path) -> None:
    """With a weight average (``train.ema``) the checkpoint's model is the average; the weights the
    optimizer trains, and the average's count, go beside it so a resumed run continues exactly."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(Path(folder) / TRAIN_WEIGHTS_FILE), metadata={"n_averaged": str(int(ema.n_averaged.item()))})


def load_trained_only(model: torch.nn.Module, folder: str | Path) -> bool:
    """The trained weights that a checkpoint made with the average keeps beside it, into `model`
    (a run resumed with ``ema=0``); False (nothing loaded) when the checkpoint has none."""
    from safetensors.torch import load_file

    path = Path(folder) / TRAIN_WEIGHTS_FILE
    if not path.is_file():
        return False
    model.load_state_dict(load_file(str(path)))
    return True


def load_train_weights(model: torch.nn.Module, ema, averaged: torch.nn.Module, folder: str | Path) -> bool:
    """Undo `save_train_weights`: the trained weights into `model`, the checkpoint's (`averaged`)
    into the average. False (nothing loaded) when the checkpoint has no such file."""
    from safetensors import safe_open

    if not load_trained_only(model, folder):
        return False
    with safe_open(str(Path(folder) / TRAIN_WEIGHTS_FILE), framework="pt") as fh:
        n = int((fh.metadata() or {}).get("n_averaged", "1"))
    ema.module.load_state_dict(averaged.state_dict())
    ema.n_averaged.fill_(n)
    return True
