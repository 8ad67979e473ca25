"""Dashboard helpers: the analysis module (Pareto front, edge-of-range warning, importance), the
spec ranges it reads, and the `vidcolor dashboard` launcher (localhost only, no torch at start-up)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboard import analysis
from models.errors import VidcolorError
from study import serve

ROOT = Path(__file__).resolve().parents[2]


def test_pareto_front_by_hand():
    df = pd.DataFrame({"rmse": [1.0, 2.0, 2.0, 3.0, None], "col": [1.0, 3.0, 2.0, 3.0, 9.0]})
    # row 2 is dominated by row 1 (same rmse, less colorful); row 3 by row 1; NaN never on the front
    front = analysis.pareto_front(df, {"rmse": "min", "col": "max"})
    assert front.tolist() == [True, True, False, False, False]


def test_edge_of_range_by_hand():
    df = pd.DataFrame(
        {"obj": [3.0, 1.0, 2.0], "lr": [1e-3, 1e-2, 1e-4], "lam": [0.5, 0.55, 0.9], "kind": ["a", "b", "c"]}
    )
    warns = analysis.edge_of_range(
        df, ["lr", "lam", "kind"], "obj", "min", ranges={"lr": (1e-4, 1e-2), "lam": (0.0, 1.0)}, log_params={"lr"}
    )
    assert [(w.param, w.side) for w in warns] == [("lr", "high")]  # lam 0.55 mid-range, kind categorical
    warns = analysis.edge_of_range(df, ["lr"], "obj", "max", ranges={"lr": (1e-4, 1e-2)}, log_params={"lr"})
    assert warns == []  # best (obj 3) has lr 1e-3: the middle in log space


def test_importance_prefers_the_parameter_that_matters():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, 40), rng.uniform(0, 1, 40)
    df = pd.DataFrame({"param_x": x, "param_y": y, "objective": (x - 0.3) ** 2 + 0.001 * y})
    imp = analysis.param_importance(df, ["param_x", "param_y"], "objective")
    assert imp.index[0] == "param_x" and imp["param_x"] > imp["param_y"]
    assert analysis.param_importance(df.head(1), ["param_x"], "objective").empty


def test_serve_command_and_imports(tmp_path):
    cmd = serve.streamlit_command(8765)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("dashboard/app.py")
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    assert serve.dashboard_env("sqlite:///x.db")["VIDCOLOR_DB"] == "sqlite:///x.db"
    with pytest.raises(VidcolorError, match="--port"):
        serve.streamlit_command(70000)
    code = (
        "import sys, study.serve, study.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ray', 'dashboard', 'streamlit')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_tradeoff_axes_follow_the_metric_names():
    cols = [
        "best_val_rmse_ab",
        "best_val_rmse_rgb",
        "best_val_colorfulness_gt",
        "best_val_colorfulness_gap",
        "best_val_colorfulness_ratio",
        "best_val_colorfulness_pred",
        "best_val_temporal_error",
        "best_val_psnr",
    ]
    assert analysis.tradeoff_columns(cols) == {
        "best_val_rmse_rgb": ("RMSE", "min"),
        "best_val_colorfulness_gap": ("colorfulness gap", "min"),  # never colorfulness "higher is better"
        "best_val_temporal_error": ("temporal instability", "min"),
    }


def test_search_ranges_from_both_spec_forms():
    from dashboard import data

    listed = {
        "spec": {
            "search": [
                {"name": "lr", "type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                {"name": "grid", "type": "choice", "choices": [10, 20]},
            ]
        }
    }
    table = {"spec": {"search": {"lam": {"type": "float", "low": 0.2, "high": 1.0}}}}
    assert data.search_ranges(listed) == ({"param_lr": (1e-4, 1e-2)}, {"param_lr"}, {"param_grid"})
    assert data.search_ranges(table) == ({"param_lam": (0.2, 1.0)}, set(), set())
    assert data.search_ranges(None) == ({}, set(), set())


def test_seed_groups_by_hand():
    """Trials equal but for the seed make one row: mean and sample sd (n - 1) over the trials that
    report the metric, n the trials. The other experiment, another lam or another grid: rows of
    their own (one trial: no sd)."""
    nan = float("nan")
    trials = pd.DataFrame(
        {
            "trial_id": ["a", "b", "c", "d", "e", "f", "g"],
            "experiment": ["exp5", "exp5", "exp5", "exp5", "exp1", "exp5", "exp5"],
            "status": ["TERMINATED", "TERMINATED", "ERROR", "TERMINATED", "TERMINATED", "STOPPED", "TERMINATED"],
            "param_lam": [0.5, 0.5, 0.5, 0.7, 0.5, 0.5, 0.7],
            "param_grid": [10, 10, 10, 10, 10, 12, 10],
            "param_seed": [0, 1, 2, 0, 0, 1, 1],
            "best_rmse": [10.0, 12.0, nan, 9.0, 11.0, 8.0, 10.0],
            "best_warp": [0.1, 0.2, nan, 0.3, 0.4, 0.5, 0.6],
        }
    )
    groups = analysis.seed_groups(trials, ["best_rmse", "best_warp"])
    assert list(groups.columns) == [
        "experiment",
        "param_lam",
        "param_grid",
        "n",
        "best_rmse",
        "best_rmse_sd",
        "best_warp",
        "best_warp_sd",
        "seeds",
        "trials",
        "status",
    ]
    rows = groups.set_index("trials")
    assert list(rows.index) == ["a, b, c", "d, g", "e", "f"]  # in the order of each one's first trial
    abc = rows.loc["a, b, c"]
    assert (abc["n"], abc["seeds"], abc["status"]) == (3, "0, 1, 2", "TERMINATED×2, ERROR×1")
    # c failed before reporting: (10 + 12) / 2 = 11, sd sqrt(((10 - 11)² + (12 - 11)²) / 1) = sqrt(2)
    assert abc["best_rmse"] == pytest.approx(11.0) and abc["best_rmse_sd"] == pytest.approx(2**0.5)
    assert abc["best_warp"] == pytest.approx(0.15) and abc["best_warp_sd"] == pytest.approx(0.0707107, abs=1e-6)
    dg = rows.loc["d, g"]
    # (9 + 10) / 2 = 9.5, sd sqrt(0.25 + 0.25) = 0.7071; warp (0.3 + 0.6) / 2, sd sqrt(2 · 0.15²)
    assert (dg["n"], dg["seeds"], dg["param_lam"]) == (2, "0, 1", 0.7)
    assert dg["best_rmse"] == pytest.approx(9.5) and dg["best_rmse_sd"] == pytest.approx(0.5**0.5)
    assert dg["best_warp"] == pytest.approx(0.45) and dg["best_warp_sd"] == pytest.approx(0.2121320, abs=1e-6)
    for single, value in (("e", 11.0), ("f", 8.0)):
        assert rows.loc[single, "n"] == 1 and rows.loc[single, "best_rmse"] == value
        assert np.isnan(rows.loc[single, "best_rmse_sd"])


def test_seed_groups_read_a_fixed_seed_from_the_config_and_keep_unique_trials_apart():
    trials = pd.DataFrame(
        {
            "trial_id": ["a", "b", "c"],
            "status": ["TERMINATED"] * 3,
            "param_lr": [1e-3, 1e-3, 2e-3],
            "best_rmse": [1.0, 2.0, 3.0],
            "config": [{"train": {"seed": 7}}, {"seed": 8}, {}],
        }
    )
    groups = analysis.seed_groups(trials, ["best_rmse"])
    assert groups["trials"].tolist() == ["a, b", "c"] and groups["seeds"].tolist() == ["7, 8", "?"]
    assert groups["n"].tolist() == [2, 1]
    unique = analysis.seed_groups(trials.iloc[1:], ["best_rmse"])
    assert (unique["n"] == 1).all()  # every configuration once: nothing to group


def _ctt_votes() -> pd.DataFrame:
    """Hand-made CTT votes on trial t1 (VOTE_COLUMNS; correct = picked the real clip): `good` passes
    its attention check and is fooled 5 times in 5; `bad` fails its check and is fooled 3 times in 5.
    t2: one rater, 1 fooled in 2, and two 1-5 ratings (3 and 5)."""
    rows = [("good", f"g{i}", "t1", "2afc", False, None) for i in range(5)]
    rows += [("bad", f"b{i}", "t1", "2afc", i >= 3, None) for i in range(5)]  # fooled by b0, b1, b2
    rows += [("good", "att1", None, "attention", True, None), ("bad", "att2", None, "attention", False, None)]
    rows += [("good", "h0", "t2", "2afc", True, None), ("good", "h1", "t2", "2afc", False, None)]
    rows += [("good", "r0", "t2", "rating", None, 3.0), ("good", "r1", "t2", "rating", None, 5.0)]
    return pd.DataFrame(
        [
            {"rater": r, "item": i, "trial": t, "experiment": "exp5", "vote_type": v, "correct": c, "rating": s}
            for r, i, t, v, c, s in rows
        ]
    )


def test_verdict_scores_count_the_votes_of_the_ctt_results_page_with_wilson_intervals():
    """The hyperparameters page's human verdict comes from the table the CTT results page draws
    (study.ctt.stats.aggregate): every rater 8 fooled in 10 = 0.8, Wilson 95% [0.4902, 0.9433]
    (centre (p + z²/2n) / (1 + z²/n), half width z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n), z = 1.96);
    without the rater who failed the attention check 5 in 5 = 1.0, [0.5655, 1]."""
    from study.ctt.stats import aggregate

    votes = _ctt_votes()
    every = analysis.verdict_scores(aggregate(votes, by="trial"), "fool_rate", min_votes=3).set_index("trial_id")
    assert every.loc["t1", ["score", "votes"]].tolist() == [0.8, 10]
    assert every.loc["t1", ["low", "high"]].tolist() == pytest.approx([0.4902, 0.9433], abs=1e-4)
    assert every.loc["t2", ["score", "votes", "counted"]].tolist() == [0.5, 2, False]  # 2 votes < min_votes
    assert every.loc["t2", ["low", "high"]].tolist() == pytest.approx([0.0945, 0.9055], abs=1e-4)
    passed = aggregate(votes, by="trial", exclude_failed=True)
    strict = analysis.verdict_scores(passed, "fool_rate", min_votes=3).set_index("trial_id")
    assert strict.loc["t1", ["score", "votes", "counted"]].tolist() == [1.0, 5, True]
    assert strict.loc["t1", ["low", "high"]].tolist() == pytest.approx([0.5655, 1.0], abs=1e-4)
    # mean rating of t2: (3 + 5) / 2 = 4, t interval 4 ± 12.706 · sd sqrt(2) / sqrt(2) = [-8.706, 16.706]
    rated = analysis.verdict_scores(aggregate(votes, by="trial"), "mean_rating").set_index("trial_id")
    assert list(rated.index) == ["t2"] and rated.loc["t2", "votes"] == 2
    assert rated.loc["t2", ["score", "low", "high"]].tolist() == pytest.approx([4.0, -8.7062, 16.7062], abs=1e-4)
