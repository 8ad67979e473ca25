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
