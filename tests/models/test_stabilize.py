"""The `--stabilize` filter on synthetic clips: it removes flicker as the project's warping error
measures it (against the gray row), keeps the colors' strength, leaves still and too-small clips
alone, is the identity at strength 0 and starts over at a cut; the flow helpers' reduced-size path."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from models.color import chroma, lab_to_frames, normalize_l
from models.errors import VidcolorError
from models.flow import dis_flows, luma
from models.stabilize import DEFAULT_STRENGTH, Stabilizer, blend_chroma, check_strength, stabilize_clip
from study.evaluation.metrics import VideoMetrics


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth random lightness in [10, 90] (float32 (h, w)): DIS finds its motion."""
    noise = cv2.GaussianBlur(np.random.default_rng(seed).uniform(0, 1, (h, w)).astype(np.float32), (0, 0), 1.5)
    return (noise - noise.min()) / (noise.max() - noise.min()) * 80 + 10


def _moving_clip(frames: int = 8, h: int = 40, w: int = 48, step: int = 2, seed: int = 0):
    """A scene moving ``step`` px right per frame with its own colors (ab waves across x):
    (ground truth uint8 (T, H, W, 3), its gray uint8 (T, H, W), its ab (T, 2, H, W))."""
    lightness = _texture(h, w + step * frames, seed)
    xs = np.arange(lightness.shape[1], dtype=np.float32)
    ab = np.stack([25 * np.sin(xs / 9), 20 * np.cos(xs / 13) + 10])[:, None].repeat(h, axis=1)
    starts = [step * (frames - t) for t in range(frames)]
    l_clip = torch.from_numpy(np.stack([lightness[:, x : x + w] for x in starts]))[:, None]
    ab_clip = torch.from_numpy(np.stack([ab[:, :, x : x + w] for x in starts]))
    truth = lab_to_frames(normalize_l(l_clip), ab_clip)
    return truth, luma(truth.movedim(-1, 1).double()), ab_clip


def _warp_error(truth: torch.Tensor, ab: torch.Tensor) -> float:
    """The project's warping error of a prediction rendered with the truth's L, as evaluate scores it."""
    metrics = VideoMetrics()
    metrics.update_frames(["clip"], [0], truth[None], ab[None])
    return metrics.per_video()[0]["warp_error"]


def _added_warp(truth: torch.Tensor, ab: torch.Tensor) -> float:
    """Warp error over the gray row's (ab = 0) on the same frames, minus 1."""
    return _warp_error(truth, ab) / _warp_error(truth, torch.zeros_like(ab)) - 1


def test_flickering_clip_loses_at_least_half_its_added_warp_and_keeps_its_chroma():
    truth, gray, ab = _moving_clip()
    offsets = torch.from_numpy(np.random.default_rng(1).normal(0, 10, (len(ab), 2, 1, 1))).float()
    flicker = ab + offsets  # right colors moving with the scene, each frame tinted its own way
    steady = stabilize_clip(gray, flicker)
    assert steady.shape == flicker.shape and steady.dtype == torch.float32
    before, after = _added_warp(truth, flicker), _added_warp(truth, steady)
    assert before > 0 and after <= 0.5 * before
    assert torch.equal(steady[0], flicker[0])  # the first frame is the model's own
    assert float(chroma(steady).mean()) == pytest.approx(float(chroma(flicker).mean()), rel=0.1)


def test_still_clip_with_constant_colors_is_unchanged():
    lightness = torch.from_numpy(_texture(24, 32, seed=2))[None, None].expand(6, 1, 24, 32)
    ab = torch.tensor([12.0, -30.0]).view(1, 2, 1, 1).expand(6, 2, 24, 32).contiguous()
    gray = luma(lab_to_frames(normalize_l(lightness), ab).movedim(-1, 1).double())
    assert torch.allclose(stabilize_clip(gray, ab, strength=1.0), ab, atol=1e-4)


def test_strength_zero_is_the_identity():
    _, gray, ab = _moving_clip(frames=4)
    noisy = ab + torch.randn(ab.shape, generator=torch.Generator().manual_seed(0)) * 5
    assert torch.equal(stabilize_clip(gray, noisy, strength=0.0), noisy)


