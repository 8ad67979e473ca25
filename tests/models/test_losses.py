"""Losses: hand-computed soft CE, rebalancing weights per pixel, gray frames, L_seq and lam, and the
temporal loss L_temp by hand (a prediction that moves with the flow, one that flickers, occluded
pixels left out, gradients to the logits)."""

import math

import pytest
import torch

from models.errors import VidcolorError
from models.gamut import ABGamut
from models.losses import (
    GRAY_AB_THRESHOLD,
    colorization_loss,
    downsample_ab,
    soft_cross_entropy,
    soft_decode,
    temporal_loss,
)
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


def test_l_seq_covers_every_frame_and_lam_mixes(gamut):
    q = gamut.num_bins
    ab = torch.full((1, 3, 2, 2, 2), 25.0)
    ab_logits = torch.zeros(1, 3, q, 2, 2)
    seq_logits = torch.zeros(1, 3, q, 2, 2)
    seq_logits[0, 2] = torch.randn(q, 2, 2)  # frames 0 and 1 uniform: log q each
    target, _ = gamut.encode(ab[0, 2:], k=5, sigma=5.0)
    ce_last = soft_cross_entropy(seq_logits[0, 2:], target).mean().item()
    _, parts = colorization_loss(ColorizerOutput(ab_logits, seq_logits, None), ab, gamut, None, lam=0.0)
    assert parts["l_seq"].item() == pytest.approx((2 * math.log(q) + ce_last) / 3, rel=1e-5)  # every frame
    changed = seq_logits.clone()
    changed[:, 0] = torch.randn(q, 2, 2)  # the first frame is scored too (predicted from an empty state)
    _, p1 = colorization_loss(ColorizerOutput(ab_logits, changed, None), ab, gamut, None, lam=0.0)
    assert p1["l_seq"].item() != pytest.approx(parts["l_seq"].item())
    loss, parts = colorization_loss(ColorizerOutput(ab_logits, seq_logits, None), ab, gamut, None, lam=0.25)
    assert parts["l_cl"].item() == pytest.approx(math.log(q), rel=1e-5)
    assert loss.item() == pytest.approx(0.25 * parts["l_cl"].item() + 0.75 * parts["l_seq"].item(), rel=1e-5)
    assert parts["l_temp"].item() == 0.0  # temporal_weight 0


def test_l_seq_is_rebalanced_like_l_cl(gamut):
    q = gamut.num_bins
    ab = torch.tensor([[20.0, 0.0], [-30.0, 40.0]]).T.reshape(1, 1, 2, 1, 2).expand(1, 2, 2, 1, 2)
    bins = gamut.nearest_bin(ab[0, :1])[0, 0]
    weights = torch.ones(q)
    weights[bins[0]], weights[bins[1]] = 3.0, 0.5
    uniform = torch.zeros(1, 2, q, 1, 2)
    _, parts = colorization_loss(ColorizerOutput(uniform, uniform, None), ab, gamut, weights, lam=0.5)
    assert parts["l_seq"].item() == pytest.approx(math.log(q) * (3.0 + 0.5) / 2, rel=1e-5)
    assert parts["l_seq"].item() == pytest.approx(parts["l_cl"].item(), rel=1e-6)


def test_downsample_is_stride_4():
    ab = torch.arange(2 * 8 * 8, dtype=torch.float32).view(1, 1, 2, 8, 8)
    small = downsample_ab(ab)
    assert small.shape == (1, 1, 2, 2, 2) and small[0, 0, 0, 1, 1] == ab[0, 0, 0, 4, 4]


def test_shape_mismatch_is_named(gamut):
    out = ColorizerOutput(torch.zeros(1, 1, gamut.num_bins, 4, 4), None, None)
    with pytest.raises(VidcolorError, match="ab_gt: expected shape"):
        colorization_loss(out, torch.zeros(1, 1, 2, 16, 16), gamut, None)


# -- the temporal loss ------------------------------------------------------------------------------


