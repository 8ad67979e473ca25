"""Temporal modules over per-frame colorizer features: the seed paper's ConvLSTM and an identity.

Seed paper ("Automatic Colorization of Videos"): an LSTM reads S consecutive frames and predicts
the color distribution of the next frame, to keep colors consistent over time. Here it is a
convolutional LSTM (Shi et al. 2015) over the colorizer's 1/4-resolution features: step t reads
frame t's features with the state left by frames < t, so step t's output predicts frame t's
colors from S frames of context plus that frame's own luminance features. Its output is added to
the per-frame logits (a residual correction), so the sequence model starts from the image model's
colors and only learns what the context adds. The state (h, c) can be passed from one window to
the next for streaming inference over a whole video.
"""

from __future__ import annotations

import torch
from torch import nn

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (B, hidden, h, w)


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step: gates from a 3x3 conv over [x, h]."""

    def __init__(self, in_channels: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel, padding=kernel // 2)
        with torch.no_grad():  # forget-gate bias 1: remember by default early in training
            self.gates.bias.zero_()
            self.gates.bias[hidden : 2 * hidden].fill_(1.0)

    def forward(self, x: torch.Tensor, state: State) -> State:
        h, c = state
        i, f, o, g = self.gates(torch.cat((x, h), dim=1)).chunk(4, dim=1)  # each (B, hidden, h, w)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvLSTM(nn.Module):
    """features (B, T, C, h, w) + ab_logits (B, T, Q, h, w) -> seq_logits (B, T, Q, h, w), state."""

    def __init__(self, in_channels: int, num_bins: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or max(8, in_channels // 2)
        self.cell = ConvLSTMCell(in_channels, hidden)
        self.out = nn.Conv2d(hidden, num_bins, 1)

    def initial_state(self, x: torch.Tensor) -> State:
        b, _, h, w = x.shape
        z = x.new_zeros(b, self.cell.hidden, h, w)
        return z, z

    def forward(
        self, features: torch.Tensor, ab_logits: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        if state is None:
            state = self.initial_state(features[:, 0])
        outs = []
        for t in range(features.shape[1]):
            state = self.cell(features[:, t], state)
            outs.append(ab_logits[:, t] + self.out(state[0]))  # (B, Q, h, w)
        return torch.stack(outs, dim=1), state


class IdentityTemporal(nn.Module):
    """No sequence model (exp1-exp4): no seq_logits, no state."""

    def forward(self, features: torch.Tensor, ab_logits: torch.Tensor, state=None) -> tuple[None, None]:
        return None, None
