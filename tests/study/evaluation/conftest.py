"""Fixtures of the evaluation tests: a tiny untrained exp2 checkpoint."""

from __future__ import annotations

import pytest
import torch

from models.gamut import ABGamut
from models.model import create_model


@pytest.fixture()
def tiny_checkpoint(tmp_path):
    from models.checkpoint import save_checkpoint
    from models.presets import get_preset

    torch.manual_seed(0)
    config = get_preset("exp2").replace(size="tiny")
    gamut = ABGamut(config.grid)
    save_checkpoint(tmp_path / "ck", create_model(config, gamut), config, gamut)
    return tmp_path / "ck"
