"""`vidcolor experiments --seeds N`: the paired bootstrap by hand, the seeds combined and compared
by hand, and the runs' folders, seeds and chain with training replaced by saving an untrained model."""

from __future__ import annotations

import json
import math

import pytest

from models.errors import VidcolorError
from study.experiments import run_experiments, summary
from study.seeds import combine_seeds, differences, paired_bootstrap

NAN = float("nan")


def test_a_constant_difference_has_a_zero_width_interval_at_it():
    assert paired_bootstrap([1.25, 3.25, 0.25], [1.0, 3.0, 0.0]) == (0.25, 0.25, 0.25)


def test_a_symmetric_difference_by_hand():
    """Differences -1 and +1: a resample's mean is -1, 0 or +1 with probabilities 1/4, 1/2, 1/4, so
    the 2.5% and 97.5% quantiles are -1 and +1 and the interval holds 0."""
    diff, low, high = paired_bootstrap([0.0, 2.0], [1.0, 1.0])
    assert (diff, low, high) == (0.0, -1.0, 1.0)
    # one way only: every resample's mean lies in [1, 3]; the mean of the videos is 2
    diff, low, high = paired_bootstrap([2.0, 4.0], [1.0, 1.0])
    assert diff == 2.0 and 1.0 <= low < 2.0 < high <= 3.0
    # an 80% interval of the symmetric case: the 10% and 90% quantiles are still -1 and +1 (1/4 each)
    assert paired_bootstrap([0.0, 2.0], [1.0, 1.0], level=0.8)[1:] == (-1.0, 1.0)


def test_bootstrap_is_repeatable_and_leaves_nan_pairs_out():
    a, b = [0.3, 0.1, 0.7, NAN, 0.2], [0.1, 0.2, 0.2, 0.5, NAN]
    first = paired_bootstrap(a, b)
    assert first == paired_bootstrap(a, b)  # the fixed seed
    assert first[0] == pytest.approx((0.2 - 0.1 + 0.5) / 3)  # the three complete pairs
    spread = [0.01 * ((7 * i) % 23) for i in range(20)]  # 20 videos: the resampling shows
    assert paired_bootstrap(spread, [0.0] * 20, resamples=200) != paired_bootstrap(
        spread, [0.0] * 20, resamples=200, seed=1
    )
    assert all(math.isnan(x) for x in paired_bootstrap([NAN], [1.0]))


def _run(seed_values: dict[str, list[float]], val: float | None = 0.5) -> dict:
    """A seed's entry: per video its rmse_rgb (the other headline metrics follow from it)."""
    videos = [
        {"video_id": vid, "frames": 8, "rmse_rgb": v, "rmse_ratio": v / 10, "added_warp": NAN}
        for vid, v in seed_values.items()
    ]
    mean = {"rmse_rgb": sum(seed_values.values()) / len(seed_values)}
    return {
        "checkpoint": "ck",
        "config": {},
        "train": {},
        "mean": mean,
        "videos": videos,
        "num_frames": 8 * len(videos),
        "gray": {"mean": {"rmse_rgb": 20.0}},
        "val": None if val is None else {"val_rmse_ratio": val, "note": "x"},
        "seconds": 1.0,
    }