def _moving(shift: int, t: int = 3, h: int = 6, w: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ab (1, t, 2, h, w) whose content moves ``shift`` pixels right per frame (edge values fill the
    left), the flow from each frame t >= 1 to frame t-1 (-shift in x), all pixels valid."""
    torch.manual_seed(1)
    base = torch.randn(2, h, w + shift * t) * 20
    frames = [base[:, :, shift * (t - k) : shift * (t - k) + w] for k in range(t)]  # frame k = base moved k * shift
    ab = torch.stack(frames)[None]
    flow = torch.zeros(1, t - 1, 2, h, w)
    flow[:, :, 0] = -shift
    return ab, flow, torch.ones(1, t - 1, h, w, dtype=torch.bool)


def test_a_prediction_that_moves_with_the_flow_costs_nothing():
    ab, flow, valid = _moving(2)
    valid[..., :2] = False  # the columns that came in from the left edge have no match in the frame before
    assert temporal_loss(ab, flow, valid).item() == pytest.approx(0.0, abs=1e-5)
    assert temporal_loss(ab, torch.zeros_like(flow), valid).item() > 1.0  # the same frames with no flow: not 0


def test_a_flicker_costs_its_size_and_occluded_pixels_are_left_out():
    ab = torch.randn(1, 1, 2, 4, 5).expand(1, 3, 2, 4, 5).clone()
    ab[:, 1] += torch.tensor([3.0, -1.0]).view(2, 1, 1)  # frame 1 = frame 0 + (3, -1); frame 2 = frame 0
    flow = torch.zeros(1, 2, 2, 4, 5)
    valid = torch.ones(1, 2, 4, 5, dtype=torch.bool)
    # each pair differs by |3| and |-1| on every pixel: (3 + 1) / 2 per pixel, both pairs alike
    assert temporal_loss(ab, flow, valid).item() == pytest.approx(2.0, rel=1e-6)
    # a large difference only on two rows of frame 1, masked in both pairs that see them
    valid[0, :, :2] = False  # (frame 1's own rows, and frame 2's rows that match them)
    ab[0, 1, :, :2] += 500.0
    assert temporal_loss(ab, flow, valid).item() == pytest.approx(2.0, rel=1e-6)
    assert temporal_loss(ab, flow, torch.zeros_like(valid)).item() == 0.0  # nothing matched: 0


def test_long_term_adds_the_first_frame_term():
    ab = torch.zeros(1, 3, 2, 4, 4)
    ab[:, 1] += 2.0
    ab[:, 2] += 6.0  # short term: pairs differ by 2 then 4 -> 3; long term: 2 and 6 -> 4
    flow = torch.zeros(1, 2, 2, 4, 4)
    valid = torch.ones(1, 2, 4, 4, dtype=torch.bool)
    assert temporal_loss(ab, flow, valid).item() == pytest.approx(3.0)
    assert temporal_loss(ab, flow, valid, flow, valid).item() == pytest.approx(3.0 + 4.0)
    with pytest.raises(VidcolorError, match="flow_first: expected shapes"):
        temporal_loss(ab, flow, valid, flow[:, :1], valid)


def test_l_temp_enters_the_loss_and_its_gradient_reaches_the_logits(gamut):
    q = gamut.num_bins
    ab = torch.full((1, 2, 2, 4, 4), 30.0)
    logits = torch.randn(1, 2, q, 4, 4, requires_grad=True)
    seq = torch.randn(1, 2, q, 4, 4, requires_grad=True)
    flows = {"flow": torch.zeros(1, 1, 2, 4, 4), "valid": torch.ones(1, 1, 4, 4, dtype=torch.bool)}
    out = ColorizerOutput(logits, seq, None)
    base, p0 = colorization_loss(out, ab, gamut, None, lam=0.5)
    loss, parts = colorization_loss(out, ab, gamut, None, lam=0.5, temporal_weight=0.5, temperature=0.38, flows=flows)
    pred = soft_decode(seq.detach(), gamut.centers, 0.38)
    expected = (pred[:, 1] - pred[:, 0]).abs().mean().item()  # zero flow: the plain frame difference
    assert parts["l_temp"].item() == pytest.approx(expected, rel=1e-5) and expected > 0
    assert loss.item() == pytest.approx(base.item() + 0.5 * expected, rel=1e-5)
    loss.backward()
    assert seq.grad.abs().sum() > 0  # through the differentiable decode of the final (temporal) logits
    with pytest.raises(VidcolorError, match="their flows"):
        colorization_loss(out, ab, gamut, None, temporal_weight=0.5)


def test_soft_decode_is_the_annealed_mean(gamut):
    from models.gamut import annealed_mean

    logits = torch.randn(2, gamut.num_bins, 3, 3)
    assert torch.allclose(soft_decode(logits, gamut.centers, 0.38), annealed_mean(logits, gamut.centers, 0.38))
    assert torch.allclose(soft_decode(logits, gamut.centers, 0.0), annealed_mean(logits, gamut.centers, 1.0))


def test_soft_decode_stays_float32_under_bf16_autocast():
    """The temporal loss decodes ab in float32 even in a bf16 training step: bf16's ab steps (0.25 - 0.5)
    are larger than the frame-to-frame changes L_temp scores."""
    from models.losses import soft_decode

    centers = torch.tensor([[-100.0, 37.3], [100.0, -64.1]])
    logits = torch.randn(2, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    plain = soft_decode(logits, centers, 0.38)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = soft_decode(logits, centers, 0.38)
    assert mixed.dtype == torch.float32 and torch.equal(mixed, plain)
