"""A study's trials with their objectives and its Pareto front, as text: ``vidcolor report STUDY``
(`study.tune.study_report`) and the end of ``vidcolor tune``.

A trial's objectives are its ``best_<metric>`` values in the results store: the metrics of the epoch
whose checkpoint it keeps (the best one by the objective ASHA judges). Only trials that ran to the
end (TERMINATED) may be on the front (``study.report.trials_front``); a trial ASHA stopped, one that
failed and one still running are listed with their numbers and never marked. Reads the store only:
no Ray, no torch.
"""

from __future__ import annotations

import pandas as pd

from study.report import fmt, format_table, spec_objectives, trials_front


def study_objectives(study: dict) -> list[tuple[str, str]]:
    """``[(metric, mode)]`` of a stored study (``Store.get_study``): its spec's objectives."""
    return spec_objectives(study.get("spec"), study.get("objective"), study.get("mode", "min"))


def front_table(trials: pd.DataFrame, objectives: list[tuple[str, str]]) -> pd.DataFrame:
    """trial_id, status, epochs, one column per objective (``best_<metric>``) and ``pareto``; the
    front first, then by the first objective (best first)."""
    cols = [f"best_{metric}" for metric, _ in objectives]
    table = trials.reindex(columns=["trial_id", "status", "epochs", *cols]).copy()
    table["pareto"] = trials_front(table, {c: mode for c, (_, mode) in zip(cols, objectives)})
    first, mode = cols[0], objectives[0][1]
    table["_first"] = pd.to_numeric(table[first], errors="coerce")
    table = table.sort_values(["pareto", "_first"], ascending=[False, mode == "min"], na_position="last")
    return table.drop(columns="_first").reset_index(drop=True)


def format_front(trials: pd.DataFrame, objectives: list[tuple[str, str]]) -> str:
    """The front table as text: a line saying how many trials are on it, then every trial."""
    table = front_table(trials, objectives)
    names = [f"{metric} ({mode})" for metric, mode in objectives]
    rows = [
        [
            str(r["trial_id"]),
            str(r["status"]),
            fmt(r["epochs"]),
            *(fmt(r[f"best_{metric}"], 4, style="g") for metric, _ in objectives),
            "*" if r["pareto"] else "",
        ]
        for _, r in table.iterrows()
    ]
    finished = int((table["status"] == "TERMINATED").sum())
    head = (
        f"Pareto front of {', '.join(names)}: {int(table['pareto'].sum())} of {finished} trials that ran "
        f"to the end (*); stopped, failed and running trials are never on it"
    )
    return head + "\n" + format_table(["trial", "status", "epochs", *names, "pareto"], rows)