def test_seeds_combined_and_compared_by_hand():
    ref = combine_seeds([_run({"a": 10.0, "b": 20.0}, 0.5), _run({"a": 12.0, "b": 22.0}, 0.7)])
    assert ref["mean"]["rmse_rgb"] == 16.0 and ref["sd"]["rmse_rgb"] == pytest.approx(math.sqrt(2.0))
    assert [v["rmse_rgb"] for v in ref["videos"]] == [11.0, 21.0]  # each video's mean over the seeds
    assert ref["val"] == {"val_rmse_ratio": pytest.approx(0.6), "note": "x"} and len(ref["seeds"]) == 2
    assert math.isnan(ref["mean"]["added_warp"]) and ref["seconds"] == 2.0
    # exp2 is 1.5 lower on every video, over the seeds: a zero-width interval at -1.5, excluding 0
    other = combine_seeds([_run({"a": 9.0, "b": 19.0}, None), _run({"a": 10.0, "b": 20.0}, None)])
    assert other["val"] is None
    diffs = differences({"exp1": ref, "exp2": other}, "exp1")
    assert set(diffs) == {"exp2"}
    d = diffs["exp2"]["rmse_rgb"]
    assert (d["diff"], d["low"], d["high"], d["videos"], d["excludes_zero"]) == (-1.5, -1.5, -1.5, 2, True)
    assert diffs["exp2"]["rmse_ratio"]["diff"] == pytest.approx(-0.15)
    assert diffs["exp2"]["added_warp"]["videos"] == 0 and not diffs["exp2"]["added_warp"]["excludes_zero"]

    text = summary({"seeds": 2, "reference": "exp1", "experiments": {"exp1": ref, "exp2": other}, "differences": diffs})
    lines = text.splitlines()
    assert "mean ± sd over 2 seeds (0 ... 1):" in lines
    row = next(ln for ln in lines if ln.startswith("exp1 ") and "±" in ln)
    assert row.split()[:5] == ["exp1", "2", "16.000", "±", "1.414"]
    rmse_diff = next(ln for ln in lines if ln.startswith("exp2 ") and " RMSE " in ln)
    assert rmse_diff.split() == ["exp2", "RMSE", "-1.500", "[-1.500,", "-1.500]", "*"]
    warp_diff = next(ln for ln in lines if ln.startswith("exp2 ") and "+warp" in ln)
    assert warp_diff.split() == ["exp2", "+warp", "-", "-"]  # no video has it: no interval, no mark
    assert any("averaged over the 2 videos" in ln for ln in lines) and max(len(ln) for ln in lines) <= 120
    assert "±" not in summary({"seeds": 1, "experiments": {"exp1": ref}})  # one seed: the plain table


def test_seed_settings_are_checked_before_anything_trains(demo_shards, tmp_path, monkeypatch):
    import study.experiments

    monkeypatch.setattr(study.experiments, "init_ray", lambda **kw: pytest.fail("Ray was started"))
    with pytest.raises(VidcolorError, match="^--seeds must be at least 1, got 0$"):
        run_experiments(str(demo_shards), tmp_path / "run", [], only="exp1", seeds=0)
    with pytest.raises(VidcolorError, match=r"^--seeds 3 trains seeds 0 \.\.\. 2: leave out --set seed=4$"):
        run_experiments(str(demo_shards), tmp_path / "run", ["seed=4"], only="exp1", seeds=3)
    with pytest.raises(VidcolorError, match=r"^--seeds 2 trains seeds 0 \.\.\. 1: leave out --set exp2\.seed=3$"):
        run_experiments(str(demo_shards), tmp_path / "run", ["exp2.seed=3"], only="exp1,exp2", seeds=2)
    with pytest.raises(VidcolorError, match=r"^--set \(for exp3\): field lr: must be > 0, got -1"):
        run_experiments(str(demo_shards), tmp_path / "run", ["size=tiny", "exp3.lr=-1"], only="exp1,exp2,exp3")
    with pytest.raises(VidcolorError, match=r"^--reference exp5: not among the chosen experiments \(exp1, exp2\)$"):
        run_experiments(str(demo_shards), tmp_path / "run", [], only="exp1,exp2", seeds=2, reference="exp5")
    with pytest.raises(VidcolorError, match="exp3 needs exp2's model: run it too .* or keep .*exp2/seed0/best"):
        run_experiments(str(demo_shards), tmp_path / "run", [], only="exp1,exp3", seeds=2)
    assert not (tmp_path / "run").exists()


