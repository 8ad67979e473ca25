"""The Ray Train loop: local mode (in-process) for the loop itself, a real 2-worker DDP run through
``vidcolor train`` on the session's Ray cluster."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from models.checkpoint import load_checkpoint
from models.gamut import ABGamut
from models.model import create_model
from models.presets import get_preset
from study.config.train import TrainConfig
from study.train.launch import Placement, make_trainer, raise_for_error
from study.train.loop import TRAIN_STATE_FILE, TrainingError
from study.train.optim_state import TRAIN_WEIGHTS_FILE, load_optimizer, save_optimizer
from study.train.run_state import restore

pytestmark = pytest.mark.timeout(300)

LOCAL = Placement(workers=0)  # Ray Train's local mode: the loop runs in this process

TINY = TrainConfig(
    epochs=2, steps_per_epoch=2, batch_size=2, val_batches=1, val_batch_size=2, lr=3e-3, metric="train_loss"
)


def test_optimizer_state_round_trip(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.95), weight_decay=1e-3)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 3)).pow(2).sum().backward()
        opt.step()
    save_optimizer(opt, tmp_path)
    fresh = torch.optim.Adam(model.parameters(), lr=0.5)
    assert load_optimizer(fresh, tmp_path)
    a, b = opt.state_dict(), fresh.state_dict()
    assert b["param_groups"][0]["lr"] == 0.01 and tuple(b["param_groups"][0]["betas"]) == (0.8, 0.95)
    assert a["state"].keys() == b["state"].keys()
    for pid in a["state"]:
        for name, value in a["state"][pid].items():
            assert torch.equal(value, b["state"][pid][name]), (pid, name)
    assert not load_optimizer(fresh, tmp_path / "missing")


def test_local_mode_keeps_the_best_epoch_not_the_last(demo_shards, tmp_path):
    """Ray Train's local mode ranks no checkpoints: the loop reports one only when the epoch
    improved. A cosine schedule makes each epoch's last lr lower, so with metric lr and mode max
    epoch 1 is the best of 3; run_training publishes it and leaves no temporary folder behind."""
    from study.train.launch import run_training

    train = TINY.replace(epochs=3, schedule="cosine", metric="lr", mode="max")
    result = make_trainer(get_preset("exp1").replace(grid=40), train, demo_shards, LOCAL).fit()
    raise_for_error(result)
    assert result.metrics["epoch"] == 3
    assert json.loads(Path(result.checkpoint.path, "train_state.json").read_text())["epoch"] == 1
    assert result.metrics["best_lr"] == pytest.approx(train.lr_at(train.steps_per_epoch - 1))
    import tempfile

    before = set(Path(tempfile.gettempdir()).glob("vidcolor-ckpt-*"))
    out = run_training(get_preset("exp1").replace(grid=40), train, str(demo_shards), tmp_path / "run", workers=0)
    state = json.loads(Path(out["best"], "train_state.json").read_text())
    assert state["epoch"] == 1 and state["best"] == pytest.approx(train.lr_at(1))
    assert set(Path(tempfile.gettempdir()).glob("vidcolor-ckpt-*")) <= before  # superseded and copied: removed


def test_local_mode_trains_reports_and_checkpoints(demo_shards, tmp_path):
    experiment = get_preset("exp5").replace(transfer=False, seq_len=2, grid=20)
    result = make_trainer(experiment, TINY.replace(ema=0.0), demo_shards, LOCAL).fit()  # without the average
    raise_for_error(result)
    metrics = result.metrics
    assert metrics["epoch"] == 2 and metrics["world_size"] == 1
    assert not (Path(result.checkpoint.path) / TRAIN_WEIGHTS_FILE).exists()  # the model is the trained weights
    for key in (
        "train_loss",
        "l_cl",
        "l_seq",
        "val_rmse_rgb",
        "val_colorfulness_ratio",
        "val_temporal_error",
        "best_train_loss",
    ):
        assert isinstance(metrics[key], float), key
    assert metrics["val_frames"] > 0 and metrics["l_seq"] > 0  # the ConvLSTM's loss is in the mix
    # what the spec accepts as an objective is exactly what an epoch reports (beside bookkeeping)
    from study.config.spec import reported_metrics

    assert sorted(set(metrics) - {"epoch", "best_train_loss"}) == list(reported_metrics())
    assert metrics["best_train_loss"] <= result.return_value["last"]["train_loss"] + 1e-9

    folder = result.checkpoint.path
    loaded = load_checkpoint(folder)
    assert loaded.config == experiment and loaded.gamut.num_bins == ABGamut(20).num_bins
    state = json.loads((Path(folder) / TRAIN_STATE_FILE).read_text())
    # the result's checkpoint is the best epoch's (local mode: the loop reports the best folder again)
    assert state["metric"] == "train_loss" and state["best"] == pytest.approx(metrics["best_train_loss"])
    assert state["epoch"] in (1, 2) and state["metrics"]["train_loss"] == pytest.approx(metrics["best_train_loss"])
    assert not list(Path(folder).glob("*.pt")) and not list(Path(folder).glob("*.pkl"))  # nothing pickled

    # Resuming restores the epoch counter, the weights and the optimizer's moments exactly.
    gamut = ABGamut(20)
    model = create_model(experiment, gamut)
    optimizer = torch.optim.Adam(model.parameters(), lr=TINY.lr)
    start, best = restore(folder, model, optimizer, torch.device("cpu"))
    assert start == state["epoch"] and best == pytest.approx(metrics["best_train_loss"])
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    assert all("exp_avg" in s for s in optimizer.state.values()) and len(optimizer.state) > 0


def test_weight_average_is_what_is_checkpointed_and_resume_restores_both(demo_shards):
    """train.ema: validation and the checkpoint's model are the average; the trained weights and
    the average's count sit beside it, so a resumed run gets both back exactly."""
    from torch.optim.swa_utils import AveragedModel

    from study.train.optim_state import ema_avg_fn

    experiment = get_preset("exp1").replace(grid=40)
    train = TINY.replace(ema=0.9, epochs=1, steps_per_epoch=3)
    result = make_trainer(experiment, train, demo_shards, LOCAL).fit()
    raise_for_error(result)
    folder = Path(result.checkpoint.path)
    from safetensors.torch import load_file

    trained = load_file(str(folder / TRAIN_WEIGHTS_FILE))
    averaged = load_checkpoint(folder).model.state_dict()
    moved = [k for k in averaged if averaged[k].is_floating_point() and not torch.equal(averaged[k], trained[k])]
    assert moved  # the average lags the trained weights: they differ after 3 steps with decay 0.9

    model = create_model(experiment, ABGamut(40))
    ema = AveragedModel(model, multi_avg_fn=ema_avg_fn(0.9), use_buffers=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=train.lr)
    start, _ = restore(folder, model, optimizer, torch.device("cpu"), ema)
    assert start == 1 and int(ema.n_averaged) == 3  # one average update per step
    for k, v in trained.items():
        assert torch.equal(model.state_dict()[k], v), k
    for k, v in averaged.items():
        assert torch.equal(ema.module.state_dict()[k], v), k
    with pytest.raises(Exception, match="ema: must be in"):
        TINY.replace(ema=1.0)
    # resumed with ema=0 (the average turned off): the trained weights, not the average, go on training
    model = create_model(experiment, ABGamut(40))
    restore(folder, model, torch.optim.Adam(model.parameters(), lr=train.lr), torch.device("cpu"))
    for k, v in trained.items():
        assert torch.equal(model.state_dict()[k], v), k


