"""Experiment 3 of the seed paper: an ensemble that averages its members' color distributions.

Each member (e.g. the exp1 and exp2 colorizers) predicts a distribution over the same ab bins;
the ensemble's prediction is their mean, p = (1/M) sum_m softmax(final_logits_m). It returns
log p as `ab_logits` (log-probabilities are valid logits), so decoding, losses and metrics treat
it like any single model. Loading members from checkpoint folders is
`models.checkpoint.load_ensemble`'s job: this module knows nothing about files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from models.errors import VidcolorError
from models.model import ColorizerOutput, Predictor, VideoColorizer, check_l_norm, final_logits
from models.presets import ExperimentConfig, get_preset


class Ensemble(Predictor, nn.Module):
    """Same forward as VideoColorizer: l_norm (B, T, 1, H, W) -> ColorizerOutput(log mean probs, None, states)."""

    def __init__(self, models: Sequence[VideoColorizer], config: ExperimentConfig | None = None):
        super().__init__()
        if len(models) < 2:
            raise VidcolorError(f"ensemble: needs at least two members, got {len(models)}")
        q = {m.num_bins for m in models}
        if len(q) != 1:
            raise VidcolorError(f"ensemble: members predict different numbers of bins {sorted(q)}")
        ref = models[0].ab_centers
        if any(not torch.equal(m.ab_centers.cpu(), ref.cpu()) for m in models[1:]):
            raise VidcolorError("ensemble: members use different ab bins (grid or centers differ)")
        self.members = nn.ModuleList(models)
        self.num_bins = q.pop()
        names = tuple(m.config.name for m in models)
        if config is None:
            config = get_preset("exp3").replace(
                grid=models[0].config.grid,
                size=models[0].config.size,
                ensemble=names
                if len(set(names)) == len(names) and "exp3" not in names
                else tuple(f"member{i}" for i in range(len(models))),
            )
        self.config = config
        self.register_buffer("ab_centers", ref.detach().clone(), persistent=False)

    @property
    def is_temporal(self) -> bool:
        return False

    def forward(self, l_norm: torch.Tensor, state: Any = None) -> ColorizerOutput:
        check_l_norm(l_norm)
        states = state if state is not None else [None] * len(self.members)
        probs, new_states = None, []
        for member, s in zip(self.members, states):
            out = member(l_norm, s)
            p = torch.softmax(final_logits(out).float(), dim=2)  # (B, T, Q, h, w)
            probs = p if probs is None else probs + p
            new_states.append(out.state)
        ab_logits = torch.log((probs / len(self.members)).clamp_min(1e-12))  # (B, T, Q, h, w)
        return ColorizerOutput(ab_logits, None, new_states)