def test_seeds_train_into_their_folders_chained_by_seed(demo_shards, tmp_path, fake_training, capsys):
    """--seeds 2 with training replaced by saving an untrained model seeded by TrainConfig.seed:
    OUT/expN/seed{k}, exp3 and exp4 built from the same seed's models, the tables and the JSON."""
    from study.cli import main

    fake_training.metrics = lambda train: {"val_rmse_ratio": 0.9 + train.seed / 10}
    out, figures = tmp_path / "run", tmp_path / "figures.json"
    base = ["experiments", "--shards", str(demo_shards), "--out", str(out), "--set", "size=tiny", "--set", "grid=40"]
    assert main([*base, "--only", "exp1,exp2,exp3,exp4", "--seeds", "2", "--json", str(figures)]) == 0
    trained = [
        (c.experiment.name, c.train.seed, c.out.relative_to(out).as_posix(), c.experiment.pretrained)
        for c in fake_training
    ]
    assert trained == [
        ("exp1", 0, "exp1/seed0", None),
        ("exp1", 1, "exp1/seed1", None),
        ("exp2", 0, "exp2/seed0", None),
        ("exp2", 1, "exp2/seed1", None),
        ("exp4", 0, "exp4/seed0", str(out / "exp2" / "seed0" / "best")),
        ("exp4", 1, "exp4/seed1", str(out / "exp2" / "seed1" / "best")),
    ]
    doc = json.loads(figures.read_text())
    assert doc["seeds"] == 2 and doc["reference"] == "exp1"
    exp3 = doc["experiments"]["exp3"]
    assert [s["checkpoint"] for s in exp3["seeds"]] == [str(out / "exp3" / f"seed{k}" / "best") for k in (0, 1)]
    exp1 = doc["experiments"]["exp1"]
    assert [s["train"]["seed"] for s in exp1["seeds"]] == [0, 1]
    assert exp1["val"]["val_rmse_ratio"] == pytest.approx(0.95)  # the mean over the seeds, as bench/real.py chooses
    per_seed = [s["mean"]["rmse_rgb"] for s in exp1["seeds"]]
    assert per_seed[0] != per_seed[1] and exp1["mean"]["rmse_rgb"] == pytest.approx(sum(per_seed) / 2)
    assert set(doc["differences"]) == {"exp2", "exp3", "exp4"}
    printed = capsys.readouterr().out
    assert "mean ± sd over 2 seeds (0 ... 1):" in printed and "difference to exp1: exp - exp1" in printed
    # again: each seed's folder holds a run now, refused without --overwrite
    assert main([*base, "--only", "exp1", "--seeds", "2"]) == 2
    assert f"--out {out / 'exp1' / 'seed0'}: exists" in capsys.readouterr().err


def test_settings_for_one_experiment_apply_to_it_alone(demo_shards, tmp_path, fake_training):
    """``--set expN.KEY=VALUE`` reaches expN's training alone, over the common ``--set``; a scope that is
    not an experiment, or a bad value in one, is refused naming it, before anything trains."""
    from study.experiments import scoped_settings

    assert scoped_settings({"epochs": "2", "exp5.batch_size": "1", "exp2.lr": "0.01"}) == (
        {"epochs": "2"},
        {"exp5": {"batch_size": "1"}, "exp2": {"lr": "0.01"}},
    )
    with pytest.raises(VidcolorError, match=r"^--set exp9\.lr=1: .* expN one of exp1, .*, got scope 'exp9'$"):
        scoped_settings({"exp9.lr": "1"})
    sets = ["size=tiny", "grid=40", "batch_size=4", "exp4.batch_size=2"]
    run_experiments(str(demo_shards), tmp_path / "run", sets, only="exp1,exp2,exp4", workers=0)
    assert {c.experiment.name: c.train.batch_size for c in fake_training} == {"exp1": 4, "exp2": 4, "exp4": 2}
    with pytest.raises(VidcolorError, match=r"^--set \(for exp4\): field batch_size: must be > 0, got 0$"):
        run_experiments(str(demo_shards), tmp_path / "bad", ["size=tiny", "exp4.batch_size=0"], only="exp2,exp4")
    assert not (tmp_path / "bad").exists()


def test_rescore_scores_the_kept_checkpoints_without_training(demo_shards, tmp_path, monkeypatch, fake_training):
    """``--rescore``: the checkpoints already in OUT are evaluated again (the same figures as when they
    were trained), nothing trains and Ray does not start; a missing one is refused, naming its folder."""
    import study.experiments
    import study.train.launch

    sets = ["size=tiny", "grid=40"]
    first = run_experiments(str(demo_shards), tmp_path / "run", sets, only="exp1,exp2,exp3", workers=0, seeds=2)

    def refuse(*args, **kwargs):
        raise AssertionError("trained or started Ray")

    monkeypatch.setattr(study.train.launch, "run_training", refuse)
    monkeypatch.setattr(study.experiments, "init_ray", refuse)
    again = run_experiments(str(demo_shards), tmp_path / "run", sets, only="exp1,exp2,exp3", seeds=2, rescore=True)
    for name in ("exp1", "exp2", "exp3"):
        assert again["experiments"][name]["mean"] == pytest.approx(first["experiments"][name]["mean"], nan_ok=True)
    assert again["experiments"]["exp1"]["config"]["name"] == "exp1"
    with pytest.raises(VidcolorError, match=r"^--rescore: exp4 has no trained checkpoint in .*exp4/seed0/best: "):
        run_experiments(str(demo_shards), tmp_path / "run", sets, only="exp4", seeds=2, rescore=True)
