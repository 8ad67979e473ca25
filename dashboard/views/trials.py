"""Trials: the study's trials as a sortable, filterable table with CSV export; trials that differ
only by the seed grouped into one row per configuration (mean ± sd over the seeds) on request; the
selected rows become the chosen trials of the other pages ("Compare selected" opens the compare page)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import analysis, data
from study.report import spec_objectives, trials_front

#: positions of a log-scaled parameter's slider (its range split evenly in log space)
LOG_STEPS = 40


def range_filter(col, p: str, values: pd.Series, log: bool) -> tuple[float, float] | None:
    """A slider that filters `values` to a range: steps of 1 for integers, a select slider over
    log-spaced values for a log-scaled parameter (the spec's `log`, or positive values spanning 10x
    or more), else 100 linear steps. None when every trial has the same value."""
    lo, hi = float(values.min()), float(values.max())
    if not hi > lo:
        return None
    label, key = p.removeprefix("param_"), f"range_{p}"
    if values.map(lambda v: float(v).is_integer()).all() and hi - lo <= 1000:
        a, b = col.slider(label, int(lo), int(hi), (int(lo), int(hi)), step=1, key=key)
        return float(a), float(b)
    if lo > 0 and (log or hi / lo >= 10):
        # log-spaced stops, and each trial's own value exactly (a grid stop next to one is left out)
        own = sorted({float(v) for v in values})
        near = np.log10(hi / lo) / LOG_STEPS / 4
        grid = [float(v) for v in np.geomspace(lo, hi, LOG_STEPS + 1)]
        options = sorted({*own, *(g for g in grid if np.abs(np.log10(np.divide(own, g))).min() > near)})
        return col.select_slider(label, options, (lo, hi), format_func=lambda v: f"{v:.3g}", key=key)
    return col.slider(label, lo, hi, (lo, hi), step=(hi - lo) / 100, format="%.4g", key=key)


url, name, info, trials = data.page_trials("Trials")
objectives = spec_objectives(info.get("spec"), info.get("objective"), info.get("mode", "min"))
objective_cols = {f"best_{m}": d for m, d in objectives} if len(objectives) > 1 else {}
if objective_cols:  # a multi-objective study: which trials are on its front (only those that ran every epoch)
    trials = trials.assign(pareto=trials_front(trials.reindex(columns=["status", *objective_cols]), objective_cols))

with st.expander("Filter", expanded=True):
    c = st.columns(3)
    statuses = sorted(trials["status"].dropna().unique())
    sel_status = c[0].multiselect("Status", statuses, default=statuses)
    exps = sorted(trials["experiment"].dropna().unique())
    sel_exp = c[1].multiselect("Experiment", exps, default=exps)
    text = c[2].text_input("Trial id contains", "")
    ranges = {}
    numeric_params = [
        p
        for p in data.params_of(trials)
        if trials[p].dropna().map(lambda v: isinstance(v, (int, float))).all() and trials[p].notna().any()
    ]
    if numeric_params:
        _, logs, _ = data.search_ranges(info)
        cols = st.columns(len(numeric_params))
        for col, p in zip(cols, numeric_params):
            ranges[p] = range_filter(col, p, trials[p].dropna(), p in logs)
    ranges = {p: r for p, r in ranges.items() if r is not None}

view = trials[
    trials["status"].isin(sel_status)
    & (trials["experiment"].isin(sel_exp) | (trials["experiment"].isna() & (len(exps) == len(sel_exp))))
]
if text:
    view = view[view["trial_id"].str.contains(text, case=False, regex=False)]
for p, (lo, hi) in ranges.items():
    view = view[view[p].isna() | view[p].between(lo, hi)]

if objective_cols:
    searched = ", ".join(f"{m} ({d})" for m, d in objectives)
    judged = f"objectives: {searched} (pareto: on their front; objective: the best {info.get('objective')})"
else:
    judged = f"objective: best {info.get('objective')} ({info.get('mode')})"
st.caption(
    f"{len(view)} of {len(trials)} trials · {judged} "
    "· click a column header to sort, select rows to use them on the other pages"
)
shown = view.drop(columns=["config"])
# `objective` is a copy of best_<objective metric>: one column, under the metric's name
obj_col = data.objective_column(shown, info)
if obj_col != "objective":
    shown = shown.drop(columns=["objective"])
# what people compare first, at the left; paths and timestamps after the metrics
first = [
    c
    for c in (
        "trial_id",
        "experiment",
        "status",
        obj_col,
        "pareto",
        *objective_cols,
        "best_val_rmse_ratio",
        "best_val_added_warp",
        "best_val_added_cdc",
        "best_val_colorfulness_gap",
        "best_val_rmse_rgb",
        "best_val_gray_rmse_rgb",
        "epochs",
        "duration_s",
    )
    if c in shown
]
first = list(dict.fromkeys(first))  # an objective may be one of the usual first columns
last = [c for c in ("best_epoch", "started", "ended", "checkpoint", "error") if c in shown]
params = [c for c in shown.columns if c.startswith("param_") and c not in first]  # right after the metrics
shown = shown[first + params + [c for c in shown.columns if c not in first + params and c not in last] + last]
column_config = {
    "objective": st.column_config.NumberColumn(format="%.4f"),
    "best_val_rmse_ratio": st.column_config.NumberColumn(
        "RMSE / gray",
        format="%.3f",
        help="the trial's validation RMSE over the gray (ab = 0) prediction's, "
        "per video, averaged: below 1 beats leaving the frames gray",
    ),
    "best_val_gray_rmse_rgb": st.column_config.NumberColumn(
        "gray RMSE", format="%.2f", help="RMSE of ab = 0 on the same videos"
    ),
    "best_val_added_warp": st.column_config.NumberColumn(
        "+warp",
        format="%.3f",
        help="the flicker the color adds: warp error over the gray (ab = 0) prediction's on the same "
        "frames, minus 1, per video, averaged (a washed-out trial scores 0, not the best)",
    ),
    "best_val_added_cdc": st.column_config.NumberColumn(
        "+CDC", format="%.3f", help="color distribution consistency over the gray prediction's, minus 1"
    ),
    "best_val_colorfulness_gap": st.column_config.NumberColumn(
        "colorfulness gap",
        format="%.3f",
        help="|colorfulness of the prediction / the ground truth's - 1|: washed out and over-saturated both score high",
    ),
    "duration_s": st.column_config.NumberColumn("duration (s)", format="%.0f"),
    "pareto": st.column_config.CheckboxColumn(
        "pareto", help="on the Pareto front of the study's objectives (trials that ran every epoch only)"
    ),
}
for c in params:  # the searched settings by their names, small values (lr 3e-4) in full
    if shown[c].dtype.kind in "fi":
        column_config[c] = st.column_config.NumberColumn(c.removeprefix("param_"), format="%.3g")
    else:
        column_config[c] = st.column_config.Column(c.removeprefix("param_"))
if obj_col != "objective":  # the objective's column says so
    usual = column_config.get(obj_col)
    column_config[obj_col] = st.column_config.NumberColumn(
        f"{(usual or {}).get('label') or obj_col} (objective)",
        format=((usual or {}).get("type_config") or {}).get("format") or "%.4f",
        help=f"the study's objective: the trial's best {info.get('objective')} ({info.get('mode', 'min')})",
    )

# -- one row per configuration: the trials that differ only by the seed --------------------------------
metrics = [c for c in first if c not in ("trial_id", "experiment", "status", "pareto", "epochs", "duration_s")]
repeated = analysis.seed_groups(trials, metrics)
repeated = repeated[repeated["n"] > 1]
if len(repeated):
    grouped = st.toggle(
        f"Group by seed ({len(repeated)} configuration(s) run with several seeds)",
        key="group_seeds",
        help="one row per configuration (experiment and hyperparameters equal but for the seed): "
        "the mean ± sd of each metric over its trials and their number, n",
    )
else:
    grouped = False
    st.caption("Every configuration ran once (no trials differ only by the seed): nothing to group by seed.")

if grouped:
    groups = analysis.seed_groups(view, metrics)
    table = groups.rename(columns=lambda c: c.removeprefix("param_"))
    group_config = {
        "n": st.column_config.NumberColumn("n", help="trials of this configuration (seeds)"),
        "seeds": st.column_config.TextColumn("seeds"),
        "status": st.column_config.TextColumn("status", help="how its trials ended"),
    }
    for m in metrics:
        usual = column_config.get(m) or {}
        label = usual.get("label") or m
        fmt = (usual.get("type_config") or {}).get("format") or "%.4f"
        group_config[m] = st.column_config.NumberColumn(
            f"{label} mean", format=fmt, help=f"mean of {m} over the configuration's trials that report it"
        )
        group_config[f"{m}_sd"] = st.column_config.NumberColumn(
            "± sd", format=fmt, help=f"sample standard deviation (n - 1) of {m}; none under two values"
        )
    st.caption(
        f"{len(groups)} configuration(s) of {len(view)} trials: mean ± sd over each one's seeds "
        "· select rows to use all their trials on the other pages"
    )
    event = st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="multi-row",
        key="trials_groups",
        column_config=group_config,
    )
    rows = event.selection.rows if event else []
    picked = [t for r in rows for t in str(groups.iloc[r]["trials"]).split(", ")]
    csv, csv_name = table, f"{name}_configurations.csv"
else:
    event = st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="multi-row",
        key="trials_table",
        column_config=column_config,
    )
    picked = list(shown.iloc[event.selection.rows]["trial_id"]) if event and event.selection.rows else []
    csv, csv_name = shown, f"{name}_trials.csv"
if picked:  # the chosen trials of the other pages, and a button to compare them
    data.compare_selected(url, name, picked)
st.download_button("Download CSV", csv.to_csv(index=False).encode(), file_name=csv_name, mime="text/csv")
