"""The torch device a command runs on: ``--device NAME`` or the first GPU when there is one."""

from __future__ import annotations

import torch

from models.errors import VidcolorError


def resolve_device(name: str | None = None) -> torch.device:
    """``None`` -> ``cuda`` when available, else ``cpu``; a name is checked (``cuda`` without a
    GPU, or a string torch does not know, is a VidcolorError naming ``--device``)."""
    if name is None or name == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise VidcolorError(f"--device: {name!r} is not a torch device ({exc})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise VidcolorError(f"--device: {name!r} asked for, but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise VidcolorError(
                f"--device: {name!r} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})"
            )
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise VidcolorError(f"--device: {name!r} asked for, but MPS (Apple GPU) is not available here")
    elif device.type != "cpu":  # meta, xpu, hpu ...: torch knows the name, vidcolor does not run there
        raise VidcolorError(f"--device: {name!r} is not one vidcolor runs on (cpu, cuda, cuda:N, mps)")
    return device


def autocast_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """bf16 for autocast on a GPU, None (no autocast) on the CPU or when disabled."""
    return torch.bfloat16 if enabled and device.type == "cuda" else None
