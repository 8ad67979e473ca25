"""Studies on the session's Ray cluster (CPU, tiny model): the whole flow with ASHA and failing
trials, and a driver killed mid-study then resumed."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from models.errors import VidcolorError
from study.config.spec import load_spec, parse_spec
from study.store import Store
from study.tune.runner import absolute_checkpoints, plan_concurrency, run_study

FIXED = """
[fixed]
size = "tiny"
transfer = false
lam = 0.7
epochs = {epochs}
steps_per_epoch = {steps}
batch_size = 2
val_batches = 1
val_batch_size = 2
"""


LAM = {"lam": {"type": "float", "low": 0.2, "high": 0.9}}
SECRET_URL = "postgresql://vc:s3cret-pw@db.example:5432/results"


def write_spec(tmp_path: Path, text: str, epochs: int = 2, steps: int = 2) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(textwrap.dedent(text) + FIXED.format(epochs=epochs, steps=steps))
    return path


def test_checkpoint_paths_are_made_absolute_before_ray_starts(tmp_path, monkeypatch):
    """Ray starts every trial in a folder of its own: a relative pretrained folder would name
    nothing there, so the driver makes it absolute, or refuses it when it does not exist."""
    from models.presets import get_preset
    from study.train.launch import absolute_pretrained

    (tmp_path / "checkpoints" / "eccv16").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    spec = parse_spec({"name": "x", "preset": "exp5", "search": LAM, "fixed": {"pretrained": "checkpoints/eccv16"}})
    assert absolute_checkpoints(spec).fixed["pretrained"] == str(tmp_path / "checkpoints" / "eccv16")
    assert absolute_checkpoints(spec).base_configs()[0].pretrained == str(tmp_path / "checkpoints" / "eccv16")
    remote = spec.replace(fixed={"pretrained": "s3://bucket/eccv16"})
    assert absolute_checkpoints(remote) is remote  # a URI is fetched by the trial itself
    missing = spec.replace(fixed={"pretrained": "checkpoints/nope"})
    with pytest.raises(
        VidcolorError,
        match=rf"\[fixed\] pretrained: checkpoint folder checkpoints/nope does not "
        rf"exist \(relative paths are taken from {tmp_path}\)",
    ):
        absolute_checkpoints(missing)
    experiment = get_preset("exp4").replace(pretrained="checkpoints/eccv16")
    assert absolute_pretrained(experiment).pretrained == str(tmp_path / "checkpoints" / "eccv16")
    with pytest.raises(VidcolorError, match="pretrained: checkpoint folder nope does not exist"):
        absolute_pretrained(experiment.replace(pretrained="nope"))


def test_plan_concurrency_fits_the_cluster():
    spec = parse_spec(
        {
            "name": "x",
            "preset": "exp2",
            "max_concurrent": 4,
            "search": LAM,
            "resources": {"workers": 2, "cpus_per_worker": 1},
        }
    )
    assert plan_concurrency(spec, cpus=16, gpus=0, local=True) == 4
    assert plan_concurrency(spec, cpus=7, gpus=0, local=True) == 3  # 2.1 CPUs a trial (driver + 2 workers)
    assert plan_concurrency(spec, cpus=6, gpus=0, local=True) == 2
    with pytest.raises(VidcolorError, match="needs 2.1 CPUs"):
        plan_concurrency(spec, cpus=2, gpus=0, local=True)
    gpu = spec.replace(resources=spec.resources.__class__(workers=2, cpus_per_worker=1, gpus_per_worker=1))
    assert plan_concurrency(gpu, cpus=16, gpus=2, local=False) == 1
    with pytest.raises(VidcolorError, match="GPUs"):
        plan_concurrency(gpu, cpus=16, gpus=0, local=False)


def test_run_study_refuses_missing_shards(tmp_path):
    spec = load_spec("demo")
    with pytest.raises(VidcolorError, match="does not exist"):
        run_study(spec, shards=str(tmp_path / "none"), db=f"sqlite:///{tmp_path}/r.db")


def test_storage_in_the_way_of_a_file_is_refused_before_anything_starts(demo_shards, tmp_path, capsys):
    """`--storage` naming a file, or with a file where the study's folder goes: an error naming the
    flag and path before the results database is created or Ray starts (nothing is written)."""
    from study.cli import main as cli

    spec = load_spec("demo")
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"mine")
    db = tmp_path / "r.db"
    base = ["tune", "demo", "--shards", str(demo_shards), "--db", f"sqlite:///{db}"]
    assert cli([*base, "--storage", str(notes)]) == 2
    assert f"error: --storage {notes / spec.name}: {notes} is a file, not a folder" in capsys.readouterr().err
    storage = tmp_path / "ray_results"
    storage.mkdir()
    (storage / f"{spec.name}-train").write_text("a file where the trials' runs go")
    assert cli([*base, "--storage", str(storage)]) == 2
    assert (
        f"error: --storage {storage / (spec.name + '-train')}: exists and is a file, not a folder"
        in capsys.readouterr().err
    )
    assert not db.exists() and notes.read_bytes() == b"mine" and sorted(os.listdir(storage)) == [f"{spec.name}-train"]


def test_what_tune_pickles_holds_no_database_password(tmp_path):
    """The trial's run, the store callback (pickled by Tune into --storage, cloudpickle as Tune does)
    and the spec record carry the URL masked; the driver process resolves the real one."""
    import ray.cloudpickle as cloudpickle

    from study.tune import secrets
    from study.tune.callbacks import StoreCallback
    from study.tune.trial import StudyRun

    spec = load_spec("demo")
    run = StudyRun(spec=spec, shards="/data/shards", train_storage="/ray/demo-train", store_url=SECRET_URL)
    callback = StoreCallback(SECRET_URL, run, str(tmp_path / "media"), spec.max_t)
    masked = "postgresql://vc:***@db.example:5432/results"
    assert run.store_url == masked and callback.store_url == masked
    for blob in (
        pickle.dumps(run),
        cloudpickle.dumps(run),
        cloudpickle.dumps(callback),
        cloudpickle.dumps([callback]),
        json.dumps(spec.to_record()).encode(),
    ):
        assert b"s3cret" not in blob
    restored = cloudpickle.loads(cloudpickle.dumps(callback))
    assert restored.store_url == masked and secrets.resolve(restored.store_url) == SECRET_URL
    assert secrets.resolve("sqlite:////a/r.db") == "sqlite:////a/r.db"  # nothing to hide: as is
    secrets._REAL.pop(masked)  # a process that never saw --db (e.g. a restored state elsewhere)
    with pytest.raises(VidcolorError) as err:
        secrets.resolve(restored.store_url)
    assert str(err.value).startswith(f"the password of the results database {masked} is not known in this process")
    assert "s3cret" not in str(err.value)


def test_optuna_storage_pickles_without_the_password(tmp_path, monkeypatch):
    """OptunaSearch pickles its Optuna study, storage included, into Tune's storage."""
    import optuna

    from study.tune import secrets
    from study.tune.optuna_storage import study_storage

    storage = study_storage(f"sqlite:///{tmp_path / 'r.db'}")
    storage.url = "postgresql+psycopg://vc:s3cret-pw@db.example/results"  # as if opened on that server
    secrets.remember(storage.url)
    blob = pickle.dumps(storage)
    assert b"s3cret" not in blob and b"postgresql+psycopg://vc:***@db.example/results" in blob
    seen = []
    monkeypatch.setattr(optuna.storages.RDBStorage, "__setstate__", lambda self, state: seen.append(state["url"]))
    pickle.loads(blob)  # unpickled in the driver: connects with the real URL
    assert seen == ["postgresql+psycopg://vc:s3cret-pw@db.example/results"]


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(480)
def test_study_end_to_end_with_asha_and_failing_trials(ray_cluster, demo_shards, tmp_path):
    """5 trials one at a time: a good one; a worse one (more bins, higher loss) that ASHA stops after
    epoch 1; one that raises (window longer than the clips); one whose loss is NaN; and one after
    them all that still runs. The store has every trial, per-epoch metrics, media (the final ones
    and those of every epoch), errors."""
    path = write_spec(
        tmp_path,
        """
        name = "e2e"
        preset = "exp5"
        num_trials = 5
        max_concurrent = 1
        max_failures = 1
        media_clips = 1
        media_every = 1
        points_to_evaluate = [
            {grid = 40, seq_len = 1, lr = 3e-3},
            {grid = 10, seq_len = 1, lr = 3e-3},
            {grid = 40, seq_len = 9, lr = 3e-3},
            {grid = 40, seq_len = 1, lr = 1e6},
            {grid = 40, seq_len = 2, lr = 1e-3},
        ]
        [search.grid]
        type = "choice"
        choices = [10, 40]
        [search.seq_len]
        type = "int"
        low = 1
        high = 9
        [search.lr]
        type = "float"
        low = 1e-4
        high = 1e6
        log = true
        [objective]
        metric = "train_loss"
        mode = "min"
        [asha]
        grace_period = 1
        reduction_factor = 2
    """,
    )
    db = f"sqlite:///{tmp_path}/results.db"
    result = run_study(
        load_spec(path),
        shards=str(demo_shards),
        db=db,
        storage=str(tmp_path / "ray"),
        address=ray_cluster.address,
        progress_every_s=30,
    )
    store = Store(db)
    trials = store.trials("e2e").set_index("param_lr", drop=False)
    assert len(trials) == 5 and store.get_study("e2e")["status"] == "FINISHED"
    by_point = {(int(r.param_grid), int(r.param_seq_len), float(r.param_lr)): r for r in trials.itertuples()}
    good, worse = by_point[(40, 1, 3e-3)], by_point[(10, 1, 3e-3)]
    raising, nan, last = by_point[(40, 9, 3e-3)], by_point[(40, 1, 1e6)], by_point[(40, 2, 1e-3)]

    assert good.status == "TERMINATED" and good.epochs == 2
    assert worse.status == "STOPPED" and worse.epochs == 1  # ASHA: worse than the rung's best half
    assert worse.objective > good.objective
    assert raising.status == "ERROR" and "seq_len 9" in raising.error and raising.epochs == 0
    assert "longer than the clips" in raising.error
    assert nan.status == "ERROR" and "NaN" in nan.error and nan.epochs == 0
    assert last.status in ("TERMINATED", "STOPPED") and last.epochs >= 1  # the study went on

    epochs = store.epochs("e2e")
    assert set(epochs.trial_id) == {good.trial_id, worse.trial_id, last.trial_id}
    assert epochs.groupby("trial_id").epoch.apply(list)[good.trial_id] == [1, 2]
    for col in ("train_loss", "val_rmse_rgb", "val_colorfulness_ratio", "val_temporal_error"):
        assert epochs[col].notna().all(), col
    media = store.media("e2e")
    for trial in (good, worse, last):  # media for every finished trial, files on disk
        mine = media[media.trial_id == trial.trial_id]
        assert {"gray_mp4", "pred_mp4", "gt_mp4", "pred_png"} <= set(mine.media_type), trial.trial_id
        assert all(Path(p).is_file() for p in mine.path)
        assert Path(trial.checkpoint, "model.safetensors").is_file()
        assert mine.epoch.isna().all()  # the final media: none of the epochs' frames
    during = store.media("e2e", epochs=True)
    for trial in (good, worse, last):  # the frames of every epoch it trained, at that epoch's weights
        mine = during[during.trial_id == trial.trial_id]
        pred = mine[mine.media_type == "pred_png"]
        assert sorted(set(pred.epoch)) == list(range(1, int(trial.epochs) + 1)), trial.trial_id
        assert pred.groupby("epoch").size().nunique() == 1  # the same clip's frames each epoch
        assert set(mine[mine.media_type != "pred_png"].media_type) == {"gray_png", "gt_png"}
        assert set(mine[mine.media_type != "pred_png"].epoch) == {1}  # gray and truth once
        assert all(Path(p).is_file() for p in mine.path)
        assert set(pred[["video_id", "clip"]].itertuples(index=False)) <= set(
            media[media.trial_id == trial.trial_id][["video_id", "clip"]].itertuples(index=False)
        )  # the clips of the final media
    assert set(during.trial_id) == {good.trial_id, worse.trial_id, last.trial_id}  # none for the failed
    assert result.best["trial_id"] == good.trial_id or result.best["objective"] <= good.objective

    import optuna  # the Optuna study lives in the same database under the spec's name

    study = optuna.load_study(study_name="e2e", storage=store.url)
    states = [t.state.name for t in study.trials]
    assert len(states) == 5 and states.count("FAIL") == 2

    with pytest.raises(VidcolorError, match="already has results"):  # a second run must --resume
        run_study(
            load_spec(path), shards=str(demo_shards), db=db, storage=str(tmp_path / "ray"), address=ray_cluster.address
        )


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(480)
def test_killed_driver_resumes_without_rerunning_or_losing(ray_cluster, ray_tools, demo_shards, tmp_path):
    path = write_spec(
        tmp_path,
        """
        name = "resume"
        preset = "exp1"
        num_trials = 3
        max_concurrent = 1
        media_clips = 1
        [search.lr]
        type = "float"
        low = 1e-3
        high = 3e-3
        [objective]
        metric = "train_loss"
        mode = "min"
        [asha]
        enabled = false
    """,
        epochs=3,
        steps=100,  # epochs of a few seconds (a trial starts in ~2 s): the kill lands while trial 2 runs
    )
    db = f"sqlite:///{tmp_path}/results.db"
    storage = str(tmp_path / "ray")
    cmd = [
        ray_tools.VIDCOLOR,
        "tune",
        str(path),
        "--shards",
        str(demo_shards),
        "--db",
        db,
        "--storage",
        storage,
        "--address",
        ray_cluster.address,
    ]
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen(cmd, env=ray_tools.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    store = None
    try:
        deadline = time.monotonic() + 300
        while True:  # wait until trial 1 is finished and trial 2 has reported an epoch
            assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "driver.log").read_text()[-3000:]
            if Path(db[len("sqlite:///") :]).exists():
                store = store or Store(db)
                if store.get_study("resume") is not None:
                    t = store.trials("resume")
                    if (t.status == "TERMINATED").sum() == 1 and ((t.status == "RUNNING") & (t.epochs >= 1)).any():
                        break
            time.sleep(1.0)
        time.sleep(1.5)  # Tune saves its experiment state every second
        os.kill(driver.pid, signal.SIGKILL)  # the driver only: its trial actors die with it
        driver.wait(timeout=30)
    finally:
        ray_tools.stop_tree(driver)
        log.close()
    before = store.trials("resume").set_index("trial_id")
    epochs_before = store.epochs("resume").set_index(["trial_id", "epoch"]).time
    finished = before.index[before.status == "TERMINATED"][0]
    interrupted = before.index[before.status == "RUNNING"][0]
    ckpts_finished = sorted(Path(storage, "resume-train", f"train-{finished}").glob("checkpoint_*"))
    time.sleep(5)  # let Ray clean up the killed driver's actors and placement groups

    run_study(
        load_spec(path),
        shards=str(demo_shards),
        db=db,
        storage=storage,
        address=ray_cluster.address,
        resume=True,
        progress_every_s=30,
    )
    after = store.trials("resume").set_index("trial_id")
    epochs_after = store.epochs("resume").set_index(["trial_id", "epoch"]).time
    assert len(after) == 3 and set(after.status) == {"TERMINATED"}
    assert (after.epochs == 3).all()
    # Nothing finished re-ran: its epochs and checkpoints are the same rows and files as before.
    assert after.loc[finished, "ended"] == before.loc[finished, "ended"]
    assert sorted(Path(storage, "resume-train", f"train-{finished}").glob("checkpoint_*")) == ckpts_finished
    # Nothing was lost: every epoch logged before the kill is still there, untouched.
    for key, t in epochs_before.items():
        assert epochs_after[key] == t, key
    # The interrupted trial went on from its last checkpoint: its first epoch was not trained again.
    assert epochs_after[(interrupted, 1)] == epochs_before[(interrupted, 1)]
    assert store.get_study("resume")["status"] == "FINISHED"


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(480)
def test_a_leaked_placement_group_cannot_stall_a_study(ray_cluster, demo_shards, tmp_path, caplog):
    """8 trials on the head's 2 CPUs, ASHA stopping most, while a placement group with nothing in
    it holds 1 CPU, as a stopped trial's Train run leaves one behind (ray-project/ray#54305): a
    trial needs 1.1 CPUs, so the study would wait for good. It reports the stall, reclaims the
    group and finishes every trial."""
    import logging

    import ray
    from ray.util.placement_group import placement_group, placement_group_table

    path = write_spec(
        tmp_path,
        """
        name = "leak"
        preset = "exp1"
        num_trials = 8
        max_concurrent = 1
        media_clips = 0
        # a good one first, then each worse than all before it: ASHA stops those after epoch 1
        points_to_evaluate = [{lr = 3e-3}, {lr = 7e-5}, {lr = 6e-5}, {lr = 5e-5},
                              {lr = 4e-5}, {lr = 3e-5}, {lr = 2e-5}, {lr = 1e-5}]
        [search.lr]
        type = "float"
        low = 1e-5
        high = 1e-2
        log = true
        [objective]
        metric = "train_loss"
        mode = "min"
        [asha]
        grace_period = 1
        reduction_factor = 4
    """,
    )
    db = f"sqlite:///{tmp_path}/results.db"
    ray.init(address=ray_cluster.address, log_to_driver=False)
    try:
        leaked = placement_group([{"CPU": 1.0}])
        ray.get(leaked.ready(), timeout=60)
        with caplog.at_level(logging.WARNING, logger="study.tune.reclaim"):
            run_study(
                load_spec(path),
                shards=str(demo_shards),
                db=db,
                storage=str(tmp_path / "ray"),
                address=ray_cluster.address,
                media=False,
                progress_every_s=60,
                stall_after_s=20,
            )
        assert placement_group_table()[leaked.id.hex()]["state"] == "REMOVED"
    finally:
        ray.shutdown()
    assert "no progress for" in caplog.text and f"reclaimed placement group {leaked.id.hex()}" in caplog.text
    trials = Store(db).trials("leak")
    assert len(trials) == 8 and set(trials.status) <= {"TERMINATED", "STOPPED"}, trials[["trial_id", "status"]]
    assert (trials.status == "STOPPED").sum() >= 5  # ASHA stopped most of them after epoch 1
