"""ABGamut: in-gamut bins, soft encoding, annealed-mean decoding, prior and rebalancing weights."""

import numpy as np
import pytest
import torch

from models.color import AB_HIST_BINS, AB_HIST_MIN, rgb_to_lab
from models.errors import VidcolorError
from models.gamut import ABGamut, gamut_centers, rebalance_weights


@pytest.fixture(scope="module")
def gamut():
    return ABGamut(10)


def _srgb_ab(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return rgb_to_lab(torch.rand(n, 3, 8, 8, generator=g))[:, 1:]  # (n, 2, 8, 8), in gamut


def test_grid_10_has_about_313_bins(gamut):
    assert 300 <= gamut.num_bins <= 320
    assert gamut.centers.shape == (gamut.num_bins, 2) and gamut.centers.dtype == torch.float32
    assert torch.equal(gamut.centers, torch.round(gamut.centers / 10) * 10)  # on the grid
    assert ABGamut(20).num_bins < gamut.num_bins < ABGamut(5).num_bins


def test_every_srgb_color_has_its_four_surrounding_bins(gamut):
    ab = _srgb_ab().permute(0, 2, 3, 1).reshape(-1, 2)
    lower = torch.floor(ab / 10) * 10
    centers = {tuple(c) for c in gamut.centers.tolist()}
    for da in (0, 10):
        for db in (0, 10):
            corners = lower + torch.tensor([da, db])
            assert all(tuple(c) in centers for c in corners.tolist())


def test_far_out_of_gamut_cells_are_not_bins(gamut):
    centers = {tuple(c) for c in gamut.centers.tolist()}
    # sRGB has no saturated green-blue (a << 0, b << 0) nor a = 100, b = -100
    assert (-80.0, -80.0) not in centers and (100.0, -100.0) not in centers
    assert (0.0, 0.0) in centers


def test_gamut_is_cached():
    assert gamut_centers(10) is gamut_centers(10)


def test_bad_grid():
    with pytest.raises(VidcolorError, match="grid"):
        ABGamut(0)


def test_soft_encode_sums_to_one_with_k_nonzero(gamut):
    ab = _srgb_ab(2)
    z = gamut.soft_encode(ab, k=5, sigma=5.0)
    assert z.shape == (2, gamut.num_bins, 8, 8)
    assert torch.allclose(z.sum(1), torch.ones(2, 8, 8))
    assert ((z > 0).sum(1) == 5).all()
    one_hot = gamut.soft_encode(ab, k=1)
    assert torch.equal(one_hot.argmax(1), gamut.nearest_bin(ab))
    target, nearest = gamut.encode(ab, k=5, sigma=5.0)
    assert torch.equal(target, z) and torch.equal(nearest, gamut.nearest_bin(ab))


def test_soft_encode_gaussian_weights_by_hand():
    gamut = ABGamut(10)
    ab = torch.tensor([3.0, 0.0]).view(1, 2, 1, 1)  # nearest (0,0) d=3, then (10,0) d=7
    z = gamut.soft_encode(ab, k=2, sigma=5.0)[0, :, 0, 0]
    i0 = gamut.nearest_bin(torch.zeros(1, 2, 1, 1)).item()
    i1 = gamut.nearest_bin(torch.tensor([10.0, 0.0]).view(1, 2, 1, 1)).item()
    w0, w1 = np.exp(-9 / 50), np.exp(-49 / 50)
    assert z[i0].item() == pytest.approx(w0 / (w0 + w1), abs=1e-5)
    assert z[i1].item() == pytest.approx(w1 / (w0 + w1), abs=1e-5)


def test_decode_of_soft_encode_within_half_a_bin(gamut):
    ab = _srgb_ab(4)
    z = gamut.soft_encode(ab, k=5, sigma=5.0)
    decoded = gamut.decode(torch.log(z.clamp_min(1e-30)), temperature=1.0)
    err = torch.linalg.vector_norm(decoded - ab, dim=1)
    assert err.max() < 5.0  # half of grid 10


def test_decode_low_temperature_is_the_mode(gamut):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, gamut.num_bins, 4, 4, generator=g) * 3
    mode = gamut.centers[logits.argmax(1)].permute(0, 3, 1, 2)
    assert torch.equal(gamut.decode(logits, temperature=0.0), mode)
    assert torch.allclose(gamut.decode(logits, temperature=1e-3), mode, atol=1e-3)


def test_decode_temperature_one_is_the_mean(gamut):
    logits = torch.randn(1, gamut.num_bins, 2, 2)
    mean = torch.einsum("nqhw,qc->nchw", torch.softmax(logits, 1), gamut.centers)
    assert torch.allclose(gamut.decode(logits, 1.0), mean, atol=1e-4)
    with pytest.raises(VidcolorError, match="temperature"):
        gamut.decode(logits, -1.0)


def test_uniform_prior_gives_unit_weights(gamut):
    prior = torch.full((gamut.num_bins,), 1.0 / gamut.num_bins)
    assert torch.allclose(rebalance_weights(prior, 0.5), torch.ones(gamut.num_bins))


def test_weights_expectation_one_and_rare_bins_heaviest():
    p = torch.tensor([0.7, 0.2, 0.09, 0.01])
    w = rebalance_weights(p, gamma=0.5)
    assert (p * w).sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(torch.argsort(w), torch.tensor([0, 1, 2, 3]))  # rarer -> larger
    raw = 1 / (0.5 * p.double() + 0.5 / 4)  # by hand
    assert torch.allclose(w.double(), raw / (p.double() * raw).sum(), atol=1e-6)


def test_prior_from_histogram(gamut):
    hist = np.zeros((AB_HIST_BINS, AB_HIST_BINS), np.int64)
    hist[0 - AB_HIST_MIN, 0 - AB_HIST_MIN] = 900  # gray
    hist[50 - AB_HIST_MIN, 40 - AB_HIST_MIN] = 100  # a reddish orange
    prior = gamut.prior_from_histogram(hist, sigma=0.0)
    assert prior.sum().item() == pytest.approx(1.0)
    gray = gamut.nearest_bin(torch.tensor([0.5, 0.5]).view(1, 2, 1, 1)).item()
    red = gamut.nearest_bin(torch.tensor([50.5, 40.5]).view(1, 2, 1, 1)).item()
    assert prior[gray].item() == pytest.approx(0.9) and prior[red].item() == pytest.approx(0.1)
    smooth = gamut.prior_from_histogram(hist, sigma=5.0)
    assert smooth.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert 0 < smooth[gray] < 0.9 and (smooth > 0).sum() > (prior > 0).sum()
    w = gamut.rebalance_weights(smooth, 0.5)
    assert w[red] > w[gray]
    with pytest.raises(VidcolorError, match="histogram"):
        gamut.prior_from_histogram(np.zeros((10, 10)))


def test_explicit_centers_and_pickling(gamut):
    import pickle  # the gamut travels to Ray workers

    other = pickle.loads(pickle.dumps(gamut))
    assert other == gamut and other.digest() == gamut.digest()
    custom = ABGamut(10, centers=np.array([[0, 0], [10, 0], [0, 10]], np.float32))
    assert custom.num_bins == 3
    with pytest.raises(VidcolorError, match="centers"):
        ABGamut(10, centers=np.zeros((3, 3)))
