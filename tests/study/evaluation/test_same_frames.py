"""Every model is scored on the same frames: validation and evaluation read whole clips whatever the
model's window (seq_len + 1 frames for the ConvLSTM), the temporal state carried through each clip."""

from __future__ import annotations

import types

import pytest
import torch

from data_shards.reader import ShardSet
from models.checkpoint import save_checkpoint
from models.gamut import ABGamut
from models.model import create_model
from models.presets import ExperimentConfig, get_preset
from study.config.train import TrainConfig
from study.evaluation.evaluate import clip_loader, colorize_frames, evaluate_checkpoint
from study.train.loop import _validate
from study.train.ranks import RankContext

SEQ_LENS = (1, 4)  # windows of 2 and 5 frames: 24 and 20 of the demo val video's 24 frames, cut in windows


def _model(seq_len: int, seed: int = 0):
    torch.manual_seed(seed)
    config = get_preset("exp5").replace(size="tiny", transfer=False, seq_len=seq_len, grid=40)
    gamut = ABGamut(config.grid)
    return config, gamut, create_model(config, gamut)


def test_validation_scores_every_seq_len_on_the_same_frames(demo_shards):
    """The training loop's validation of two untrained models with different seq_len: the same
    val_frames (all of the val split's frames, where windows of seq_len + 1 frames kept 24 and 20)
    and the same gray baseline."""
    shards = ShardSet(str(demo_shards))
    train = TrainConfig(val_batch_size=2)
    ctx = RankContext(0, 1, torch.device("cpu"))
    reports, grays = [], []
    for seq_len in SEQ_LENS:
        config, _, model = _model(seq_len)
        run = types.SimpleNamespace(train=train, ctx=ctx, shards=shards, experiment=config, evaluated=model, gray=None)
        reports.append(_validate(run))
        grays.append(run.gray.results(baseline=run.gray))
    assert reports[0]["val_frames"] == reports[1]["val_frames"] == shards.num_frames("val") == 24
    assert reports[0]["val_gray_rmse_rgb"] == reports[1]["val_gray_rmse_rgb"]
    assert grays[0] == grays[1]
    # the same weights (one seed) score alike: what is scored no longer depends on the window at all
    assert reports[0] == reports[1]


def test_evaluate_checkpoint_scores_every_seq_len_on_the_same_frames(demo_shards, tmp_path):
    docs = []
    for seq_len in SEQ_LENS:
        config, gamut, model = _model(seq_len)
        save_checkpoint(tmp_path / f"s{seq_len}", model, config, gamut, frame_size=64)
        docs.append(evaluate_checkpoint(tmp_path / f"s{seq_len}", demo_shards, "val", batch_size=2, device="cpu"))
    assert docs[0]["num_frames"] == docs[1]["num_frames"] == docs[0]["expected_frames"] == 24
    assert [v["frames"] for v in docs[0]["videos"]] == [v["frames"] for v in docs[1]["videos"]] == [24]
    assert docs[0]["gray"] == docs[1]["gray"]
    assert docs[0]["videos"][0]["pairs"] == 21  # every consecutive pair inside a clip (3 clips of 8)


def test_the_state_is_carried_through_a_clip_in_any_split():
    """A ConvLSTM colorizes a clip alike in one call or a frame per call (the state passed on), and
    not alike when each frame starts from an empty state."""
    _, _, model = _model(2)
    model.eval()
    with torch.no_grad():  # an untrained ConvLSTM adds nothing (its output starts at zero): make it matter
        for p in model.temporal.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(2))
    frames = torch.randint(0, 256, (2, 6, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    _, whole = colorize_frames(model, frames, 0.38, call_frames=64)
    _, stepped = colorize_frames(model, frames, 0.38, call_frames=2)  # 2 clips: one frame of each per call
    assert torch.allclose(whole, stepped, atol=1e-4)
    alone = torch.cat([colorize_frames(model, frames[:, t : t + 1], 0.38)[1] for t in range(6)], dim=1)
    assert torch.allclose(alone[:, 0], whole[:, 0], atol=1e-4) and (alone - whole).abs().max() > 1.0


def test_clip_loader_reads_whole_clips(demo_shards):
    loader = clip_loader(demo_shards, "val", batch_size=2)
    assert loader.window == ShardSet(str(demo_shards)).clip_len == 8
    batches = list(loader)
    starts = sorted(int(s) for b in batches for s, ok in zip(b["start"], b["valid"]) if ok)
    assert starts == [0, 8, 16] and all(b["frames"].shape[1] == 8 for b in batches)


def test_an_image_model_gives_the_same_colors_in_any_split():
    config = ExperimentConfig(name="t", size="tiny", temporal="none")
    gamut = ABGamut(config.grid)
    torch.manual_seed(0)
    model = create_model(config, gamut).eval()
    frames = torch.randint(0, 256, (1, 4, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(colorize_frames(model, frames, 0.38)[1], colorize_frames(model, frames, 0.38, 1)[1])


def test_scoring_a_few_frames_at_a_time_changes_nothing(demo_shards, monkeypatch):
    """The metrics of a batch of clips are fed in parts along time (EVAL_CALL_FRAMES frames in all):
    parts of one frame per clip give the same figures, pairs across the parts (inside a clip) included."""
    from study.evaluation import evaluate

    _, _, model = _model(2)
    whole = evaluate.evaluate_model(model, clip_loader(demo_shards, "val", batch_size=2), 0.38, "cpu")
    monkeypatch.setattr(evaluate, "EVAL_CALL_FRAMES", 2)
    parts = evaluate.evaluate_model(model, clip_loader(demo_shards, "val", batch_size=2), 0.38, "cpu")
    assert parts["videos"][0]["pairs"] == whole["videos"][0]["pairs"] == 21  # 3 clips of 8 frames
    assert parts["mean"] == pytest.approx(whole["mean"], nan_ok=True)
    assert parts["gray"]["mean"] == pytest.approx(whole["gray"]["mean"], nan_ok=True)