def test_weight_average_warms_up_by_hand():
    """The average's n-th update uses decay min(decay, 1 - (1 + n) ** -0.75): the first update
    copies, the next ones follow the warm-up until it reaches the set decay; integer buffers are
    copied, never averaged."""
    from torch.optim.swa_utils import AveragedModel

    from study.train.optim_state import ema_avg_fn, ema_decay

    assert ema_decay(0.995, 1) == pytest.approx(1 - 2**-0.75)  # 0.405
    assert ema_decay(0.995, 40) == pytest.approx(1 - 41**-0.75)  # 0.938: a 40-step run averages its last steps
    assert ema_decay(0.995, 1000) == pytest.approx(1 - 1001**-0.75)  # 0.9944
    assert ema_decay(0.995, 2000) == 0.995  # warmed up: 1 - 2001 ** -0.75 = 0.9967 > 0.995

    net = torch.nn.BatchNorm1d(1)  # a weight and bias (floats) and num_batches_tracked (an integer buffer)
    ema = AveragedModel(net, multi_avg_fn=ema_avg_fn(0.5), use_buffers=True)
    expected = None
    for step, value in enumerate([1.0, 3.0, 7.0]):
        with torch.no_grad():
            net.weight.fill_(value)
            net.num_batches_tracked.fill_(10 * (step + 1))
        ema.update_parameters(net)
        if expected is None:
            expected = value  # the first update copies
        else:
            d = min(0.5, 1 - (1 + step) ** -0.75)  # n_averaged = step before this update
            expected = d * expected + (1 - d) * value
        assert float(ema.module.weight.detach()) == pytest.approx(expected)
        assert int(ema.module.num_batches_tracked) == 10 * (step + 1)
    # by hand: 1 -> 0.4054 * 1 + 0.5946 * 3 = 2.189 -> 0.5 * 2.189 + 0.5 * 7 = 4.595
    assert float(ema.module.weight.detach()) == pytest.approx(4.5946, abs=1e-3)


