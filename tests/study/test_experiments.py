"""`vidcolor experiments` without training: the chain's checks, exp3's ensemble, the evaluation of a
checkpoint and the summary table (training through Ray is covered by tests/study/train)."""

from __future__ import annotations

import json

import pytest
import torch

from models.checkpoint import load_checkpoint, save_checkpoint
from models.ensemble import Ensemble
from models.errors import VidcolorError
from models.gamut import ABGamut
from models.model import create_model
from models.presets import get_preset
from study.evaluation.evaluate import evaluate_checkpoint, open_split
from study.experiments import build_ensemble, check_inputs, experiments_table, parse_only
from study.report import write_json


def _keep(out, name):
    (out / name / "best").mkdir(parents=True)
    (out / name / "best" / "config.json").write_text("{}")


def test_parse_only_orders_and_refuses():
    assert parse_only("exp3,exp1") == ["exp1", "exp3"] and parse_only("exp6") == ["exp6"]
    assert parse_only(None) == ["exp1", "exp2", "exp3", "exp4", "exp5", "exp6"]
    with pytest.raises(VidcolorError, match=r"unknown experiment\(s\) 'exp7'"):
        parse_only("exp1,exp7")


def test_check_inputs_before_anything_trains(tmp_path):
    check_inputs(["exp1", "exp2", "exp3", "exp4", "exp5", "exp6"], tmp_path, None)  # the full chain feeds itself
    with pytest.raises(VidcolorError, match="exp6 without --pretrained needs exp2's model"):
        check_inputs(["exp6"], tmp_path, None)  # exp6 starts from exp2's model like exp4 and exp5
    with pytest.raises(VidcolorError, match="exp3 needs exp1's model: run it too"):
        check_inputs(["exp3"], tmp_path, None)
    with pytest.raises(VidcolorError, match="exp5 without --pretrained needs exp2's model"):
        check_inputs(["exp5"], tmp_path, None)
    with pytest.raises(VidcolorError, match="--pretrained: checkpoint folder .*nope does not exist"):
        check_inputs(["exp4"], tmp_path, str(tmp_path / "nope"))
    check_inputs(["exp4", "exp5"], tmp_path, str(tmp_path))  # --pretrained replaces exp2
    _keep(tmp_path, "exp1")
    with pytest.raises(VidcolorError, match="exp3 needs exp2's model"):
        check_inputs(["exp3"], tmp_path, None)
    _keep(tmp_path, "exp2")
    check_inputs(["exp3", "exp4"], tmp_path, None)  # both kept from an earlier run


def test_experiments_table_by_hand():
    gray = {
        "mean": {
            "rmse_rgb": 20.0,
            "rmse_ratio": 1.0,
            "psnr": 22.0,
            "ssim": 0.9,
            "colorfulness_ratio": 0.0,
            "colorfulness_gap": 1.0,
            "temporal_error": 0.5,
            "cdc": 0.0012,
            "added_cdc": 0.0,
            "warp_error": 0.0004,
            "added_warp": 0.0,
        }
    }
    results = {
        "experiments": {
            "exp1": {
                "mean": {
                    "rmse_rgb": 12.3456,
                    "rmse_ratio": 0.61728,
                    "psnr": 25.5,
                    "ssim": 0.95,
                    "colorfulness_ratio": 0.5,
                    "colorfulness_gap": 0.5,
                    "temporal_error": 1.25,
                    "cdc": 0.002,
                    "added_cdc": 0.6667,
                    "warp_error": 0.001,
                    "added_warp": 1.5,
                },
                "num_frames": 48,
                "gray": gray,
            },
            "exp3": {"mean": {"rmse_rgb": 10.0, "psnr": float("nan")}, "num_frames": 48},
        }
    }
    lines = experiments_table(results).splitlines()
    assert lines[0].split() == [
        "exp",
        "RMSE",
        "RMSE/gray",
        "PSNR",
        "SSIM",
        "colorful",
        "cf",
        "gap",
        "temporal",
        "CDC",
        "+CDC",
        "warp",
        "err",
        "+warp",
        "frames",
    ]
    assert lines[0].index("RMSE") + len("RMSE") == lines[2].index("12.346") + len("12.346")  # right-aligned
    assert lines[2].split() == [
        "exp1",
        "12.346",
        "0.617",
        "25.500",
        "0.950",
        "0.500",
        "0.500",
        "1.250",
        "0.002",
        "0.667",
        "0.001",
        "1.500",
        "48",
    ]
    assert lines[3].split() == ["exp3", "10.000", *["-"] * 10, "48"]  # NaN and missing
    # after a rule, the gray baseline (ab = 0 on the same videos): the reference of RMSE/gray
    assert set(lines[4]) <= {"-", " "} and lines[5].split() == [
        "gray",
        "(ab=0)",
        "20.000",
        "1.000",
        "22.000",
        "0.900",
        "0.000",
        "1.000",
        "0.500",
        "0.0012",
        "0.000",
        "0.0004",
        "0.000",
        "48",
    ]
    assert len(lines) == 6 and len({len(ln) for ln in lines[:2]}) == 1
    assert experiments_table({"experiments": {}}).splitlines()[0].startswith("exp  RMSE")


