"""Losses: hand-computed soft CE, rebalancing weights per pixel, gray frames, L_seq and lam."""

import math

import pytest
import torch

from models.errors import VidcolorError
from models.gamut import ABGamut
from models.losses import GRAY_AB_THRESHOLD, colorization_loss, downsample_ab
from models.model import ColorizerOutput


@pytest.fixture(scope="module")
def gamut():
    return ABGamut(10)


def _uniform(q, t=1, h=2):
    return torch.zeros(1, t, q, h, h)


def test_uniform_logits_give_log_q(gamut):
    q = gamut.num_bins
    ab = torch.full((1, 1, 2, 2, 2), 30.0)
    loss, parts = colorization_loss(ColorizerOutput(_uniform(q), None, None), ab, gamut, None, lam=0.3)
    assert loss.item() == pytest.approx(math.log(q), rel=1e-5)  # lam ignored without a temporal module
    assert parts["l_seq"].item() == 0.0


def test_one_hot_target_is_hand_computed_ce(gamut):
    q = gamut.num_bins
    ab = torch.tensor([20.0, -30.0]).view(1, 1, 2, 1, 1)
    k = gamut.nearest_bin(ab[0]).item()
    logits = torch.zeros(1, 1, q, 1, 1)
    logits[0, 0, k] = 2.0
    loss, _ = colorization_loss(ColorizerOutput(logits, None, None), ab, gamut, None, soft_k=1)
    expected = -(2.0 - math.log(math.exp(2.0) + q - 1))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_rebalancing_weight_scales_each_pixel_by_its_true_bin(gamut):
    q = gamut.num_bins
    ab = torch.tensor([[20.0, 0.0], [-30.0, 40.0]]).T.reshape(1, 1, 2, 1, 2)  # two pixels
    bins = gamut.nearest_bin(ab[0])[0, 0]
    weights = torch.ones(q)
    weights[bins[0]] = 3.0
    weights[bins[1]] = 0.5
    out = ColorizerOutput(_uniform(q, h=1).expand(1, 1, q, 1, 2), None, None)
    loss, _ = colorization_loss(out, ab, gamut, weights)
    assert loss.item() == pytest.approx(math.log(q) * (3.0 + 0.5) / 2, rel=1e-5)


def test_gray_frames_get_zero_loss(gamut):
    q = gamut.num_bins
    ab = torch.zeros(1, 2, 2, 2, 2)
    ab[0, 0] = 40.0  # frame 0 colored, frame 1 gray (|ab| <= 5)
    ab[0, 1] = GRAY_AB_THRESHOLD * 0.9
    logits = torch.randn(1, 2, q, 2, 2, requires_grad=True)
    loss, _ = colorization_loss(ColorizerOutput(logits, None, None), ab, gamut, None)
    loss.backward()
    assert logits.grad[0, 1].abs().sum() == 0 and logits.grad[0, 0].abs().sum() > 0
    only_gray, _ = colorization_loss(ColorizerOutput(logits[:, 1:], None, None), ab[:, 1:], gamut, None)
    assert only_gray.item() == 0.0 and only_gray.requires_grad


def test_lam_mixes_l_cl_and_l_seq_of_the_last_frame(gamut):
    q = gamut.num_bins
    ab = torch.full((1, 3, 2, 2, 2), 25.0)
    ab_logits = torch.zeros(1, 3, q, 2, 2)
    seq_logits = torch.randn(1, 3, q, 2, 2)
    _, p0 = colorization_loss(ColorizerOutput(ab_logits, seq_logits, None), ab, gamut, None, lam=0.0)
    changed = seq_logits.clone()
    changed[:, :2] = torch.randn(1, 2, q, 2, 2)  # context steps do not enter L_seq
    _, p1 = colorization_loss(ColorizerOutput(ab_logits, changed, None), ab, gamut, None, lam=0.0)
    assert p0["l_seq"].item() == pytest.approx(p1["l_seq"].item())
    loss, parts = colorization_loss(ColorizerOutput(ab_logits, seq_logits, None), ab, gamut, None, lam=0.25)
    assert parts["l_cl"].item() == pytest.approx(math.log(q), rel=1e-5)
    assert loss.item() == pytest.approx(0.25 * parts["l_cl"].item() + 0.75 * parts["l_seq"].item(), rel=1e-5)


def test_downsample_is_stride_4():
    ab = torch.arange(2 * 8 * 8, dtype=torch.float32).view(1, 1, 2, 8, 8)
    small = downsample_ab(ab)
    assert small.shape == (1, 1, 2, 2, 2) and small[0, 0, 0, 1, 1] == ab[0, 0, 0, 4, 4]


def test_shape_mismatch_is_named(gamut):
    out = ColorizerOutput(torch.zeros(1, 1, gamut.num_bins, 4, 4), None, None)
    with pytest.raises(VidcolorError, match="ab_gt: expected shape"):
        colorization_loss(out, torch.zeros(1, 1, 2, 16, 16), gamut, None)
