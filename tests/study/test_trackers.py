"""``--log tensorboard,mlflow,wandb``: runs on the trackers researchers use, read back with each
tracker's own reader (TensorBoard's EventAccumulator, MLflow's client, the records of a W&B
offline run); the Tune callback without Ray; `vidcolor train --log` end to end; bad names."""

from __future__ import annotations

import glob
import json
import shutil
import struct
import types
from pathlib import Path

import numpy as np
import pytest

from models.errors import VidcolorError
from study.trackers import TrackerOptions, TrackerRun, parse_trackers, sample_images

ALL = ("tensorboard", "mlflow", "wandb")
EPOCHS = {1: {"val_rmse_rgb": 30.5, "train_loss": 4.0}, 2: {"val_rmse_rgb": 25.25, "train_loss": 3.0}}


@pytest.fixture(autouse=True)
def _wandb_offline(monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")


# -- the trackers' own readers ---------------------------------------------------------------------


def tensorboard_run(log_dir: Path, name: str):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir / "tensorboard" / name), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


def mlflow_run(log_dir: Path, project: str, name: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{log_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(project)
    (run,) = client.search_runs([experiment.experiment_id], filter_string=f"attributes.run_name = '{name}'")
    return client, run


def wandb_records(log_dir: Path) -> list:
    """The records of every W&B offline run under log_dir: the .wandb file is W&B's LevelDB-style
    log (a 7-byte header, then 32 KiB blocks of checksummed chunks) of `wandb_internal_pb2.Record`s."""
    from wandb.proto import wandb_internal_pb2 as pb

    records = []
    for path in sorted(glob.glob(str(log_dir / "wandb" / "offline-run-*" / "run-*.wandb"))):
        data, pos, chunk = Path(path).read_bytes(), 7, b""
        assert data[:4] == b":W&B"
        while pos + 7 <= len(data):
            left = 32768 - pos % 32768
            if left < 7:
                pos += left
                continue
            _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
            pos += 7
            if kind == 0 and length == 0:  # block padding
                pos += left - 7
                continue
            chunk += data[pos : pos + length]
            pos += length
            if kind in (1, 4):  # a full record, or the last chunk of one
                record = pb.Record()
                record.ParseFromString(chunk)
                records.append(record)
                chunk = b""
    return records


def wandb_history(records) -> list[dict]:
    return [
        {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item}
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]


def wandb_config(records) -> dict:
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    return {i.key: json.loads(i.value_json) for i in run.config.update}


# -- tests -----------------------------------------------------------------------------------------


def test_one_run_on_every_tracker_reads_back_with_their_own_readers(tmp_path):
    frame = np.zeros((12, 16, 3), np.uint8)
    frame[:, :8] = (200, 30, 40)
    run = TrackerRun(ALL, tmp_path, "study-a", "study-a-t1", {"params": {"lam": 0.5}, "train": {"epochs": 2}})
    assert run.trackers == ALL
    for epoch, metrics in EPOCHS.items():
        run.log({**metrics, "note": "text is left out", "nan": float("nan")}, epoch)
    run.log_images({"colorized/v_c0_f000": frame})
    run.close()

    acc = tensorboard_run(tmp_path, "study-a-t1")
    assert [(e.step, e.value) for e in acc.Scalars("val_rmse_rgb")] == [(1, 30.5), (2, 25.25)]
    assert "nan" not in acc.Tags()["scalars"] and "note" not in acc.Tags()["scalars"]
    (image,) = acc.Images("colorized/v_c0_f000")
    assert (image.step, image.width, image.height) == (2, 16, 12)

    client, mrun = mlflow_run(tmp_path, "study-a", "study-a-t1")
    history = client.get_metric_history(mrun.info.run_id, "val_rmse_rgb")
    assert sorted((m.step, m.value) for m in history) == [(1, 30.5), (2, 25.25)]
    assert mrun.data.params["params.lam"] == "0.5" and mrun.data.params["train.epochs"] == "2"
    assert mrun.info.status == "FINISHED"
    files = [a.path for a in client.list_artifacts(mrun.info.run_id, "images")]
    assert any(p.startswith("images/colorized_v_c0_f000") and p.endswith(".png") for p in files)

    records = wandb_records(tmp_path)
    rows = wandb_history(records)
    assert [(r["_step"], r["val_rmse_rgb"]) for r in rows if "val_rmse_rgb" in r] == [(1, 30.5), (2, 25.25)]
    assert any(r.get("colorized/v_c0_f000/_type") == "image-file" for r in rows)
    assert wandb_config(records)["params.lam"] == 0.5
    assert any(r.WhichOneof("record_type") == "exit" and r.exit.exit_code == 0 for r in records)


def test_a_tracker_that_fails_is_turned_off_and_the_others_go_on(tmp_path, caplog):
    run = TrackerRun(("tensorboard",), tmp_path, "p", "r", {})
    run._clients["broken"] = types.SimpleNamespace()  # no add_scalar, no log: every call raises
    run.log({"val_rmse_rgb": 1.0}, 1)
    run.log({"val_rmse_rgb": 2.0}, 2)
    run.close()
    assert run.trackers == ()
    assert [e.value for e in tensorboard_run(tmp_path, "r").Scalars("val_rmse_rgb")] == [1.0, 2.0]
    assert "--log broken: metrics of run r failed" in caplog.text


def test_bad_tracker_names_and_missing_packages_are_clear_errors(monkeypatch):
    assert parse_trackers("TensorBoard, mlflow,tensorboard") == ("tensorboard", "mlflow")
    assert parse_trackers(None) == ()
    with pytest.raises(VidcolorError, match="--log: unknown tracker 'neptune'; one or more of tensorboard"):
        parse_trackers("tensorboard,neptune")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(VidcolorError, match=r"--log wandb: the wandb package is not installed \(pip install"):
        parse_trackers("wandb")


def test_sample_images_are_the_first_clips_frames_and_truth(tmp_path):
    from PIL import Image

    media = []
    for clip in (1, 0):
        for frame in range(6):
            for role in ("pred", "gt", "gray"):
                path = tmp_path / f"{clip}_{frame}_{role}.png"
                Image.fromarray(np.full((4, 4, 3), 10 * frame + clip, np.uint8)).save(path)
                media.append(
                    {"media_type": f"{role}_png", "path": str(path), "video_id": "v", "clip": clip, "frame": frame}
                )
    images = sample_images(media)
    assert sorted(images) == sorted(f"{role}/v_c0_f{f:03d}" for role in ("colorized", "ground_truth") for f in range(4))
    assert images["colorized/v_c0_f003"][0, 0, 0] == 30
    assert sample_images([]) == {}


def test_tune_callback_sends_each_trial_its_config_epochs_and_frames(tmp_path, fx):
    """The Tune path without Ray: the callback gets what Tune gives it (trials, results) and reads
    the store the StoreCallback before it wrote (config, media)."""
    from study.tune.callbacks import TrackerCallback

    info = fx.build(tmp_path / "db", with_items=False)
    options = TrackerOptions(("tensorboard", "mlflow"), str(tmp_path / "logs"))
    callback = TrackerCallback(options, info["url"], info["study"])
    trials = {tid: types.SimpleNamespace(trial_id=tid, config={"lam": 0.3}) for tid in ("t_001", "t_006")}
    for trial in trials.values():
        callback.on_trial_start(0, [], trial)
    store, final = info["store"], info["store"].media(info["study"], "t_001")
    for epoch in (1, 2):
        # the frames the trial rendered at this epoch (media_every), listed by the StoreCallback first
        for row in final[final.media_type == "pred_png"].itertuples():
            copy = tmp_path / f"e{epoch}_{Path(row.path).name}"
            shutil.copyfile(row.path, copy)
            store.add_media(
                info["study"],
                "t_001",
                "pred_png",
                copy,
                video_id=row.video_id,
                clip=row.clip,
                frame=row.frame,
                epoch=epoch,
            )
        callback.on_trial_result(0, [], trials["t_001"], {"epoch": epoch, "val_rmse_rgb": 10.0 / epoch, "pid": 7})
    callback.on_trial_error(0, [], trials["t_006"])
    callback.on_experiment_end(list(trials.values()))

    logs = tmp_path / "logs"
    acc = tensorboard_run(logs, f"{info['study']}-t_001")
    assert [(e.step, e.value) for e in acc.Scalars("val_rmse_rgb")] == [(1, 10.0), (2, 5.0)]
    assert "pid" not in acc.Tags()["scalars"]  # Ray's own keys are not metrics
    assert any(tag.startswith("colorized/") for tag in acc.Tags()["images"])
    assert any(tag.startswith("ground_truth/") for tag in acc.Tags()["images"])
    tag = next(t for t in acc.Tags()["images"] if t.startswith("colorized/"))
    assert sorted({e.step for e in acc.Images(tag)}) == [1, 2]  # each epoch's frames at its step
    client, run = mlflow_run(logs, info["study"], f"{info['study']}-t_001")
    assert run.data.params["params.lam"] == "0.3" and run.data.params["preset"] == "exp1"
    _, failed = mlflow_run(logs, info["study"], f"{info['study']}-t_006")
    assert failed.info.status == "FAILED"


@pytest.mark.slow
def test_vidcolor_train_log_sends_the_run_to_all_three(demo_shards, tmp_path, capsys):
    from study.cli import main as cli

    out = tmp_path / "run"
    sets = ["size=tiny", "epochs=2", "steps_per_epoch=2", "batch_size=2", "val_batches=1", "val_batch_size=2"]
    argv = ["train", "--shards", str(demo_shards), "--preset", "exp1", "--workers", "0", "--out", str(out)]
    argv += [a for s in sets for a in ("--set", s)] + ["--log", "tensorboard,mlflow,wandb", "--media-every", "1"]
    assert cli(argv) == 0
    assert f"logged to tensorboard, mlflow, wandb under {out / 'logs'}" in capsys.readouterr().out
    logs = out / "logs"
    acc = tensorboard_run(logs, "run")
    assert [e.step for e in acc.Scalars("val_rmse_rgb")] == [1, 2]
    tag = next(t for t in acc.Tags()["images"] if t.startswith("colorized/"))
    assert sorted({e.step for e in acc.Images(tag)}) == [1, 2]  # --media-every 1: the frames of each epoch
    for epoch in (1, 2):  # rendered into the run folder, with their index
        index = json.loads((out / "samples" / "epochs" / f"e{epoch:04d}" / "media.json").read_text())
        assert {i["epoch"] for i in index} == {epoch} and all(Path(i["path"]).is_file() for i in index)
    client, run = mlflow_run(logs, "run", "run")
    assert len(client.get_metric_history(run.info.run_id, "val_rmse_rgb")) == 2
    assert run.data.params["experiment.name"] == "exp1" and run.data.params["train.epochs"] == "2"
    rows = wandb_history(wandb_records(logs))
    assert [r["_step"] for r in rows if "val_rmse_rgb" in r] == [1, 2]
    assert any(k.startswith("colorized/") for r in rows for k in r)


def test_cli_log_names_are_checked_before_any_work(demo_shards, tmp_path, capsys):
    from study.cli import main as cli

    out = tmp_path / "run"
    argv = ["train", "--shards", str(demo_shards), "--preset", "exp1", "--workers", "0", "--out", str(out)]
    assert cli([*argv, "--log", "tensorbord"]) == 2
    assert "--log: unknown tracker 'tensorbord'" in capsys.readouterr().err and not out.exists()
    spec = Path(__file__).resolve().parents[2] / "study" / "configs" / "demo.toml"
    assert (
        cli(["tune", str(spec), "--shards", str(demo_shards), "--log", "mlfow", "--db", f"sqlite:///{tmp_path}/x.db"])
        == 2
    )
    assert "--log: unknown tracker 'mlfow'" in capsys.readouterr().err and not (tmp_path / "x.db").exists()


def test_tune_callback_closes_a_trials_run_once_its_frames_are_in(tmp_path, fx):
    """A finished trial's run is closed (frames sent) while the study goes on, not at its end; a
    tracker that cannot start is not tried again for the next trial."""
    from study.tune.callbacks import TrackerCallback

    info = fx.build(tmp_path / "db", with_items=False)
    options = TrackerOptions(("mlflow",), str(tmp_path / "logs"), mlflow_uri="notascheme://nowhere")
    callback = TrackerCallback(options, info["url"], info["study"])
    callback.on_trial_start(0, [], types.SimpleNamespace(trial_id="t_001", config={}))
    assert callback._skip == {"mlflow"}  # the bad URI failed once...
    callback.on_trial_start(0, [], types.SimpleNamespace(trial_id="t_002", config={}))
    assert callback._runs["t_002"].trackers == ()  # ...and is not tried again
    callback = TrackerCallback(TrackerOptions(("tensorboard",), str(tmp_path / "tb")), info["url"], info["study"])
    callback.CHECK_EVERY_S = 0
    trial = types.SimpleNamespace(trial_id="t_001", config={})
    callback.on_trial_start(0, [], trial)
    callback.on_trial_result(0, [], trial, {"epoch": 1, "val_rmse_rgb": 3.0})
    callback.on_trial_result(0, [], trial, {"epoch": 1, "val_rmse_rgb": 3.0, "resumed": True})  # logged once
    callback.on_trial_complete(0, [], trial)
    callback.on_step_end(0, [])  # t_001 has media in the store: closed now
    assert "t_001" not in callback._runs
    acc = tensorboard_run(tmp_path / "tb", f"{info['study']}-t_001")
    assert [e.step for e in acc.Scalars("val_rmse_rgb")] == [1]
    assert any(tag.startswith("colorized/") for tag in acc.Tags()["images"])


def test_resume_with_log_and_an_unwritable_log_dir_are_clear_errors(demo_shards, tmp_path, capsys):
    from study.cli import main as cli

    spec = Path(__file__).resolve().parents[2] / "study" / "configs" / "demo.toml"
    base = ["tune", str(spec), "--shards", str(demo_shards), "--db", f"sqlite:///{tmp_path}/x.db"]
    assert cli([*base, "--resume", "--log", "tensorboard"]) == 2
    assert "--log with --resume" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli([*base, "--log", "tensorboard", "--log-dir", str(blocker / "logs")]) == 2
    assert f"--log-dir {blocker / 'logs'}: cannot be written" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()
