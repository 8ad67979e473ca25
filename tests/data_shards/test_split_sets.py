"""Shard sets with empty splits: ``--split 0,0,100`` (evaluation only) and ``--split 90,10,0``; a
test-only set evaluated by `vidcolor evaluate`; training runs refused before Ray starts on a set
without the train or the validation split."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import study.ray_runtime
from data_shards.splits import parse_split, split_counts
from data_shards.stats import load_histogram
from data_shards.writer import write_shard_set
from models.errors import VidcolorError
from study.cli import main as cli
from study.config.train import TrainConfig

SCENES = [f"scene_{i:03d}" for i in range(6)]


def _shard(demo_videos: Path, out: Path, split: str) -> Path:
    write_shard_set([str(demo_videos)], out, size=32, clip_len=8, split=split, show_progress=False)
    return out


@pytest.fixture(scope="module")
def test_only(demo_videos, tmp_path_factory) -> Path:
    return _shard(demo_videos, tmp_path_factory.mktemp("test_only"), "0,0,100")


@pytest.fixture(scope="module")
def no_test(demo_videos, tmp_path_factory) -> Path:
    return _shard(demo_videos, tmp_path_factory.mktemp("no_test"), "90,10,0")


@pytest.fixture()
def no_ray(monkeypatch):
    """Starting Ray fails the test: the refusals must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(study.ray_runtime, "init_ray", refuse)


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


# ----------------------------------------------------------------------------- percentages with zeros


def test_zero_percent_splits_by_hand():
    assert parse_split("0,0,100") == {"train": 0, "val": 0, "test": 100}
    assert split_counts(6, parse_split("0,0,100")) == {"train": 0, "val": 0, "test": 6}
    assert split_counts(6, parse_split("90,10,0")) == {"train": 5, "val": 1, "test": 0}  # 5.4 / 0.6 / 0
    assert split_counts(7, parse_split("90,10,0")) == {"train": 6, "val": 1, "test": 0}
    assert split_counts(1, parse_split("0,50,50")) == {"train": 0, "val": 1, "test": 0}
    assert split_counts(3, parse_split("0,50,50")) == {"train": 0, "val": 2, "test": 1}
    for bad, words in (("0,0,0", "add up to 0, not 100"), ("0,0,90", "add up to 90, not 100")):
        with pytest.raises(VidcolorError, match=words):
            parse_split(bad)


def test_a_zero_percent_split_never_gets_a_video():
    rng = random.Random(0)
    for _ in range(300):
        cuts = sorted(rng.choice([0, 0, rng.uniform(0, 100)]) for _ in range(2))
        values = [cuts[0], cuts[1] - cuts[0], 100 - cuts[1]]
        percents = dict(zip(("train", "val", "test"), values))
        n = rng.randint(0, 40)
        counts = split_counts(n, percents)
        assert sum(counts.values()) == n, (n, percents)
        assert all(counts[s] == 0 for s, p in percents.items() if p == 0), (n, percents, counts)
        if n >= sum(p > 0 for p in values):
            assert all(counts[s] > 0 for s, p in percents.items() if p > 0), (n, percents, counts)


def test_evaluation_only_set(test_only):
    m = _manifest(test_only)
    assert {s: v["videos"] for s, v in m["splits"].items()} == {"test": 6, "legacy": 1}
    assert sorted(v["id"] for v in m["videos"] if v["split"] == "test") == SCENES
    assert sorted(p.name.split("-")[0] for p in test_only.glob("*.tar")) == ["legacy", "test"]
    assert load_histogram((test_only / "ab_hist.npy").read_bytes()).sum() == 0  # no training frames


def test_set_without_test_split(no_test):
    m = _manifest(no_test)
    assert {s: v["videos"] for s, v in m["splits"].items()} == {"train": 5, "val": 1, "legacy": 1}
    assert not list(no_test.glob("test-*.tar")) and m["split_file"] is None
    hist = load_histogram((no_test / "ab_hist.npy").read_bytes())
    assert hist.sum() == m["splits"]["train"]["frames"] * 32 * 32


