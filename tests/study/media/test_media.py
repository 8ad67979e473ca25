"""Sample media: real H.264 mp4s and PNG frames from a real tiny colorizer, registered in the store."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from models.color import frames_to_lab, lab_to_frames
from models.gamut import ABGamut
from models.model import create_model
from models.presets import ExperimentConfig
from study.media.samples import Clip, pick_clips, register_media, render_clip
from study.store import Store


def _frames(seed: int, n: int = 4, size: int = 32) -> torch.Tensor:
    """Smooth colored frames (random noise would not survive H.264 anyway)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(3, 1, 1, generator=g) * 200 + 20
    ramp = torch.linspace(-20, 20, size)
    img = base + ramp.view(1, 1, size) + ramp.view(1, size, 1)  # (3, H, W)
    return torch.stack([(img + 3 * t).clamp(0, 255) for t in range(n)]).round().to(torch.uint8).permute(0, 2, 3, 1)


def test_pick_clips_prefers_distinct_videos():
    def batch(vid, start, valid=True):
        return {
            "frames": torch.zeros(1, 4, 8, 8, 3, dtype=torch.uint8),
            "video_id": [vid],
            "start": torch.tensor([start]),
            "valid": torch.tensor([valid]),
        }

    stream = [batch("a", 0), batch("a", 4), batch("b", 0, valid=False), batch("b", 0), batch("c", 0)]
    got = pick_clips(stream, 2, clip_len=4)
    assert [(c.video_id, c.clip) for c in got] == [("a", 0), ("b", 0)]
    got = pick_clips(stream, 5, clip_len=4)  # fewer videos than asked: more clips of the same ones
    assert [(c.video_id, c.clip, c.start) for c in got] == [("a", 0, 0), ("b", 0, 0), ("c", 0, 0), ("a", 1, 4)]


def test_render_clip_writes_playable_media_and_registers_it(tmp_path):
    torch.manual_seed(0)
    config = ExperimentConfig(name="t", size="tiny")
    gamut = ABGamut(config.grid)
    model = create_model(config, gamut)
    frames = _frames(3)
    clip = Clip("vid_a", 2, 32, frames)
    files = render_clip(model, clip, config.temperature, torch.device("cpu"), tmp_path, fps=12.0)

    media_types = sorted({f.media_type for f in files})
    assert media_types == ["gray_mp4", "gray_png", "gt_mp4", "gt_png", "pred_mp4", "pred_png"]
    assert len(files) == 3 * (4 + 1)
    folder = tmp_path / "vid_a_c00002"
    assert all(Path(f.path).parent == folder and Path(f.path).is_file() for f in files)

    for role in ("gray", "pred", "gt"):
        with av.open(str(folder / f"{role}.mp4")) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            decoded = [fr.to_ndarray(format="rgb24") for fr in container.decode(stream)]
        assert len(decoded) == 4 and decoded[0].shape == (32, 32, 3)
        assert stream.codec_context.pix_fmt == "yuv420p"

    gt_png = np.asarray(Image.open(folder / "001_gt.png"))
    assert np.array_equal(gt_png, frames[1].numpy())  # PNG is lossless
    gray = np.asarray(Image.open(folder / "001_gray.png")).astype(int)
    assert np.abs(gray[..., 0] - gray[..., 1]).max() <= 1 and np.abs(gray[..., 1] - gray[..., 2]).max() <= 1
    pred = torch.from_numpy(np.asarray(Image.open(folder / "001_pred.png")).copy())
    l_pred, _ = frames_to_lab(pred)
    l_gt, _ = frames_to_lab(frames[1])
    assert (l_pred - l_gt).abs().mean().item() < 0.02  # the prediction keeps the true lightness
    assert not model.training  # rendered in eval mode
    l_norm, _ = frames_to_lab(frames)  # (T, 1, H, W)
    ab, _ = model.predict_ab(l_norm[None], temperature=config.temperature)
    assert torch.equal(pred, lab_to_frames(l_norm, ab[0])[1])  # the PNG is the model's own decode, unchanged

    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    store.create_study("s", objective="val_rmse_rgb")
    store.upsert_trial("s", "t1")
    assert register_media(store, "s", "t1", files) == 15
    df = store.media("s", "t1")
    assert len(df) == 15 and set(df["video_id"]) == {"vid_a"} and set(df["clip"]) == {2}
    assert sorted(df.loc[df["media_type"] == "pred_png", "frame"]) == [0, 1, 2, 3]
    assert df.loc[df["media_type"] == "pred_mp4", "frame"].isna().all()
    store.close()


def test_render_samples_from_shards_into_the_store(demo_shards, tmp_path):
    from data_shards.reader import ShardSet
    from models.checkpoint import save_checkpoint
    from models.errors import VidcolorError
    from study.media.samples import register_media, render_samples

    torch.manual_seed(0)
    config = ExperimentConfig(name="exp5", size="tiny", temporal="convlstm", seq_len=2, lam=0.5)
    gamut = ABGamut(config.grid)
    save_checkpoint(tmp_path / "ck", create_model(config, gamut), config, gamut)
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    store.create_study("s", objective="val_rmse_rgb")
    store.upsert_trial("s", "t1", experiment="exp5")

    with pytest.raises(VidcolorError, match="clips"):
        render_samples(tmp_path / "ck", demo_shards, tmp_path / "m", clips=0)
    with pytest.raises(VidcolorError, match="no 'nope' split"):
        render_samples(tmp_path / "ck", demo_shards, tmp_path / "m", split="nope")

    files = render_samples(tmp_path / "ck", demo_shards, tmp_path / "m", split="val", clips=2, device="cpu")
    assert register_media(store, "s", "t1", files) == len(files)
    register_media(store, "s", "t1", files)  # registering again updates the same rows
    shard_set = ShardSet(demo_shards)
    clip_len = shard_set.clip_len
    val_videos = {v["id"] for v in shard_set.videos("val")}
    assert len(files) == 2 * 3 * (clip_len + 1)
    df = store.media("s", "t1")
    assert len(df) == len(files) and set(df["video_id"]) <= val_videos
    assert df[["video_id", "clip"]].drop_duplicates().shape[0] == 2  # two distinct clips
    mp4 = df.loc[df["media_type"] == "pred_mp4", "path"].iloc[0]
    with av.open(mp4) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == pytest.approx(shard_set.manifest["videos"][0]["fps"], rel=0.01)
        assert sum(1 for _ in container.decode(stream)) == clip_len
    store.close()
