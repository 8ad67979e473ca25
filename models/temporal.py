"""Temporal modules over per-frame colorizer features: the seed paper's ConvLSTM and an identity.

Seed paper ("Automatic Colorization of Videos"): an LSTM reads S consecutive frames and predicts
the color distribution of the next frame, to keep colors consistent over time. Here it is a
convolutional LSTM (Shi et al. 2015) over the colorizer's 1/4-resolution features: step t reads
frame t's features with the state left by frames < t, so step t's output predicts frame t's
colors from the frames before it plus that frame's own luminance features. Its output is added to
the per-frame logits (a residual correction) through a 1x1 convolution that starts at zero, so the
sequence model starts exactly from the image model's colors and only learns what the context adds.
The state (h, c) can be passed from one window to the next for streaming inference over a whole
video; ``truncate`` cuts the gradient (not the state) every that many steps (truncated
backpropagation through time).

Why the first version flickered and washed out (issue 22; measured on the validation split of the
real footage, the exp5 of bench/real.py: tiny, 64 px, 4 x 250 steps, windows of 3 frames):

- It trained on windows of S + 1 frames from an empty state with L_seq on the last frame only,
  but ran with the state reset every S + 1 frames (evaluation) or carried through whole films
  (colorize). Frames 0 .. S-1 of a window were never trained: their colours differed from the
  trained frame's, and the state reset at each window edge made the colour jump there (mean
  |ab_t - warp(ab_t+1)| over the ground truth's matched pixels: 2.55 across window edges, 1.30
  inside a window, 0.19 for the same model's own per-frame head; the ground truth's own 1.03).
- Its prediction, the residual over the rebalanced per-frame logits, was trained by an L_seq
  without the class rebalancing, i.e. towards exp1's grayish colours: the chroma of its output was
  0.24 of the ground truth's (0.17 on the trained frames, 0.18 with the state carried through the
  16-frame clips) while its own per-frame head kept 0.76.
- The output convolution started from random weights, so at the first step the ConvLSTM added
  noise to the pretrained colorizer's logits.

The fix (models.losses, study.train.loop): train on whole clips with the state carried through
every frame as at inference, L_seq on every frame with the same rebalancing weights as L_cl,
truncated backpropagation every S + 1 frames, and the output convolution zero at the start.
Whole clips because the loader already cuts windows of any length up to a clip and evaluation
colorizes whole clips: no new loader and the same state lengths in training and scoring (a stream
of consecutive windows per batch slot, carried across steps, would cost fewer frames per step but
needs per-slot state resets and breaks with several loader workers). The cost: a step reads
clip_len frames per window instead of S + 1. Measured after 150 steps of 8 clips from the same
exp2 start (tiny, 64 px, validation split, the state carried through each clip): the output keeps
its per-frame head's colour (chroma 0.62 of the ground truth's, head 0.63) and its frame-to-frame
ab change is 0.10 (head 0.10), against the seed version's 0.18 to 0.24 chroma and 1.66 change.
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
        with torch.no_grad():  # the residual starts at zero: the sequence model starts as the image model
            self.out.weight.zero_()
            self.out.bias.zero_()

    def initial_state(self, x: torch.Tensor) -> State:
        b, _, h, w = x.shape
        z = x.new_zeros(b, self.cell.hidden, h, w)
        return z, z

    def forward(
        self,
        features: torch.Tensor,
        ab_logits: torch.Tensor,
        state: State | None = None,
        truncate: int | None = None,
    ) -> tuple[torch.Tensor, State]:
        """One step per frame, the state carried; with ``truncate`` = k the state is detached after
        every k steps (its value goes on, its gradient stops: truncated backpropagation)."""
        if state is None:
            state = self.initial_state(features[:, 0])
        outs = []
        for t in range(features.shape[1]):
            if truncate and t and t % truncate == 0:
                state = (state[0].detach(), state[1].detach())
            state = self.cell(features[:, t], state)
            outs.append(ab_logits[:, t] + self.out(state[0]))  # (B, Q, h, w)
        return torch.stack(outs, dim=1), state


class IdentityTemporal(nn.Module):
    """No sequence model (exp1-exp4): no seq_logits, no state."""

    def forward(self, features: torch.Tensor, ab_logits: torch.Tensor, state=None, truncate=None) -> tuple[None, None]:
        return None, None