# ----------------------------------------------------------------------------- using a test-only set


@pytest.fixture()
def tiny_checkpoint(tmp_path) -> Path:
    """An untrained tiny exp2 checkpoint (as tests/study/evaluation/conftest.py makes it)."""
    from models.checkpoint import save_checkpoint
    from models.gamut import ABGamut
    from models.model import create_model
    from models.presets import get_preset

    torch.manual_seed(0)
    config = get_preset("exp2").replace(size="tiny")
    gamut = ABGamut(config.grid)
    return save_checkpoint(tmp_path / "ck", create_model(config, gamut), config, gamut)


def test_vidcolor_evaluate_on_a_test_only_set(tmp_path, demo_videos, tiny_checkpoint, capsys):
    """Made and recorded through the command line (two scenes, to keep the CPU evaluation short)."""
    shards = tmp_path / "s"
    assert (
        cli(
            [
                "shard",
                str(demo_videos / "scene_000.mp4"),
                str(demo_videos / "scene_001.mp4"),
                "--out",
                str(shards),
                "--size",
                "32",
                "--clip-len",
                "8",
                "--split",
                "0,0,100",
            ]
        )
        == 0
    )
    m = _manifest(shards)
    assert list(m["splits"]) == ["test"] and "--split 0,0,100" in m["command"]
    out = tmp_path / "eval.json"
    rc = cli(
        [
            "evaluate",
            str(tiny_checkpoint),
            "--shards",
            str(shards),
            "--split",
            "test",
            "--device",
            "cpu",
            "--json",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert sorted(v["video_id"] for v in doc["videos"]) == SCENES[:2]
    assert doc["num_frames"] == doc["expected_frames"] == m["splits"]["test"]["frames"] == 2 * 24
    assert np.isfinite(doc["mean"]["rmse_rgb"]) and not doc["incomplete"]
    assert cli(["evaluate", str(tiny_checkpoint), "--shards", str(shards), "--split", "val", "--device", "cpu"]) == 2
    assert f"shard set {shards} has no 'val' split (it has: test)" in capsys.readouterr().err


# ----------------------------------------------------------------------------- training refused before Ray


def test_training_on_a_set_without_train_fails_before_ray(test_only, no_test, tmp_path, no_ray, capsys):
    from models.presets import get_preset
    from study.train.launch import run_training

    experiment = get_preset("exp2").replace(size="tiny")
    with pytest.raises(VidcolorError) as err:
        run_training(experiment, TrainConfig(), str(test_only), tmp_path / "run")
    assert str(err.value) == (
        f"{test_only}: no 'train' split (it has: test, legacy); make one with vidcolor shard "
        "--split ... or --split-file"
    )
    with pytest.raises(VidcolorError) as err:
        run_training(experiment, TrainConfig(val_split="test"), str(no_test), tmp_path / "run")
    assert str(err.value) == (
        f"{no_test}: no 'test' split for validation, which runs after every epoch (it has: "
        "train, val, legacy); make one with vidcolor shard --split ... or --split-file, or "
        "validate on another split with --set val_split=NAME"
    )
    rc = cli(
        ["train", "--shards", str(test_only), "--preset", "exp2", "--set", "size=tiny", "--out", str(tmp_path / "cli")]
    )
    assert rc == 2 and f"error: {test_only}: no 'train' split (it has: test, legacy)" in capsys.readouterr().err


def test_study_on_a_set_without_train_fails_before_ray(test_only, tmp_path, no_ray):
    from study.config.spec import load_spec
    from study.tune.runner import run_study

    with pytest.raises(VidcolorError, match=f"^{test_only}: no 'train' split \\(it has: test, legacy\\)"):
        run_study(
            load_spec("demo"), shards=str(test_only), db=f"sqlite:///{tmp_path}/r.db", storage=str(tmp_path / "ray")
        )
    assert not (tmp_path / "r.db").exists() and not (tmp_path / "ray").exists()
