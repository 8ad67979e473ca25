"""AppTest of a two-objective study (conftest.build_tradeoff_study): the hyperparameters page shows
the front of the study's own objectives, with the trials that did not run every epoch marked apart,
and the trials table has a pareto column."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_hyperparameter_page_shows_the_objectives_front(tradeoff_study, monkeypatch):
    """The front by hand (conftest.TRADEOFF_TRIALS): {t_a, t_b}; t_d (stopped) and t_e (running) would
    be on it by their numbers and are drawn apart; t_f failed before reporting."""
    monkeypatch.setenv("VIDCOLOR_DB", tradeoff_study["url"])
    at = open_page("explore")
    assert [s.value for s in at.subheader if s.value.startswith("Pareto")] == [
        "Pareto front: val_rmse_ratio vs val_added_warp"
    ]
    assert not any(s.value.startswith("Trade-off") for s in at.subheader)  # the study's own objectives instead
    [front] = [d.value for d in at.dataframe if "val_added_warp" in d.value.columns]
    assert front.set_index("trial_id")[["val_rmse_ratio", "val_added_warp"]].to_dict("index") == {
        "t_a": {"val_rmse_ratio": 0.90, "val_added_warp": 0.50},
        "t_b": {"val_rmse_ratio": 0.95, "val_added_warp": 0.10},
    }
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    [chart] = [c for c in charts if c["data"][0].get("type") == "scatter"]
    traces = {t["name"]: ([row[0] for row in t["customdata"]], t["marker"]["symbol"]) for t in chart["data"]}
    assert traces == {
        "Pareto front": (["t_a", "t_b"], "star"),
        "dominated (ran every epoch)": (["t_c"], "circle"),
        "stopped by ASHA (never on a front)": (["t_d"], "x"),
        "still running (never on a front)": (["t_e"], "hourglass"),
    }
    assert "ASHA judges val_rmse_ratio" in " ".join(c.value for c in at.caption)
    # the parallel coordinates have an axis of their own for how each trial ended
    [parcoords] = [c for c in charts if c["data"][0].get("type") == "parcoords"]
    [axis] = [d for d in parcoords["data"][0]["dimensions"] if d["label"] == "trial"]
    assert axis["ticktext"] == ["ran every epoch", "stopped by ASHA", "failed", "still running"]


def test_trials_table_has_a_pareto_column(tradeoff_study, monkeypatch):
    monkeypatch.setenv("VIDCOLOR_DB", tradeoff_study["url"])
    at = open_page("trials")
    table = at.dataframe[0].value.set_index("trial_id")
    assert table["pareto"].to_dict() == {
        "t_a": True,
        "t_b": True,
        "t_c": False,
        "t_d": False,
        "t_e": False,
        "t_f": False,
    }
    # the objective (best val_rmse_ratio) once, under its own name (issue 25), then the front
    assert list(table.columns[:5]) == ["experiment", "status", "best_val_rmse_ratio", "pareto", "best_val_added_warp"]
    assert "objective" not in table.columns
