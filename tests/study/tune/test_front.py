"""Several objectives in a study: the searcher Optuna gets, what ASHA judges, the Pareto front (never
a trial that did not run every epoch), and `vidcolor report`. No Ray is started."""

from __future__ import annotations

import pandas as pd
import pytest

from study.cli import main as vidcolor
from study.config.spec import load_spec, parse_spec
from study.report import spec_objectives, trials_front

LAM = {"lam": {"type": "float", "low": 0.2, "high": 0.9}}
TWO = [{"metric": "val_rmse_ratio", "mode": "min"}, {"metric": "val_colorfulness_ratio", "mode": "max"}]


def test_two_objectives_give_optuna_search_metric_and_mode_lists():
    from study.tune.objectives import optuna_search

    spec = parse_spec({"name": "mo", "preset": "exp1", "search": LAM, "objectives": TWO})
    searcher = optuna_search(spec, None)
    assert searcher.metric == ["val_rmse_ratio", "val_colorfulness_ratio"] and searcher.mode == ["min", "max"]
    # Tune hands it the search space and no metric (the Tuner's TuneConfig has none): the lists stay,
    # and the in-memory Optuna study it makes has one direction per objective
    searcher.set_search_properties(None, None, spec.param_space())
    assert searcher.metric == ["val_rmse_ratio", "val_colorfulness_ratio"]
    assert [d.name for d in searcher._ot_study.directions] == ["MINIMIZE", "MAXIMIZE"]
    one = optuna_search(parse_spec({"name": "so", "preset": "exp1", "search": LAM}), None)
    assert (one.metric, one.mode) == ("val_rmse_rgb", "min")


def test_a_trial_asha_stopped_is_pruned_in_optunas_study():
    """Two trials of a 2-objective study with 3 epochs: one stopped after its first epoch with numbers
    that would put it on Optuna's front, one that ran every epoch: only the second is COMPLETE."""
    from study.tune.objectives import optuna_search

    spec = parse_spec({"name": "mo", "preset": "exp1", "search": LAM, "objectives": TWO, "fixed": {"epochs": 3}})
    searcher = optuna_search(spec, None)
    searcher.set_search_properties(None, None, spec.param_space())
    for trial_id in ("stopped", "finished"):
        assert set(searcher.suggest(trial_id)) == {"lam"}
    searcher.on_trial_complete("stopped", {"epoch": 1, "val_rmse_ratio": 0.5, "val_colorfulness_ratio": 2.0})
    searcher.on_trial_complete("finished", {"epoch": 3, "val_rmse_ratio": 0.9, "val_colorfulness_ratio": 1.0})
    trials = searcher._ot_study.trials
    assert [(t.state.name, t.values) for t in trials] == [("PRUNED", None), ("COMPLETE", [0.9, 1.0])]
    assert [t.number for t in searcher._ot_study.best_trials] == [1]


@pytest.mark.parametrize(
    "asha, judged", [({}, "val_rmse_ratio"), ({"metric": "val_colorfulness_ratio"}, "val_colorfulness_ratio")]
)
def test_asha_stops_trials_on_the_judged_objective(asha, judged):
    from study.tune.objectives import asha_scheduler, judged_words

    spec = parse_spec({"name": "mo", "preset": "exp1", "search": LAM, "objectives": TWO, "asha": asha})
    scheduler = asha_scheduler(spec)
    mode = {"val_rmse_ratio": "min", "val_colorfulness_ratio": "max"}[judged]
    assert (scheduler._metric, scheduler._mode) == (judged, mode)
    assert (
        judged_words(spec)
        == f"ASHA stops trials on {judged} ({mode}); each trial keeps its checkpoint of best {judged}"
    )


def test_the_front_leaves_out_every_trial_that_did_not_run_every_epoch():
    """By hand: x dominates everything by its numbers but ASHA stopped it; y failed, z still runs.
    Among the finished: a (1, 3) and b (2, 1) trade off, c (2, 3) is dominated by both, d equals a."""
    table = pd.DataFrame(
        {
            "status": ["STOPPED", "TERMINATED", "TERMINATED", "ERROR", "TERMINATED", "RUNNING", "TERMINATED"],
            "rmse": [0.1, 1.0, 2.0, 0.1, 2.0, 0.1, 1.0],
            "warp": [0.1, 3.0, 1.0, 0.1, 3.0, 0.1, 3.0],
        },
        index=["x", "a", "b", "y", "c", "z", "d"],
    )
    front = trials_front(table, {"rmse": "min", "warp": "min"})
    assert front[front].index.tolist() == ["a", "b", "d"]
    assert not trials_front(table.loc[["x", "y", "z"]], {"rmse": "min", "warp": "min"}).any()


def test_objectives_from_both_record_forms():
    multi = load_spec("demo_tradeoff").to_record()
    assert spec_objectives(multi) == [("val_rmse_ratio", "min"), ("val_added_warp", "min")]
    assert spec_objectives({"objective": {"metric": "val_psnr", "mode": "max"}}) == [("val_psnr", "max")]
    assert spec_objectives({}, "val_rmse_rgb", "min") == [("val_rmse_rgb", "min")]  # the study row's


def test_report_prints_the_fixture_studys_front(fixture_study, capsys):
    """One objective, val_rmse_rgb (conftest, by hand): t_002 17.24 < t_004 18.7 < t_001 19.6 among the
    trials that ran every epoch; t_005 (running) and t_003 (stopped) are listed, never marked."""
    assert vidcolor(["report", "fixture", "--db", fixture_study["url"]]) == 0
    out = capsys.readouterr().out
    assert "Pareto front of val_rmse_rgb (min): 1 of 3 trials that ran to the end (*)" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("t_0")}
    assert rows["t_002"][1:] == ["TERMINATED", "3", "17.24", "*"]
    assert rows["t_003"][1:] == ["STOPPED", "1", "20.5"]
    assert rows["t_005"][1:] == ["RUNNING", "2", "19.57"] and rows["t_006"][1:] == ["ERROR", "0", "-"]
    assert [r for r in rows if rows[r][-1] == "*"] == ["t_002"]
    assert list(rows)[:3] == ["t_002", "t_004", "t_005"]  # the front first, then by the objective


def test_report_marks_a_two_objective_front(tradeoff_study, capsys):
    """conftest.TRADEOFF_TRIALS: the front is {t_a, t_b}, each at its best val_rmse_ratio epoch."""
    assert vidcolor(["report", "tradeoff", "--db", tradeoff_study["url"]]) == 0
    out = capsys.readouterr().out
    assert "objectives val_rmse_ratio, val_added_warp" in out
    assert "Pareto front of val_rmse_ratio (min), val_added_warp (min): 2 of 3 trials" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("t_")}
    assert rows["t_a"] == ["TERMINATED", "3", "0.9", "0.5", "*"]  # not its last epoch's (0.93, 0)
    assert rows["t_b"] == ["TERMINATED", "3", "0.95", "0.1", "*"]
    assert rows["t_c"] == ["TERMINATED", "3", "0.97", "0.6"]
    assert rows["t_d"] == ["STOPPED", "1", "1", "-0.2"] and rows["t_e"] == ["RUNNING", "1", "0.85", "0.05"]


def test_report_refuses_an_unknown_study(fixture_study, capsys):
    assert vidcolor(["report", "nope", "--db", fixture_study["url"]]) == 2
    assert capsys.readouterr().err.strip() == f"error: no study named 'nope' in {fixture_study['url']}"
