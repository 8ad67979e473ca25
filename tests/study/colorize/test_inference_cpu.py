"""The CPU's full-resolution path of `FilmInference` (OpenCV, a frame at a time, the net in runs of
a few frames) gives what the batched torch arithmetic gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import models.model as model_mod
import study.colorize.inference as inference_mod
from models.color import denormalize_l, frames_to_l, lab_to_frames, normalize_l
from models.gamut import ABGamut
from models.model import create_model, upsample_ab
from models.presets import get_preset
from study.colorize.inference import CpuFrames, FilmInference


def _model(preset: str):
    torch.manual_seed(0)
    return create_model(get_preset(preset).replace(size="tiny"), ABGamut(10)).eval()


def _frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    frames[:, : h // 3] //= 16  # dark rows: L's linear segment below the CIE epsilon
    return frames


def test_lightness_equals_frames_to_l():
    frames = _frames(3, 37, 53)
    cpu = CpuFrames()
    for f in frames:
        want = denormalize_l(frames_to_l(torch.from_numpy(f)))[0].numpy()
        got = cpu.lightness(f)
        assert got.shape == (37, 53) and got.dtype == np.float32
        assert np.abs(got - want).max() < 1e-4
    assert (cpu.lightness(np.zeros((4, 5, 3), np.uint8)) == 0).all()  # black is L = 0, a new size too
    assert np.abs(cpu.lightness(np.full((4, 5, 3), 255, np.uint8)) - 100).max() < 1e-3  # white is L = 100


@pytest.mark.parametrize("net_size", [(40, 56), (36, 52)], ids=["multiple of 8", "padded"])
def test_colorize_frame_equals_torch(net_size):
    rng = np.random.default_rng(1)
    h, w = net_size
    coarse = torch.from_numpy(rng.uniform(-70, 70, (1, 2, (h + (-h) % 8) // 4, (w + (-w) % 8) // 4)).astype(np.float32))
    l = rng.uniform(0, 100, (75, 101)).astype(np.float32)
    want = lab_to_frames(normalize_l(torch.from_numpy(l))[None, None], upsample_ab(coarse, net_size, (75, 101)))[0]
    out = np.empty((75, 101, 3), np.uint8)
    CpuFrames().colorize(l, coarse[0].numpy(), net_size, out)
    diff = np.abs(out.astype(int) - want.numpy())
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_predict_ab_is_upsampled_coarse_and_chunked_decoding_changes_nothing(monkeypatch):
    model = _model("exp1")
    x = torch.from_numpy(np.random.default_rng(2).uniform(-0.5, 0.5, (1, 6, 1, 36, 44)).astype(np.float32))
    ab, _ = model.predict_ab(x, 0.38, size=(70, 90))
    coarse, _ = model.predict_ab_coarse(x, 0.38)
    assert coarse.shape == (1, 6, 2, 10, 12)  # 36x44 padded to 40x48, at 1/4
    torch.testing.assert_close(ab, upsample_ab(coarse[0], (36, 44), (70, 90))[None], rtol=0, atol=0)
    monkeypatch.setattr(model_mod, "_CPU_DECODE_VALUES", 1)  # one frame per annealed-mean call
    torch.testing.assert_close(model.predict_ab_coarse(x, 0.38)[0], coarse, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("preset", ["exp1", "exp5"])
def test_net_runs_split_the_batch_without_changing_colors(preset, monkeypatch):
    """The CPU runs the net on a few frames per call with the state carried: a temporal model's
    colors are those of one call over the whole batch."""
    frames = np.repeat(_frames(7, 45, 61, seed=3)[..., :1], 3, axis=3)  # gray
    whole = FilmInference(_model(preset), temperature=0.38, size=40)
    want = whole.colorize(frames)
    calls = []
    monkeypatch.setattr(inference_mod, "CPU_NET_PIXELS", 2 * 40 * 56)  # 2 frames per call
    split = FilmInference(_model(preset), temperature=0.38, size=40)
    split.model.register_forward_pre_hook(lambda mod, args: calls.append(args[0].shape[1]))
    got = split.colorize(frames)
    assert calls == [2, 2, 2, 1]
    assert np.abs(got.astype(int) - want).max() <= 1