def test_build_ensemble_and_evaluate_checkpoint(demo_shards, tiny_checkpoint, tmp_path):
    """exp3 from two saved members keeps their frame size; its evaluation document is strict JSON
    and the same numbers come out at any batch size."""
    torch.manual_seed(1)
    config = get_preset("exp1").replace(size="tiny")
    gamut = ABGamut(config.grid)
    save_checkpoint(tmp_path / "exp1", create_model(config, gamut), config, gamut, frame_size=64)
    save_checkpoint(
        tmp_path / "exp2",
        load_checkpoint(tiny_checkpoint).model,
        get_preset("exp2").replace(size="tiny"),
        gamut,
        frame_size=64,
    )
    folder = build_ensemble([tmp_path / "exp1", tmp_path / "exp2"], tmp_path / "exp3" / "best")
    loaded = load_checkpoint(folder)
    assert isinstance(loaded.model, Ensemble) and loaded.config.name == "exp3" and loaded.frame_size == 64

    doc = evaluate_checkpoint(folder, demo_shards, "test", batch_size=3, device="cpu")
    assert doc["split"] == "test" and doc["device"] == "cpu" and doc["config"]["name"] == "exp3"
    assert doc["num_frames"] == open_split(demo_shards, "test").num_frames("test") and 0 < doc["mean"]["rmse_rgb"] < 255
    again = evaluate_checkpoint(folder, demo_shards, "test", batch_size=1, device="cpu")
    assert again["mean"]["rmse_rgb"] == pytest.approx(doc["mean"]["rmse_rgb"], rel=1e-5)
    written = json.loads(write_json(tmp_path / "eval.json", doc).read_text())  # strict JSON
    assert written["mean"]["rmse_rgb"] == pytest.approx(doc["mean"]["rmse_rgb"]) and written["checkpoint"] == str(
        folder
    )

    with pytest.raises(VidcolorError, match=r"has no 'nope' split \(it has: .*test"):
        evaluate_checkpoint(folder, demo_shards, "nope", device="cpu")
    with pytest.raises(VidcolorError, match="--batch-size must be at least 1"):
        evaluate_checkpoint(folder, demo_shards, batch_size=0)


def test_run_experiments_chain_without_ray(demo_shards, tmp_path, fake_training, capsys):
    """`vidcolor experiments` with training replaced by saving an untrained model: the chain order,
    exp4 starting from exp2's model, exp3 assembled, the printed table and the JSON figures."""
    import argparse

    from study.experiments import main

    out, figures = tmp_path / "run", tmp_path / "figures.json"
    args = argparse.Namespace(
        shards=str(demo_shards),
        out=str(out),
        set=["size=tiny", "epochs=1"],
        pretrained=None,
        only="exp4,exp3,exp2,exp1",
        json=str(figures),
        split="test",
        test_shards=None,
    )
    assert main(args) == 0
    trained = [(c.experiment.name, c.experiment.pretrained) for c in fake_training]
    assert trained == [("exp1", None), ("exp2", None), ("exp4", str(out / "exp2" / "best"))]
    doc = json.loads(figures.read_text())
    assert list(doc["experiments"]) == ["exp1", "exp2", "exp3", "exp4"] and doc["settings"]["size"] == "tiny"
    assert doc["experiments"]["exp3"]["val"] is None and doc["experiments"]["exp1"]["val"] == {"val_rmse_rgb": 1.0}
    assert doc["experiments"]["exp3"]["checkpoint"] == str(out / "exp3" / "best")
    assert doc["shards"] == doc["test_shards"] == str(demo_shards) and doc["split"] == "test"
    assert all(e["train"]["epochs"] == 1 and e["num_frames"] > 0 for e in doc["experiments"].values())
    printed = capsys.readouterr().out
    rows = [ln.split() for ln in printed.splitlines() if ln.startswith("exp")]
    assert [r[0] for r in rows[1:]] == ["exp1", "exp2", "exp3", "exp4"]
    assert rows[1][1] == f"{doc['experiments']['exp1']['mean']['rmse_rgb']:.3f}" and f"wrote {figures}" in printed


