"""study.report: the one table printer, number format and JSON cleaner."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from models.errors import VidcolorError
from study.report import fmt, format_table, json_clean, write_json


def test_fmt_by_hand():
    assert fmt(None) == "-" and fmt(math.nan) == "-" and fmt(np.float32("nan")) == "-"
    assert fmt(1.23456) == "1.235" and fmt(1.23456, 1) == "1.2"
    assert fmt(0.000123456, 4, style="g") == "0.0001235"
    assert fmt(7) == "7" and fmt("exp2") == "exp2" and fmt(np.float64(2.5), 2) == "2.50"
    assert fmt(torch.tensor(0.5)) == "0.500"


def test_table_aligns_numbers_right_and_text_left():
    text = format_table(
        ["video", "frames", "rmse"], [["a", 10, 1.5], ["bbbb", 2, math.nan]], footer=[["mean", 12, 1.5]]
    )
    assert text.splitlines() == [
        "video  frames   rmse",
        "-----  ------  -----",
        "a          10  1.500",
        "bbbb        2      -",
        "-----  ------  -----",
        "mean       12  1.500",
    ]


def test_table_rejects_ragged_rows():
    with pytest.raises(ValueError, match="a row has 1 cells, the header 2"):
        format_table(["a", "b"], [["x"]])


def test_json_clean_gives_strict_json():
    doc = {
        "nan": math.nan,
        "inf": -math.inf,
        "np": np.float32(0.5),
        "i": np.int64(3),
        "t": torch.tensor(2.0),
        "path": Path("/tmp/x"),
        "when": dt.datetime(2026, 1, 2, 3, 4, 5),
        "tuple": (1, (2, 3)),
        "many": torch.tensor([1.0, 2.0]),
        5: "key",
    }
    clean = json_clean(doc)
    assert clean == {
        "nan": None,
        "inf": None,
        "np": 0.5,
        "i": 3,
        "t": 2.0,
        "path": "/tmp/x",
        "when": "2026-01-02T03:04:05",
        "tuple": [1, [2, 3]],
        "many": str(torch.tensor([1.0, 2.0])),
        "5": "key",
    }
    json.loads(json.dumps(clean, allow_nan=False))  # strict JSON


def test_write_json_is_atomic_and_names_the_file(tmp_path):
    path = write_json(tmp_path / "sub" / "out.json", {"x": math.nan})
    assert json.loads(path.read_text()) == {"x": None}
    assert [p.name for p in path.parent.iterdir()] == ["out.json"]  # no temporary left behind
    (tmp_path / "file").write_text("")
    with pytest.raises(VidcolorError, match=r"file/out.json: cannot write the JSON file"):
        write_json(tmp_path / "file" / "out.json", {})


def test_pareto_front_is_optunas_and_matches_a_front_by_hand():
    import pandas as pd

    from study.report import pareto_front

    df = pd.DataFrame(
        {
            "rmse": [1.0, 2.0, 2.0, 1.0, 3.0, None, 0.5, "x", 2.0],
            "fooled": [0.1, 0.4, 0.4, 0.1, 0.5, 0.9, 0.0, 0.9, 0.3],
            "ms": [5, 5, 5, 5, 1, 1, 9, 1, 4],
        },
        index=[f"t{i}" for i in range(9)],
    )
    # rmse min, fooled max, ms min. By hand: t0 = t3 (equal rows, both kept: neither is strictly
    # better); t1 = t2 (kept: more fooling than t0 for more rmse); t4 best on fooled and ms; t6 best
    # on rmse; t8 fools less than t1 at the same rmse but is faster (4 ms against 5): kept;
    # t5 (no rmse) and t7 (rmse not a number) are never on the front
    front = pareto_front(df, {"rmse": "min", "fooled": "max", "ms": "min"})
    assert front.name == "pareto" and list(front.index) == list(df.index)
    assert front[front].index.tolist() == ["t0", "t1", "t2", "t3", "t4", "t6", "t8"]
    # the same on two objectives: t8 (2.0, 0.3) is now dominated by t1 (2.0, 0.4), t0/t3 by nothing
    two = pareto_front(df, {"rmse": "min", "fooled": "max"})
    assert two[two].index.tolist() == ["t0", "t1", "t2", "t3", "t4", "t6"]
    # Optuna's best_trials, row for row, on the numeric rows
    import optuna

    valid = df.drop(index=["t5", "t7"]).astype(float)
    study = optuna.create_study(directions=["minimize", "maximize"])
    study.add_trials([optuna.trial.create_trial(values=[r.rmse, r.fooled]) for r in valid.itertuples()])
    assert sorted(valid.index[t.number] for t in study.best_trials) == two[two].index.tolist()
    # one objective: every row at the best value; an empty or all-missing table has no front
    assert pareto_front(df, {"ms": "min"})[lambda s: s].index.tolist() == ["t4", "t5", "t7"]
    assert pareto_front(df.iloc[:0], {"rmse": "min"}).tolist() == []
    assert not pareto_front(df.loc[["t5"]], {"rmse": "min", "ms": "min"}).any()