def test_nan_loss_is_a_clear_error_not_a_retry(demo_shards):
    experiment = get_preset("exp1").replace(grid=40)
    result = make_trainer(experiment, TINY.replace(lr=1e6, steps_per_epoch=4), demo_shards, LOCAL).fit()
    with pytest.raises(TrainingError, match="NaN or infinite at epoch 1"):
        raise_for_error(result)


def test_exp6_trains_with_the_temporal_loss(demo_shards):
    experiment = get_preset("exp6").replace(transfer=False, seq_len=2, grid=20, temporal_weight=2.0)
    train = TINY.replace(epochs=1, steps_per_epoch=1, ema=0.0)
    result = make_trainer(experiment, train, demo_shards, LOCAL).fit()
    raise_for_error(result)
    m = result.metrics
    assert m["l_temp"] > 0 and m["l_seq"] > 0
    lam = experiment.lam
    # the step's loss is the mix of its three terms (one step: the means are that step's values)
    assert m["train_loss"] == pytest.approx(lam * m["l_cl"] + (1 - lam) * m["l_seq"] + 2.0 * m["l_temp"], rel=1e-5)
    plain = make_trainer(get_preset("exp5").replace(transfer=False, seq_len=2, grid=20), train, demo_shards, LOCAL)
    result = plain.fit()
    raise_for_error(result)
    assert result.metrics["l_temp"] == 0.0  # temporal_weight 0: no L_temp (and no flows computed)


def test_window_longer_than_clips_is_reported(demo_shards):
    experiment = get_preset("exp5").replace(transfer=False, seq_len=9)  # window 10 > clip_len 8
    result = make_trainer(experiment, TINY, demo_shards, LOCAL).fit()
    with pytest.raises(TrainingError, match="window"):
        raise_for_error(result)


def test_transfer_preset_needs_pretrained(demo_shards, tmp_path):
    result = make_trainer(get_preset("exp4"), TINY, demo_shards, LOCAL).fit()
    with pytest.raises(TrainingError, match="pretrained"):
        raise_for_error(result)


