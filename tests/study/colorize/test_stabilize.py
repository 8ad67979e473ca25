"""`vidcolor colorize --stabilize [STRENGTH]`: the temporal filter (models.stabilize) at the working
size on a flickering model's colors, its state across batches and films, and the flag's parsing
and range check. The model is a stand-in that paints one color with a new tint every frame."""

from __future__ import annotations

import os
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

import models.checkpoint
from models import DEFAULT_STABILIZE_STRENGTH
from models.color import chroma, frames_to_lab
from models.stabilize import DEFAULT_STRENGTH
from study.cli import build_parser
from study.cli import main as cli
from study.colorize.inference import FilmInference
from study.media.video_out import write_video


class FlickeringModel(torch.nn.Module):
    """A Predictor whose colors flicker: ab (25, 15) plus a tint drawn anew for each frame (seeded
    by the frame's index in the film, which the state counts, so batching changes nothing)."""

    def predict_ab_coarse(self, l_norm: torch.Tensor, temperature: float, state: int | None = None):
        start = state or 0
        b, n, _, h, w = l_norm.shape
        tints = [torch.randn(2, generator=torch.Generator().manual_seed(start + i)) * 8 for i in range(n)]
        ab = torch.stack([torch.tensor([25.0, 15.0]) + t for t in tints]).view(1, n, 2, 1, 1)
        return ab.expand(b, n, 2, (h + 7) // 8 * 2, (w + 7) // 8 * 2).contiguous(), start + n


def moving_frames(n: int = 8, h: int = 48, w: int = 64, step: int = 2) -> np.ndarray:
    """Gray uint8 RGB frames (n, h, w, 3) of a smooth random texture moving ``step`` px right."""
    noise = np.random.default_rng(0).uniform(0, 1, (h, w + step * n)).astype(np.float32)
    big = cv2.GaussianBlur(noise, (0, 0), 2.0)
    big = ((big - big.min()) / (big.max() - big.min()) * 180 + 40).astype(np.uint8)
    return np.stack([np.repeat(big[:, step * (n - t) : step * (n - t) + w, None], 3, axis=2) for t in range(n)])


def flicker(frames: np.ndarray) -> float:
    """Mean |change of ab| between consecutive output frames, in the middle (the texture's motion
    is 2 px a frame, so the inner part keeps its place to within that)."""
    _, ab = frames_to_lab(torch.from_numpy(frames))
    inner = ab[:, :, 8:-8, 8:-8]
    return float((inner[1:] - inner[:-1]).norm(dim=1).mean())


def test_stabilize_steadies_a_flickering_model_and_keeps_its_colors():
    frames = moving_frames(n=20)  # long enough for the mean chroma not to hang on the first frame's
    plain = FilmInference(FlickeringModel(), temperature=0.38, size=32).colorize(frames)
    steady = FilmInference(FlickeringModel(), temperature=0.38, size=32, stabilize=DEFAULT_STRENGTH)
    out = steady.colorize(frames)
    assert np.array_equal(out[0], plain[0])  # the first frame is the model's own
    assert flicker(out) < 0.6 * flicker(plain)
    chroma_of = lambda f: float(chroma(frames_to_lab(torch.from_numpy(f))[1]).mean())  # noqa: E731
    assert chroma_of(out) == pytest.approx(chroma_of(plain), rel=0.1)
    assert np.array_equal(
        FilmInference(FlickeringModel(), temperature=0.38, size=32, stabilize=0.0).colorize(frames), plain
    )  # strength 0: off


def test_stabilizer_state_runs_across_batches_and_resets_between_films():
    frames = moving_frames(n=7)
    film = FilmInference(FlickeringModel(), temperature=0.38, size=32, stabilize=0.8)
    whole = film.colorize(frames)
    film.reset()
    in_threes = np.concatenate([film.colorize(frames[i : i + 3]) for i in range(0, 7, 3)])
    assert np.abs(whole.astype(int) - in_threes).max() <= 1  # batch boundaries are invisible
    film.reset()
    assert np.array_equal(film.colorize(frames), whole)  # reset forgets the previous film


def test_flag_parses_alone_with_a_value_and_off():
    parser = build_parser()
    args = ["colorize", "ckpt", "in.mp4", "out.mp4"]
    assert parser.parse_args(args).stabilize is None
    assert parser.parse_args([*args, "--stabilize"]).stabilize == DEFAULT_STABILIZE_STRENGTH == DEFAULT_STRENGTH
    assert parser.parse_args([*args, "--stabilize", "0.25"]).stabilize == 0.25


@pytest.fixture
def flickering_checkpoint(tmp_path, monkeypatch):
    """A checkpoint folder that loads as the FlickeringModel (working size 32)."""
    folder = tmp_path / "ckpt"
    folder.mkdir()
    loaded = SimpleNamespace(model=FlickeringModel(), config=SimpleNamespace(temperature=0.38), frame_size=32)
    monkeypatch.setattr(models.checkpoint, "load_checkpoint", lambda path, device="cpu": loaded)
    return folder


def test_cli_stabilize_changes_a_flickering_models_output(tmp_path, flickering_checkpoint, video_rmse):
    src = write_video(tmp_path / "in.mp4", list(moving_frames()), fps=12)
    plain, steady = tmp_path / "plain.mp4", tmp_path / "steady.mp4"
    assert cli(["colorize", str(flickering_checkpoint), str(src), str(plain)]) == 0
    assert cli(["colorize", str(flickering_checkpoint), str(src), str(steady), "--stabilize"]) == 0
    assert video_rmse(plain, steady) > 2.0


@pytest.mark.parametrize("bad", ["1.5", "-0.1", "nan"])
def test_cli_refuses_a_strength_outside_0_1_by_name(tmp_path, flickering_checkpoint, capsys, bad):
    src = write_video(tmp_path / "in.mp4", list(moving_frames(n=2)), fps=12)
    assert cli(["colorize", str(flickering_checkpoint), str(src), str(tmp_path / "out.mp4"), "--stabilize", bad]) == 2
    assert (
        f"--stabilize: must be a number in [0, 1] (0 = off, 1 = strongest), got {float(bad)!r}"
        in capsys.readouterr().err
    )
    assert sorted(os.listdir(tmp_path)) == ["ckpt", "in.mp4"]
