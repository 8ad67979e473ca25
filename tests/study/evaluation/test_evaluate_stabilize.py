"""`vidcolor evaluate --stabilize [STRENGTH]`: the temporal filter (models.stabilize) applied to each
clip's predicted ab before scoring, so its effect on flicker, colour and RMSE is measured on the
same frames as the plain model's. The model is a stand-in whose colours flicker frame to frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from models.model import Predictor
from study.evaluation.evaluate import evaluate_checkpoint, evaluate_model


class FlickeringPredictor(Predictor, nn.Module):
    """Predicts the true colour of the moving texture (ab (20, 30)) plus a tint drawn anew for each
    frame: a colorizer that is right on average and flickers."""

    def __init__(self) -> None:
        nn.Module.__init__(self)

    def predict_ab(self, l_norm, temperature=None, state=None, size=None):
        start = state or 0
        b, n, _, h, w = l_norm.shape
        g = torch.Generator().manual_seed(start)
        tints = torch.randn(n, 2, generator=g) * 10  # (T, 2)
        ab = (torch.tensor([20.0, 30.0]) + tints).view(1, n, 2, 1, 1).expand(b, n, 2, h, w)
        return ab.contiguous(), start + n


def moving_clip(n: int = 12, h: int = 48, w: int = 64, step: int = 2) -> torch.Tensor:
    """One clip (1, n, h, w, 3) uint8 of a smooth texture tinted (20, 30) in ab, moving ``step`` px
    right per frame."""
    from models.color import lab_to_frames, normalize_l

    noise = np.random.default_rng(0).uniform(0, 1, (h, w + step * n)).astype(np.float32)
    big = cv2.GaussianBlur(noise, (0, 0), 2.0)
    big = (big - big.min()) / (big.max() - big.min()) * 50 + 30  # L in [30, 80]
    l = torch.from_numpy(np.stack([big[:, step * (n - t) : step * (n - t) + w] for t in range(n)]))
    l_norm = normalize_l(l.float())[:, None]  # (n, 1, h, w)
    ab = torch.tensor([20.0, 30.0]).view(1, 2, 1, 1).expand(n, 2, h, w)
    return lab_to_frames(l_norm, ab)[None]  # (1, n, h, w, 3)


def _evaluate(stabilize):
    frames = moving_clip()
    batch = {"frames": frames, "video_id": ["v0"], "start": torch.zeros(1, dtype=torch.int64)}
    return evaluate_model(FlickeringPredictor(), [batch], 0.38, "cpu", stabilize=stabilize)


def test_stabilize_at_least_halves_the_added_warp_and_keeps_colour_and_rmse():
    plain, steady = _evaluate(None), _evaluate(0.7)
    p, s = plain["mean"], steady["mean"]
    assert plain["num_frames"] == steady["num_frames"] == 12
    assert plain["gray"]["mean"] == steady["gray"]["mean"]  # the same frames, the same baseline
    assert p["added_warp"] > 1.0  # the stand-in flickers well above the input's own
    assert s["added_warp"] <= 0.5 * p["added_warp"]
    assert s["colorfulness_pred"] >= 0.9 * p["colorfulness_pred"]  # steadier, not paler
    assert s["rmse_rgb"] <= 1.01 * p["rmse_rgb"]  # the tint averages out: no worse on the truth


def test_strength_zero_is_the_plain_model():
    assert _evaluate(0.0)["mean"] == _evaluate(None)["mean"]


def test_cli_stabilize_is_recorded_and_a_bad_strength_is_refused_by_name(
    demo_shards, tiny_checkpoint, tmp_path, capsys
):
    from study.cli import main

    doc = evaluate_checkpoint(tiny_checkpoint, demo_shards, "test", device="cpu", batch_size=4, stabilize=0.7)
    plain = evaluate_checkpoint(tiny_checkpoint, demo_shards, "test", device="cpu", batch_size=4)
    assert doc["stabilize"] == 0.7 and plain["stabilize"] is None
    assert doc["num_frames"] == plain["num_frames"] and doc["gray"]["mean"] == plain["gray"]["mean"]

    args = ["evaluate", str(tiny_checkpoint), "--shards", str(demo_shards), "--device", "cpu", "--batch-size", "4"]
    assert main([*args, "--stabilize"]) == 0  # alone: the default strength
    assert "--stabilize 0.7" in capsys.readouterr().out
    for bad in ("1.5", "-0.1"):
        out = tmp_path / f"e{bad}.json"
        assert main([*args, "--stabilize", bad, "--json", str(out)]) == 2
        err = capsys.readouterr().err
        assert "--stabilize" in err and bad in err
        assert not out.exists()  # refused before any work


@pytest.mark.parametrize("strength", [0.3, 1.0])
def test_each_clip_gets_a_fresh_filter(strength):
    """Two copies of the same clip in one batch come out identical: no state leaks from clip to clip."""
    from models.color import frames_to_lab
    from study.evaluation.evaluate import stabilize_clips

    frames = moving_clip().expand(2, -1, -1, -1, -1).contiguous()
    l_norm, _ = frames_to_lab(frames)
    ab = FlickeringPredictor().predict_ab(l_norm)[0]
    out = stabilize_clips(l_norm, ab, strength)
    assert out.shape == ab.shape
    assert torch.equal(out[0], out[1])
    assert torch.equal(out[:, 0], ab[:, 0].float())  # each clip's first frame is the model's own