@pytest.mark.ray
@pytest.mark.slow
def test_vidcolor_train_ddp_two_workers(ray_cluster, ray_tools, demo_shards, tmp_path):
    """`vidcolor train` with 2 DDP workers on the Ray cluster leaves OUT/best/ and a summary; an
    exp4 run then starts from it (transfer learning)."""
    out = tmp_path / "run"
    cmd = [
        ray_tools.VIDCOLOR,
        "train",
        "--shards",
        str(demo_shards),
        "--preset",
        "exp2",
        "--out",
        str(out),
        "--workers",
        "2",
        "--address",
        ray_cluster.address,
        "--set",
        "size=tiny",
        "--set",
        "epochs=2",
        "--set",
        "steps_per_epoch=2",
        "--set",
        "batch_size=2",
        "--set",
        "val_batches=1",
        "--set",
        "val_batch_size=2",
        "--set",
        "grid=40",
    ]
    proc = subprocess.run(cmd, env=ray_tools.env(), capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "best checkpoint:" in proc.stdout and "val_rmse_rgb" in proc.stdout
    best = load_checkpoint(out / "best")
    assert best.config.name == "exp2" and best.config.grid == 40
    meta = json.loads((out / "best" / TRAIN_STATE_FILE).read_text())
    assert meta["epoch"] in (1, 2)
    epochs = sorted(json.loads(p.read_text())["epoch"] for p in out.glob("ray/train/checkpoint_*/train_state.json"))
    assert epochs[-1] == 2  # the latest checkpoint is kept beside the best one
    assert "world_size" in proc.stdout and " 2" in proc.stdout.split("world_size", 1)[1].splitlines()[0]


def test_experiments_chain_ensemble_and_table(demo_shards, tmp_path):
    """exp3 = the ensemble of the exp1 and exp2 models, evaluated on the test split like the others."""
    from models.ensemble import Ensemble
    from study.experiments import build_ensemble, evaluate_checkpoint, experiments_table, parse_only

    assert parse_only("exp3,exp1") == ["exp1", "exp3"] and parse_only(None)[-1] == "exp6"
    with pytest.raises(Exception, match="exp7"):
        parse_only("exp1,exp7")
    members = []
    for name in ("exp1", "exp2"):
        result = make_trainer(get_preset(name).replace(grid=40), TINY.replace(epochs=1), demo_shards, LOCAL).fit()
        raise_for_error(result)
        members.append(Path(result.checkpoint.path))
    folder = build_ensemble(members, tmp_path / "exp3" / "best")
    loaded = load_checkpoint(folder)
    assert isinstance(loaded.model, Ensemble) and loaded.config.name == "exp3"
    assert loaded.frame_size == 64 == load_checkpoint(members[0]).frame_size  # the shard set's size
    figures = {
        name: evaluate_checkpoint(path, str(demo_shards), split="test")
        for name, path in (("exp1", members[0]), ("exp2", members[1]), ("exp3", folder))
    }
    for f in figures.values():
        assert f["num_frames"] > 0 and 0 < f["mean"]["rmse_rgb"] < 255
    text = experiments_table(
        {"experiments": {k: {"mean": v["mean"], "num_frames": v["num_frames"]} for k, v in figures.items()}}
    )
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["exp", "RMSE"] and [ln.split()[0] for ln in lines[2:]] == ["exp1", "exp2", "exp3"]
    assert f"{figures['exp3']['mean']['rmse_rgb']:.3f}" in lines[4]


def test_trained_checkpoint_colorizes_at_its_frame_size_without_the_shard_set(
    demo_shards, demo_videos, tmp_path, caplog
):
    """Training records the shard set's frame size in config.json; colorizing needs nothing else,
    so a 64 px model (and an ensemble of two) still works at 64 px once the shard set is gone."""
    import logging
    import shutil

    from study.cli import main as cli
    from study.experiments import build_ensemble

    shards = tmp_path / "shards"
    shutil.copytree(demo_shards, shards)
    members = []
    for name in ("exp1", "exp2"):
        result = make_trainer(get_preset(name).replace(grid=40), TINY.replace(epochs=1), str(shards), LOCAL).fit()
        raise_for_error(result)
        members.append(Path(result.checkpoint.path))
    ensemble = build_ensemble(members, tmp_path / "exp3")
    shutil.rmtree(shards)  # moved away: nothing may read the manifest now
    film = sorted(demo_videos.glob("scene_*.mp4"))[0]
    for ckpt in (members[0], ensemble):
        assert json.loads((Path(ckpt) / "config.json").read_text())["frame_size"] == 64
        out = tmp_path / f"{Path(ckpt).name}_color.mp4"
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="study.colorize.command"):
            assert cli(["colorize", str(ckpt), str(film), str(out)]) == 0
        assert "at working size 64 " in caplog.text and out.is_file()


