"""The results store's studies, trials, epochs and media, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest

from models.errors import VidcolorError
from study.store.trials import objective_value


def test_study_round_trip_and_uniqueness(store, study):
    got = store.get_study("s1")
    assert got["spec"] == {"trials": 3} and got["objective"] == "val_rmse" and got["mode"] == "min"
    assert got["shards"] == "/data/shards" and got["status"] == "RUNNING"
    with pytest.raises(VidcolorError, match="already exists"):
        store.create_study("s1", objective="val_rmse")
    again = store.create_study("s1", objective="val_rmse", exist_ok=True)  # resume
    assert again["id"] == got["id"]
    with pytest.raises(VidcolorError, match="objective"):
        store.create_study("s1", objective="val_psnr", mode="max", exist_ok=True)
    with pytest.raises(VidcolorError, match="mode"):
        store.create_study("s2", objective="x", mode="lowest")
    store.create_study("s2", objective="val_colorfulness", mode="max")
    assert store.latest_study()["name"] == "s2"
    store.set_study_status("s1", "FINISHED")
    assert list(store.studies()["status"]) == ["FINISHED", "RUNNING"]
    assert store.get_study("nope") is None
    with pytest.raises(VidcolorError, match="no study named 'nope'"):
        store.trials("nope")


def test_spec_and_metrics_are_stored_as_plain_json(store):
    when = dt.datetime(2026, 1, 2, 3, 4, 5)
    store.create_study(
        "j",
        objective="val_rmse",
        spec={
            "size": (64, 64),
            "root": Path("/data/x"),
            "when": when,
            "lr": np.float64(1e-3),
            "n": np.int64(7),
            "bad": float("nan"),
            "nested": {"k": [np.float32(0.5), float("inf")]},
        },
    )
    assert store.get_study("j")["spec"] == {
        "size": [64, 64],
        "root": "/data/x",
        "when": "2026-01-02T03:04:05",
        "lr": 1e-3,
        "n": 7,
        "bad": None,
        "nested": {"k": [0.5, None]},
    }
    store.upsert_trial("j", "t", params={"grid": np.int32(10), "ratio": np.float16(0.25)})
    store.log_epoch("j", "t", 0, {"val_rmse": np.float32(2.5), "flag": np.bool_(True)})
    trial = store.get_trial("j", "t")
    assert trial["params"] == {"grid": 10, "ratio": 0.25}
    assert trial["last_metrics"] == {"val_rmse": 2.5, "flag": True}
    assert type(trial["last_metrics"]["val_rmse"]) is float and type(trial["params"]["grid"]) is int


def test_objective_value():
    assert objective_value({"val_rmse": 7.0, "loss": 1.0}, "val_rmse") == 7.0
    assert objective_value({"val_rmse": "7.5"}, "val_rmse") == 7.5
    assert objective_value({"val_rmse": float("nan")}, "val_rmse") is None
    assert objective_value({"val_rmse": float("-inf")}, "val_rmse") is None
    assert objective_value({"val_rmse": None}, "val_rmse") is None
    assert objective_value({"val_rmse": "high"}, "val_rmse") is None
    assert objective_value({"loss": 1.0}, "val_rmse") is None
    assert objective_value(None, "val_rmse") is None


def test_trials_epochs_best_and_flattened_columns(store, study):
    store.upsert_trial(
        study, "t1", experiment="exp2", config={"lam": 0.5, "grid": 10, "lr": 1e-3}, params={"lam": 0.5, "lr": 1e-3}
    )
    store.upsert_trial(study, "t2", experiment="exp1", params={"lam": 0.9, "lr": 1e-2})
    assert store.log_epoch(study, "t1", 0, {"val_rmse": 9.0, "loss": np.float32(2.5)}, checkpoint="/ck/0")
    assert store.log_epoch(study, "t1", 1, {"val_rmse": 7.0, "loss": 2.0}, checkpoint="/ck/1")
    assert not store.log_epoch(study, "t1", 2, {"val_rmse": 8.0, "loss": 1.5}, checkpoint="/ck/2")
    assert not store.log_epoch(study, "t2", 0, {"val_rmse": float("nan"), "loss": float("inf")})  # NaN never best
    store.log_epoch(study, "t1", 2, {"val_rmse": 8.5, "loss": 1.4})  # upsert, not a second row
    store.finish_trial(study, "t1", "TERMINATED")
    store.finish_trial(study, "t2", "ERROR", error="loss is NaN")

    t1 = store.get_trial(study, "t1")
    assert t1["best_epoch"] == 1 and t1["best_metrics"] == {"val_rmse": 7.0, "loss": 2.0}
    assert t1["checkpoint"] == "/ck/1" and t1["last_metrics"]["val_rmse"] == 8.5 and t1["epochs"] == 3
    assert t1["ended"] >= t1["started"]

    df = store.trials(study)
    assert list(df["trial_id"]) == ["t1", "t2"]
    assert {"param_lam", "param_lr", "best_val_rmse", "last_val_rmse", "best_loss", "objective"} <= set(df.columns)
    row = df.set_index("trial_id")
    assert row.loc["t1", "param_lam"] == 0.5 and row.loc["t1", "best_val_rmse"] == 7.0
    assert row.loc["t1", "objective"] == 7.0 and row.loc["t1", "epochs"] == 3
    assert row.loc["t2", "status"] == "ERROR" and row.loc["t2", "error"] == "loss is NaN"
    assert math.isnan(row.loc["t2", "last_val_rmse"])  # stored as JSON null
    assert row.loc["t1", "config"] == {"lam": 0.5, "grid": 10, "lr": 1e-3}

    ep = store.epochs(study)
    assert list(zip(ep["trial_id"], ep["epoch"])) == [("t1", 0), ("t1", 1), ("t1", 2), ("t2", 0)]
    assert list(ep["val_rmse"])[:3] == [9.0, 7.0, 8.5]
    assert len(store.epochs(study, ["t2"])) == 1

    summary = store.studies().set_index("name").loc["s1"]
    assert summary["trials"] == 2 and summary["finished"] == 1 and summary["failed"] == 1 and summary["best"] == 7.0

    # resume: a relaunched trial goes back to RUNNING with its history intact
    store.upsert_trial(study, "t2", status="RUNNING")
    t2 = store.get_trial(study, "t2")
    assert t2["status"] == "RUNNING" and t2["error"] is None and t2["ended"] is None and t2["epochs"] == 1
    with pytest.raises(VidcolorError, match="status"):
        store.upsert_trial(study, "t2", status="DONE")
    with pytest.raises(VidcolorError, match="no trial 'zz'"):
        store.finish_trial(study, "zz")


def test_max_mode_objective(store):
    store.create_study("mx", objective="val_psnr", mode="max")
    store.log_epoch("mx", "a", 0, {"val_psnr": 20.0})
    store.log_epoch("mx", "a", 1, {"val_psnr": 25.0})
    store.log_epoch("mx", "a", 2, {"val_psnr": 22.0})
    assert store.get_trial("mx", "a")["best_epoch"] == 1


def test_same_trial_id_in_two_studies(store, study):
    store.create_study("other", objective="val_rmse")
    store.log_epoch(study, "t1", 0, {"val_rmse": 1.0})
    store.log_epoch("other", "t1", 0, {"val_rmse": 2.0})
    assert store.trials(study)["objective"].tolist() == [1.0]
    assert store.trials("other")["objective"].tolist() == [2.0]


def test_reported_epoch_key_does_not_shadow_trial_columns(store, study):
    # Ray Train reports carry `epoch` beside the metrics; the trial's own best_epoch column stays unique
    store.upsert_trial(study, "t1", experiment="exp1", params={"lam": 0.5})
    store.log_epoch(study, "t1", 0, {"epoch": 0, "val_rmse": 9.0})
    store.log_epoch(study, "t1", 1, {"epoch": 1, "val_rmse": 7.0})
    df = store.trials(study)
    assert not df.columns.duplicated().any()
    assert df.loc[0, "best_epoch"] == 1 and df.loc[0, "best_val_rmse"] == 7.0
    ep = store.epochs(study)
    assert list(ep["epoch"]) == [0, 1] and not ep.columns.duplicated().any()


def test_media_round_trip(store, study, tmp_path):
    store.upsert_trial(study, "t1", experiment="exp2")
    store.add_media(study, "t1", "pred_mp4", tmp_path / "v0_pred.mp4", video_id="v0", clip=0)
    for f in range(2):
        store.add_media(study, "t1", "gray_png", tmp_path / f"v0_{f}_gray.png", video_id="v0", clip=0, frame=f)
    store.add_media(study, "t1", media_type="pred_mp4", path=tmp_path / "v0_pred.mp4", video_id="v0", clip=0)  # again
    df = store.media(study, "t1")
    assert len(df) == 3
    assert sorted(df["media_type"]) == ["gray_png", "gray_png", "pred_mp4"]
    assert set(df.loc[df["media_type"] == "gray_png", "frame"]) == {0, 1}
    assert df["path"].str.startswith(str(tmp_path)).all()
    assert len(store.media(study)) == 3 and store.media(study, "t9").empty
    with pytest.raises(VidcolorError, match="media item 0 of trial t1: media_type and path are required"):
        store.add_media_many(study, "t1", [{"kind": "gt_png", "path": tmp_path / "old_key.png"}])
    assert len(store.media(study, "t1")) == 3  # the refused batch left nothing behind
