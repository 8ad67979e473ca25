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
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VidcolorError(f"--device: {name!r} asked for, but CUDA is not available here")
    return device


def autocast_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """bf16 for autocast on a GPU, None (no autocast) on the CPU or when disabled."""
    return torch.bfloat16 if enabled and device.type == "cuda" else None
