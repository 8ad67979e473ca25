"""`TrialSession`: a Tune trial that trains in its own process keeps its checkpoints as a Train
run would (best and latest, under train-{trial}/), reports their paths, and resumes from the latest."""

from __future__ import annotations

import json

import pytest

from study.train.session import CHECKPOINT_PATH_KEY, TRAIN_STATE_FILE, TrialSession


@pytest.fixture
def reported(monkeypatch):
    from ray import tune

    got: list[dict] = []
    monkeypatch.setattr(tune, "report", lambda metrics, **kw: got.append(dict(metrics)))
    return got


def epoch_folder(tmp_path, epoch: int, value: float, best: float):
    folder = tmp_path / f"src{epoch}"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"w" * epoch)
    (folder / TRAIN_STATE_FILE).write_text(
        json.dumps({"epoch": epoch, "best": best, "metric": "val_rmse", "metrics": {"val_rmse": value}})
    )
    return str(folder)


def test_keeps_the_best_and_the_latest_and_reports_their_paths(tmp_path, reported):
    run_dir = tmp_path / "ray" / "s-train" / "train-t1"
    session = TrialSession(str(run_dir))
    values = [5.0, 3.0, 4.0, 6.0]  # epoch 2 is the best
    best = None
    for epoch, value in enumerate(values, 1):
        improved = best is None or value < best
        best = value if improved else best
        session.report({"epoch": epoch, "val_rmse": value}, epoch_folder(tmp_path, epoch, value, best), improved)
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint_epoch0002", "checkpoint_epoch0004"]
    assert [r[CHECKPOINT_PATH_KEY] for r in reported] == [
        str(run_dir / f"checkpoint_epoch{e:04d}") for e in (1, 2, 3, 4)
    ]
    assert (run_dir / "checkpoint_epoch0004" / "model.safetensors").read_bytes() == b"wwww"
    session.report({"epoch": 4, "val_rmse": 6.0}, None)  # a report without a checkpoint: no path
    assert CHECKPOINT_PATH_KEY not in reported[-1]

    again = TrialSession(str(run_dir))  # a retried trial
    with again.latest() as folder:
        assert json.loads((folder / TRAIN_STATE_FILE).read_text())["epoch"] == 4
    assert again.best == "checkpoint_epoch0002"  # still kept when the next epoch does not improve
    again.report({"epoch": 5, "val_rmse": 7.0}, epoch_folder(tmp_path, 5, 7.0, 3.0), False)
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint_epoch0002", "checkpoint_epoch0005"]


def test_a_new_trial_starts_afresh(tmp_path):
    with TrialSession(str(tmp_path / "none")).latest() as folder:
        assert folder is None


def test_a_copy_cut_short_is_no_checkpoint_and_goes_at_the_next_report(tmp_path, reported):
    run_dir = tmp_path / "train-t1"
    session = TrialSession(str(run_dir))
    session.report({"epoch": 1, "val_rmse": 5.0}, epoch_folder(tmp_path, 1, 5.0, 5.0), True)
    partial = run_dir / "checkpoint_epoch0002"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"half")  # killed before its loop state was copied
    again = TrialSession(str(run_dir))
    with again.latest() as folder:
        assert json.loads((folder / TRAIN_STATE_FILE).read_text())["epoch"] == 1
    again.report({"epoch": 1, "val_rmse": 5.0, "resumed": 1}, None)
    assert reported[-1][CHECKPOINT_PATH_KEY] == str(run_dir / "checkpoint_epoch0001")  # the store's best stays real
    again.report({"epoch": 2, "val_rmse": 6.0}, epoch_folder(tmp_path, 2, 6.0, 5.0), False)
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint_epoch0001", "checkpoint_epoch0002"]
    assert (run_dir / "checkpoint_epoch0002" / TRAIN_STATE_FILE).is_file()


def test_a_train_run_checkpoint_of_an_older_study_is_resumed_from(tmp_path):
    run_dir = tmp_path / "train-t1"
    old = run_dir / "checkpoint_2026-12-01_10-00-00.000000"
    old.mkdir(parents=True)
    (old / TRAIN_STATE_FILE).write_text(json.dumps({"epoch": 3, "best": 4.0, "metric": "val_rmse", "metrics": {}}))
    with TrialSession(str(run_dir)).latest() as folder:
        assert folder == old


def test_a_failure_mark_is_kept_with_the_checkpoints(tmp_path):
    session = TrialSession(str(tmp_path / "train-t1"))
    assert session.failed() is None
    session.mark_failed("NaN loss at step 3")
    assert TrialSession(str(tmp_path / "train-t1")).failed() == "NaN loss at step 3"


def test_a_trial_in_its_own_process_trains_on_the_cpu_even_with_a_gpu_visible(monkeypatch):
    import torch

    from study.train.ranks import rank_context

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    ctx = rank_context(TrialSession("/nowhere"))
    assert (ctx.rank, ctx.world_size, ctx.device) == (0, 1, torch.device("cpu"))