def test_earlier_runs_and_figures_are_refused_unless_overwrite(demo_shards, tmp_path, fake_training, capsys):
    """A chosen experiment's folder holding a run, and an existing --json file: refused before
    anything trains, nothing changed; --overwrite empties that folder before the experiment is
    redone and replaces the file, and the folders of experiments not chosen are kept."""
    from study.cli import main as cli

    out, figures = tmp_path / "run", tmp_path / "figures.json"
    (out / "exp1" / "ray" / "train").mkdir(parents=True)
    (out / "exp1" / "ray" / "train" / "state.json").write_text("an earlier run")
    _keep(out, "exp2")  # not chosen: an input of others, kept as it is
    figures.write_text("my figures")

    def snapshot():
        return {
            str(p.relative_to(tmp_path)): p.read_bytes() if p.is_file() else None for p in sorted(tmp_path.rglob("*"))
        }

    before = snapshot()
    base = ["experiments", "--shards", str(demo_shards), "--out", str(out), "--only", "exp1", "--set", "size=tiny"]
    assert cli([*base, "--json", str(figures)]) == 2
    assert f"error: --json {figures}: exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert cli([*base, "--json", str(tmp_path / "new.json")]) == 2
    assert (
        f"error: --out {out / 'exp1'}: exists and is not empty (ray); pass --overwrite to replace it"
        in capsys.readouterr().err
    )
    assert snapshot() == before and not fake_training
    assert cli([*base, "--json", str(figures), "--overwrite"]) == 0
    assert [c.found for c in fake_training] == [[]]  # the earlier run was gone before exp1 trained again
    assert sorted(p.name for p in (out / "exp1").iterdir()) == ["best"]
    assert (out / "exp2" / "best" / "config.json").read_text() == "{}"
    assert list(json.loads(figures.read_text())["experiments"]) == ["exp1"]


@pytest.fixture()
def test_only(demo_videos, tmp_path):
    """A benchmark set of two test videos only (``--split 0,0,100``; kept small for the CPU)."""
    from data_shards.writer import write_shard_set

    write_shard_set(
        [str(demo_videos / "scene_002.mp4"), str(demo_videos / "scene_005.mp4")],
        tmp_path / "bench",
        size=32,
        clip_len=8,
        split="0,0,100",
        show_progress=False,
    )
    return tmp_path / "bench"


def test_train_on_one_set_evaluate_on_another(demo_shards, test_only, tmp_path, fake_training, capsys):
    """``--test-shards``: trained on the demo set, scored on the benchmark set's test split; the
    JSON records both sets and the split."""
    import argparse

    from study.experiments import main

    figures = tmp_path / "figures.json"
    args = argparse.Namespace(
        shards=str(demo_shards),
        out=str(tmp_path / "run"),
        set=["size=tiny"],
        pretrained=None,
        only="exp1",
        json=str(figures),
        split="test",
        test_shards=str(test_only),
    )
    assert main(args) == 0 and [c.shards for c in fake_training] == [str(demo_shards)]
    doc = json.loads(figures.read_text())
    assert (doc["shards"], doc["test_shards"], doc["split"]) == (str(demo_shards), str(test_only), "test")
    exp1 = doc["experiments"]["exp1"]
    assert sorted(v["video_id"] for v in exp1["videos"]) == ["scene_002", "scene_005"] and exp1["num_frames"] == 48
    assert f"seed experiments on the test split of {test_only}, trained on {demo_shards}" in capsys.readouterr().out


def test_experiments_refuse_bad_sets_before_ray(demo_shards, test_only, tmp_path, monkeypatch):
    """A training set without train, or a test set without the split, fail before Ray starts."""
    import study.experiments
    from study.experiments import run_experiments

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(study.experiments, "init_ray", refuse)
    with pytest.raises(VidcolorError) as err:
        run_experiments(str(test_only), tmp_path / "run", ["size=tiny"], only="exp1")
    assert str(err.value) == (
        f"--shards {test_only}: no 'train' split (it has: test); make one with vidcolor shard "
        "--split ... or --split-file"
    )
    with pytest.raises(VidcolorError, match=f"shard set {test_only} has no 'val' split \\(it has: test\\)"):
        run_experiments(str(demo_shards), tmp_path / "run", [], only="exp1", test_shards=str(test_only), split="val")
    with pytest.raises(VidcolorError, match=f"^--shards {demo_shards}: no 'nope' split for validation"):
        run_experiments(str(demo_shards), tmp_path / "run", ["val_split=nope"], test_shards=str(test_only))
    assert not (tmp_path / "run").exists()


def test_stabilize_adds_a_row_per_experiment_on_the_same_models(demo_shards, tmp_path, fake_training):
    """`experiments --stabilize S`: each experiment gets a row `{name}+stab`, the same checkpoint scored
    through the filter on the same frames (its own figures, as `evaluate --stabilize` gives them), never
    chosen on validation; a strength outside [0, 1] is refused before anything trains."""
    from study.experiments import run_experiments

    with pytest.raises(VidcolorError, match=r"--stabilize"):
        run_experiments(str(demo_shards), tmp_path / "bad", ["size=tiny"], only="exp1", stabilize=1.5)
    assert not (tmp_path / "bad").exists()

    doc = run_experiments(str(demo_shards), tmp_path / "run", ["size=tiny", "epochs=1"], only="exp1", stabilize=0.7)
    assert list(doc["experiments"]) == ["exp1", "exp1+stab"] and doc["stabilize"] == 0.7
    plain, steady = doc["experiments"]["exp1"], doc["experiments"]["exp1+stab"]
    assert steady["checkpoint"] == plain["checkpoint"] and steady["val"] is None and steady["stabilize"] == 0.7
    assert steady["num_frames"] == plain["num_frames"] and steady["gray"]["mean"] == plain["gray"]["mean"]
    direct = evaluate_checkpoint(plain["checkpoint"], str(demo_shards), split="test", stabilize=0.7)
    assert steady["mean"] == direct["mean"]
