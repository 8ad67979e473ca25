"""The study's progress output: a live table in a terminal, a few lines into a file or pipe."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

from study.config.spec import load_spec
from study.tune.callbacks import ProgressTable

DEMO = Path(__file__).resolve().parents[3] / "study" / "configs" / "demo.toml"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def trial(tid: str, status: str, rmse: float | None = None, epoch: int | None = None):
    result = {} if rmse is None else {"val_rmse_rgb": rmse, "epoch": epoch, "rmse_over_gray": 0.9}
    return SimpleNamespace(trial_id=tid, status=status, last_result=result, config={"lam": 0.5, "grid": 10})


def play(stream) -> str:
    """Six steps of a 3-trial study, each step reported many times as Tune does."""
    spec = load_spec(DEMO)
    table = ProgressTable(spec, spec.max_t, every_s=3600, stream=stream)
    steps = [
        [trial("a", "RUNNING")],
        [trial("a", "RUNNING", 0.30, 1)],
        [trial("a", "TERMINATED", 0.25, spec.max_t), trial("b", "RUNNING")],
        [trial("a", "TERMINATED", 0.25, spec.max_t), trial("b", "RUNNING", 0.20, 1)],
        [trial("a", "TERMINATED", 0.25, spec.max_t), trial("b", "TERMINATED", 0.20, 1), trial("c", "PENDING")],
    ]
    for trials in steps:
        for _ in range(20):
            table.on_step_end(0, trials)
    table.on_experiment_end(steps[-1])
    return stream.getvalue()


def test_into_a_file_each_change_is_one_line_and_the_table_comes_once():
    out = play(io.StringIO())
    lines = out.strip().splitlines()
    assert lines[:4] == [
        "[demo] 1/6 trials: 1 running",
        "[demo] 2/6 trials: 1 running, 1 terminated; best val_rmse_rgb 0.25 (a)",
        "[demo] 3/6 trials: 1 pending, 1 stopped, 1 terminated; best val_rmse_rgb 0.2 (b)",
        "",
    ]
    assert out.count("trial ") == 1 and out.count("status") == 1  # the table's header, once at the end


def test_in_a_terminal_the_table_is_shown_at_most_every_every_s():
    out = play(Terminal())
    assert out.count("status") == 2  # the first step, then the end (every_s is an hour)