def test_frame_size_the_checkpoint_cannot_record_fails_before_training(demo_shards, tmp_path):
    """Checked on every rank in setup, not first when rank 0 saves the epoch's checkpoint (the
    other ranks would then wait in ray.train.report for good)."""
    import shutil

    shards = tmp_path / "shards"
    shutil.copytree(demo_shards, shards)
    manifest = json.loads((shards / "manifest.json").read_text())
    manifest["size"] = 5000
    (shards / "manifest.json").write_text(json.dumps(manifest))
    result = make_trainer(get_preset("exp1").replace(grid=40), TINY, str(shards), LOCAL).fit()
    with pytest.raises(TrainingError, match=r"size: must be an integer in \[8, 4096\], got 5000"):
        raise_for_error(result)
    assert result.checkpoint is None  # not one epoch was trained


def test_cli_train_out_on_a_file_is_a_clear_error_before_any_work(demo_shards, tmp_path, capsys):
    from study.cli import main as cli

    existing = tmp_path / "results.txt"
    existing.write_bytes(b"not a run folder")
    before = (existing.read_bytes(), existing.stat().st_mtime_ns)
    base = ["train", "--shards", str(demo_shards), "--preset", "exp1", "--workers", "0"]
    assert cli([*base, "--out", str(existing)]) == 2
    err = capsys.readouterr().err
    assert f"error: --out {existing}: exists and is a file, not a folder" in err and "Traceback" not in err
    assert cli([*base, "--out", str(existing / "run")]) == 2
    assert f"error: --out {existing / 'run'}: {existing} is a file, not a folder" in capsys.readouterr().err
    assert (existing.read_bytes(), existing.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.txt"]


def test_cli_train_refuses_an_earlier_run_unless_resume_or_overwrite(demo_shards, tmp_path, monkeypatch, capsys):
    """An earlier run in --out is refused before any work (nothing changed); --resume needs a run
    to continue; --overwrite deletes the earlier run, after the shard set's checks, before training."""
    import study.train.launch
    from study.cli import main as cli

    run = tmp_path / "run"
    (run / "ray" / "train").mkdir(parents=True)
    (run / "ray" / "train" / "checkpoint.json").write_text("epoch 3")
    (run / "best").mkdir()
    (run / "best" / "config.json").write_text("{}")

    def snapshot():
        return {
            str(p.relative_to(tmp_path)): p.read_bytes() if p.is_file() else None for p in sorted(tmp_path.rglob("*"))
        }

    seen = []

    def trainer(*args, storage_path, **kwargs):
        seen.append(snapshot())
        raise KeyboardInterrupt  # stop here: training itself is tested above

    monkeypatch.setattr(study.train.launch, "make_trainer", trainer)
    before = snapshot()
    base = ["train", "--shards", str(demo_shards), "--preset", "exp1", "--workers", "0", "--out", str(run)]
    assert cli(base) == 2
    err = capsys.readouterr().err
    assert f"error: --out {run}: exists and is not empty (best, ray); pass --overwrite to replace it" in err
    assert cli([*base, "--resume", "--overwrite"]) == 2
    assert "error: --overwrite and --resume: choose one" in capsys.readouterr().err
    assert cli([*base[:-1], str(tmp_path / "new"), "--resume"]) == 2
    assert f"error: --resume: {tmp_path / 'new'} holds no run to continue (no ray/train)" in capsys.readouterr().err
    assert snapshot() == before and seen == []
    assert cli([*base, "--resume"]) == 130  # continues the run in place: nothing deleted
    assert seen.pop() == before
    assert cli([*base, "--overwrite", "--shards", str(tmp_path / "missing")]) == 2  # a bad set: nothing deleted
    assert snapshot() == before
    assert cli([*base, "--overwrite"]) == 130
    assert seen.pop() == {"run": None}  # the earlier run deleted before the new one started


def test_cli_train_negative_workers_is_a_clear_error(demo_shards, tmp_path, capsys):
    from study.cli import main as cli

    out = tmp_path / "run"
    assert cli(["train", "--shards", str(demo_shards), "--preset", "exp1", "--workers", "-1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error: --workers: must be an integer >= 0, got -1" in err and "Traceback" not in err
    assert not out.exists()  # refused before the run folder was made