def test_a_cut_resets_the_state():
    _, gray_a, ab_a = _moving_clip(frames=4, seed=3)
    _, gray_b, ab_b = _moving_clip(frames=3, seed=4)  # an unrelated scene
    ab_b = ab_b + torch.tensor([30.0, -30.0]).view(1, 2, 1, 1)
    stabilizer = Stabilizer(1.0)
    for g, a in zip(gray_a, ab_a + 8 * torch.arange(4.0).view(4, 1, 1, 1)):  # a drift the filter holds back
        stabilizer.step(g, a)
    assert stabilizer.cuts == 0
    out = [stabilizer.step(g, a) for g, a in zip(gray_b, ab_b)]
    assert stabilizer.cuts == 1
    assert torch.equal(out[0], ab_b[0])  # the new shot starts from the model's own colors
    assert torch.allclose(out[1], ab_b[1], atol=2.0)  # and no color of the old shot leaks into it
    stabilizer.reset()
    assert torch.equal(stabilizer.step(gray_b[2], ab_b[2]), ab_b[2])  # reset: a new film


def test_odd_sizes_and_too_small_frames():
    _, gray, ab = _moving_clip(frames=3, h=23, w=37)
    out = stabilize_clip(gray, ab + torch.tensor([0.0, 5.0, -5.0]).view(3, 1, 1, 1))
    assert out.shape == (3, 2, 23, 37) and torch.isfinite(out).all()
    small_gray, small_ab = gray[:, :11, :20].contiguous(), ab[:, :, :11, :20] + torch.randn(3, 2, 11, 20)
    assert torch.equal(stabilize_clip(small_gray, small_ab), small_ab)  # under FLOW_MIN_SIZE: untouched


def test_blend_chroma_keeps_the_chroma_magnitude():
    red, green = torch.tensor([40.0, 0.0]).view(2, 1, 1), torch.tensor([0.0, 40.0]).view(2, 1, 1)
    half = blend_chroma(red, green, torch.full((1, 1), 0.5))
    assert half.flatten().tolist() == pytest.approx([40 / 2**0.5, 40 / 2**0.5])  # the linear mix has 28.3
    assert torch.equal(blend_chroma(red, green, torch.zeros(1, 1)), red)
    assert blend_chroma(red, green, torch.ones(1, 1)).flatten().tolist() == pytest.approx([0.0, 40.0])
    assert blend_chroma(red, -red, torch.full((1, 1), 0.5)).abs().max() == 0  # no hue to keep: gray, not noise


def test_strength_and_frames_are_checked():
    assert check_strength(DEFAULT_STRENGTH) == DEFAULT_STRENGTH and 0 < DEFAULT_STRENGTH <= 1
    for bad in (-0.1, 1.5, "0.5", True, float("nan")):
        with pytest.raises(VidcolorError, match=r"--stabilize: must be a number in \[0, 1\]"):
            check_strength(bad)
    with pytest.raises(VidcolorError, match=r"expected gray uint8 \(H, W\) and ab \(2, H, W\)"):
        Stabilizer().step(np.zeros((16, 16), np.uint8), torch.zeros(2, 16, 17))
    with pytest.raises(VidcolorError, match="stabilize_clip: 3 gray frames but 2 ab frames"):
        stabilize_clip(np.zeros((3, 16, 16), np.uint8), torch.zeros(2, 2, 16, 16))


def test_dis_flows_at_a_reduced_size_are_scaled_back():
    big = _texture(60, 96, seed=5).astype(np.uint8) * 2
    a, b = big[:, 6:86].copy(), big[:, 2:82].copy()  # b(x) = a(x - 4): moving right by 4
    fw, bw = dis_flows(a, b, max_side=40)  # flow at 40 x 30, upsampled to 80 x 60 and doubled
    assert fw.shape == bw.shape == (2, 60, 80)
    assert (fw[0, 10:-10, 10:-14] - 4).abs().median() < 0.3 and fw[1].abs().median() < 0.3
    assert (bw[0, 10:-10, 14:-10] + 4).abs().median() < 0.3
