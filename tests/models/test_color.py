"""sRGB <-> Lab at published reference values, round trips, normalization and the ab histogram."""

import numpy as np
import pytest
import torch

from models.color import (
    AB_HIST_BINS,
    L_CENT,
    L_NORM,
    ab_histogram,
    chroma,
    frames_to_l,
    frames_to_lab,
    lab_to_frames,
    lab_to_rgb,
    normalize_l,
    rgb_to_lab,
)
from models.errors import VidcolorError

# CIE Lab (D65) of sRGB colors, as published (e.g. Bruce Lindbloom's calculator, colormine.org)
REFERENCE = [
    ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((1.0, 0.0, 0.0), (53.2408, 80.0925, 67.2032)),
    ((0.0, 1.0, 0.0), (87.7347, -86.1827, 83.1793)),
    ((0.0, 0.0, 1.0), (32.2970, 79.1875, -107.8602)),
    ((0.5, 0.5, 0.5), (53.3890, 0.0, 0.0)),
]


def _pixels(values):
    return torch.tensor(values, dtype=torch.float64).T.reshape(3, len(values), 1)


def test_reference_values():
    rgb = _pixels([r for r, _ in REFERENCE])
    lab = rgb_to_lab(rgb).squeeze(-1).T
    expected = torch.tensor([lab for _, lab in REFERENCE], dtype=torch.float64)
    assert torch.allclose(lab, expected, atol=2e-3)


def test_lab_to_rgb_reference_values():
    lab = _pixels([lab for _, lab in REFERENCE])
    rgb = lab_to_rgb(lab).squeeze(-1).T
    expected = torch.tensor([r for r, _ in REFERENCE], dtype=torch.float64)
    assert torch.allclose(rgb, expected, atol=1e-4)


def test_random_round_trip_within_half_of_8_bit():
    g = torch.Generator().manual_seed(0)
    rgb8 = torch.randint(0, 256, (4, 3, 32, 32), generator=g)
    back = lab_to_rgb(rgb_to_lab(rgb8.float() / 255.0)) * 255.0
    assert (back - rgb8.float()).abs().max() < 0.5
    frames = rgb8.permute(0, 2, 3, 1).to(torch.uint8)  # (N, H, W, 3)
    l_norm, ab = frames_to_lab(frames)
    assert l_norm.shape == (4, 1, 32, 32) and ab.shape == (4, 2, 32, 32)
    assert torch.equal(lab_to_frames(l_norm, ab), frames)


def test_batched_leading_dims_and_dtype():
    rgb = torch.rand(2, 3, 3, 4, 5, generator=torch.Generator().manual_seed(0))  # (B, T, 3, H, W)
    lab = rgb_to_lab(rgb)
    assert lab.shape == rgb.shape and lab.dtype == torch.float32
    # the same numbers batched or alone, up to float32 rounding (vectorized paths differ in the last bit)
    assert torch.allclose(lab[1, 2], rgb_to_lab(rgb[1, 2]), rtol=1e-5, atol=1e-4)
    assert (lab[:, :, 0] >= 0).all() and (lab[:, :, 0] <= 100.0 + 1e-3).all()


def test_out_of_gamut_lab_is_clamped():
    lab = torch.tensor([50.0, 120.0, -120.0]).view(3, 1, 1)
    rgb = lab_to_rgb(lab)
    assert (rgb >= 0).all() and (rgb <= 1).all()


def test_normalize_l():
    assert normalize_l(torch.tensor(50.0)) == 0.0
    assert normalize_l(torch.tensor(100.0)) == pytest.approx((100 - L_CENT) / L_NORM) == 0.5


def test_chroma():
    ab = torch.tensor([3.0, 4.0]).view(2, 1, 1)
    assert chroma(ab).item() == pytest.approx(5.0)


def test_ab_histogram_cells():
    # a = -128 -> cell 0; a = 0.5 -> cell 128; a = -0.5 -> cell 127; out of range -> edge cells
    a = torch.tensor([-128.0, 0.5, -0.5, 300.0])
    b = torch.tensor([0.0, 0.0, 126.99, -300.0])
    ab = torch.stack((a, b)).view(2, 1, 4)
    hist = ab_histogram(ab)
    assert hist.dtype == np.int64 and hist.shape == (AB_HIST_BINS, AB_HIST_BINS)
    assert hist.sum() == 4
    assert hist[0, 128] == 1 and hist[128, 128] == 1 and hist[127, 254] == 1 and hist[255, 0] == 1


def test_bad_shapes_are_named():
    with pytest.raises(VidcolorError, match=r"rgb_to_lab.*\(\.\.\., 3, H, W\)"):
        rgb_to_lab(torch.rand(4, 4, 3))
    with pytest.raises(VidcolorError, match="uint8"):
        frames_to_lab(torch.rand(4, 4, 3))


def test_uint8_fast_paths_match_the_float_formulas():
    """frames_to_lab (256-entry sRGB table) and frames_to_l (Y only) equal rgb_to_lab on the same
    values, including the linear segment (levels 0-10) and both ends."""
    gen = torch.Generator().manual_seed(3)
    frames = torch.randint(0, 256, (2, 9, 11, 3), dtype=torch.uint8, generator=gen)
    frames[0, 0, :, :] = torch.arange(11, dtype=torch.uint8)[:, None]  # dark levels, linear segment
    frames[0, 1, :3] = torch.tensor([0, 255, 128], dtype=torch.uint8)[:, None]
    lab = rgb_to_lab(frames.movedim(-1, -3).double() / 255.0)  # float64 reference
    l_norm, ab = frames_to_lab(frames)
    assert (l_norm * L_NORM + L_CENT - lab[:, :1]).abs().max() < 1e-3
    assert (ab - lab[:, 1:]).abs().max() < 1e-3
    assert torch.equal(frames_to_l(frames), l_norm) or (frames_to_l(frames) - l_norm).abs().max() < 1e-6
    assert frames_to_l(frames[0]).shape == (1, 9, 11)
