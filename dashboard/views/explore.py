"""Hyperparameters: parallel coordinates, parameter importance, the Pareto front of the study's own
objectives (a multi-objective spec) or else the RMSE / colorfulness / temporal stability
trade-off, the human verdict, and warnings for best values on the edge of the range.

Trials selected on a chart of trials (click, box or lasso) become the chosen trials and can be
compared on the compare page; the parallel coordinates cannot select (Streamlit reports selections
of points only). The human verdict counts the votes the CTT results page counts, by the same
function, with their 95% intervals.

Only trials that ran every epoch (TERMINATED) can be on a front: a trial ASHA stopped, one that
failed and one still running are drawn with a marker and legend entry of their own on every chart
of trials, never as a front's star (a sepia stopped after one epoch does not flicker either).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from dashboard import analysis, data
from study.report import spec_objectives, trials_front

#: a trial's status in words; only one that ran every epoch can be on a front
RUN_WORDS = {
    "TERMINATED": "ran every epoch",
    "STOPPED": "stopped by ASHA",
    "ERROR": "failed",
    "RUNNING": "still running",
    "PENDING": "still running",
}
FRONT, DOMINATED = "Pareto front", "dominated (ran every epoch)"
#: how a trial is drawn on a chart of trials: its label (legend entry) -> plotly marker, and colour
#: (unless a third objective colours the points)
MARKERS = {
    FRONT: "star",
    DOMINATED: "circle",
    "stopped by ASHA (never on a front)": "x",
    "failed (never on a front)": "triangle-down-open",
    "still running (never on a front)": "hourglass",
}
COLOURS = dict(zip(MARKERS, ("#e8a202", "#4c78a8", "#9a9a9a", "#d62728", "#c0c0c0")))


def marked(df: pd.DataFrame, front: pd.Series) -> pd.Series:
    """Each trial's marker label: on the front, dominated, or why it cannot be on a front."""
    finished = pd.Series(np.where(front, FRONT, DOMINATED), index=df.index)
    unfinished = df["status"].map(lambda s: f"{RUN_WORDS.get(s, 'still running')} (never on a front)")
    return finished.where(df["status"] == "TERMINATED", unfinished).rename("trial")


def scatter(df: pd.DataFrame, x: str, y: str, labels: dict, key: str, height: int = 460, **kw) -> None:
    """A chart of trials: the front's stars, dominated circles and the unfinished trials' own markers.
    Trials selected on it (a click, shift-click for more, a box or a lasso) become the chosen trials,
    with a "Compare selected" link to the compare page under the chart (`data.compare_selected`)."""
    if "color" not in kw:  # the marker's colour says it too, in the same legend entry
        kw.update(color="trial", color_discrete_map=COLOURS)
    hover = ["trial_id", *(h for h in kw.pop("hover_data", []) if h != "trial_id")]  # customdata[0]: the trial
    fig = px.scatter(
        df,
        x=x,
        y=y,
        symbol="trial",
        symbol_map=MARKERS,
        category_orders={"trial": list(MARKERS)},
        labels=labels,
        hover_data=hover,
        **kw,
    )
    fig.update_traces(marker=dict(size=13, line=dict(width=1, color="black")))
    fig.update_layout(height=height, legend=dict(orientation="h", y=-0.2, title=""), dragmode="select")
    event = st.plotly_chart(fig, width="stretch", key=key, on_select="rerun", selection_mode=("points", "box", "lasso"))
    points = event.selection.points if event and event.selection else []
    picked = list(dict.fromkeys(str(p["customdata"][0]) for p in points if p.get("customdata")))
    if picked:  # best objective first: the compare page shows the first four
        order = df.set_index("trial_id")["objective"].reindex(picked)
        picked = list(order.sort_values(ascending=mode == "min", na_position="last").index)
        data.compare_selected(url, name, picked)
    else:
        st.caption("Select trials on the chart (click, shift-click, box or lasso) to compare them.")


def direction_words(mode: str) -> str:
    return "lower is better" if mode == "min" else "higher is better"


url, name, info, trials = data.page_trials("Hyperparameters")
scored = trials.dropna(subset=["objective"])
if scored.empty:
    st.info("No trial has reported its objective yet.")
    st.stop()
objective, mode = info.get("objective", "objective"), info.get("mode", "min")
objectives = spec_objectives(info.get("spec"), objective, mode)
params = data.params_of(scored)
ranges, log_params, choices = data.search_ranges(info)

# -- edge of range -------------------------------------------------------------------------------
warnings = analysis.edge_of_range(scored, params, "objective", mode, ranges=ranges, log_params=log_params, skip=choices)
for w in warnings:
    st.warning(w.message().replace("param_", ""), icon="⚠️")
if params and not warnings:
    st.success("No best value sits on the edge of its searched range.")

# -- parallel coordinates ------------------------------------------------------------------------
st.subheader("Parallel coordinates")
dims = []
for p in params:
    col = scored[p]
    num = pd.to_numeric(col, errors="coerce")
    if num.notna().all():
        vals = np.log10(num) if p in log_params and (num > 0).all() else num
        label = f"log10 {p.removeprefix('param_')}" if vals is not num else p.removeprefix("param_")
        dims.append(dict(label=label, values=vals))
    else:
        cats = sorted(col.astype(str).unique())
        dims.append(
            dict(
                label=p.removeprefix("param_"),
                values=col.astype(str).map(cats.index),
                tickvals=list(range(len(cats))),
                ticktext=cats,
            )
        )
dims.append(dict(label=objective, values=scored["objective"]))
runs = list(dict.fromkeys(RUN_WORDS.values()))  # stopped trials have an axis value of their own
ran = scored["status"].map(lambda s: runs.index(RUN_WORDS.get(s, "still running")))
dims.append(dict(label="trial", values=ran, tickvals=list(range(len(runs))), ticktext=runs))
fig = go.Figure(
    go.Parcoords(
        line=dict(color=scored["objective"], colorscale="Viridis", reversescale=(mode == "min"), showscale=True),
        dimensions=dims,
    )
)
fig.update_layout(height=380, margin=dict(l=60, r=60, t=40, b=20))
st.plotly_chart(fig, width="stretch")
st.caption(
    "Drag along an axis to highlight the trials in a range. Trials cannot be selected here (Streamlit "
    "passes on selections of points, and parallel coordinates draw lines): select them on the "
    + ("Pareto front" if len(objectives) > 1 else "trade-off")
    + " chart below to compare them."
)

# -- importance -----------------------------------------------------------------------------------
st.subheader("Parameter importance")


@st.cache_data(ttl=60, show_spinner="Computing importances ...")
def importance(url: str | None, name: str, table: pd.DataFrame, params: list[str], mode: str) -> tuple[pd.Series, str]:
    stored = analysis.stored_optuna_importance(data.store(), name)
    if stored is not None and not stored.empty:
        return stored.sort_values(ascending=False), "the study's Optuna trials"
    return analysis.param_importance(table, params, "objective", mode), "a study rebuilt from the trials table"


imp, source = (
    importance(url, name, scored[["objective", *params]], params, mode) if params else (pd.Series(dtype=float), "")
)
if source:
    st.caption(f"PED-ANOVA (Optuna) on {source}.")
if imp.empty:
    st.info("Importance needs at least two finished trials with varied hyperparameters.")
else:
    fig = px.bar(
        x=imp.values,
        y=[i.removeprefix("param_") for i in imp.index],
        orientation="h",
        labels={"x": f"importance for {objective}", "y": "hyperparameter"},
    )
    fig.update_layout(height=80 + 40 * len(imp), yaxis=dict(autorange="reversed"))
    st.plotly_chart(fig, width="stretch")

# -- the study's own objectives, or the trade-off -----------------------------------------------------
if len(objectives) > 1:
    cols = [f"best_{m}" for m, _ in objectives]
    names = " vs ".join(m for m, _ in objectives)
    st.subheader(f"Pareto front: {names}")
    front = trials_front(trials, {c: d for c, (_, d) in zip(cols, objectives)})
    df = trials.assign(trial=marked(trials, front)).dropna(subset=cols[:2])
    if df.empty:
        st.info("No trial has reported its objectives yet.")
    else:
        kw = dict(color=cols[2], color_continuous_scale="Viridis") if len(cols) > 2 else {}
        scatter(
            df,
            cols[0],
            cols[1],
            {c: f"{m} ({direction_words(d)})" for c, (m, d) in zip(cols, objectives)},
            "objectives_front",
            hover_data=["trial_id", "status", "epochs", *params],
            **kw,
        )
        stopped = int((df["status"] != "TERMINATED").sum())
        st.caption(
            f"The study searches {len(objectives)} objectives (Optuna's multi-objective sampler); ASHA judges "
            f"{objective} and each trial keeps its best {objective} checkpoint, whose metrics these are. Stars: "
            f"trials that ran every epoch and no other such trial beats on all of {', '.join(m for m, _ in objectives)}"
            f"; {stopped} trial(s) stopped, failed or still running are marked apart and never on the front."
        )
        on = trials[front][["trial_id", "experiment", *cols, *params]]
        st.dataframe(
            on.rename(columns={c: m for c, (m, _) in zip(cols, objectives)}), hide_index=True, key="objectives_table"
        )
else:
    st.subheader("Trade-off: RMSE vs colorfulness vs temporal stability")
    axes = analysis.tradeoff_columns(data.metrics_of(scored))
    if len(axes) < 2:
        st.info(f"The trials report too few of RMSE / colorfulness / temporal metrics (found: {list(axes)}).")
    else:
        cols = list(axes)
        front = trials_front(scored, {c: d for c, (_, d) in axes.items()})
        df = scored.assign(trial=marked(scored, front))
        kw = dict(color=cols[2], color_continuous_scale="Viridis") if len(cols) > 2 else {}
        scatter(
            df,
            cols[0],
            cols[1],
            {c: f"{axes[c][0]} ({c.removeprefix('best_')}, {direction_words(axes[c][1])})" for c in cols},
            "tradeoff",
            hover_data=["trial_id", "experiment", "status"],
            **kw,
        )
        st.caption(
            "Stars: trials that ran every epoch and no other such trial beats on all of "
            + ", ".join(axes[c][0] for c in cols)
            + "; stopped, failed and running trials are marked apart and never on the front."
        )
        st.dataframe(df[front][["trial_id", "experiment", *cols]], hide_index=True, key="tradeoff_table")

# -- human verdict ---------------------------------------------------------------------------------
human = (info.get("spec") or {}).get("human") or {}
score_name = human.get("score", "fool_rate")
min_votes = int(human.get("min_votes", 1))
campaign = human.get("campaign")


@st.cache_data(ttl=data.REFRESH_S, show_spinner=False)
def human_scores(
    url: str | None, name: str, score: str, campaign: str | None, min_votes: int, exclude: bool
) -> pd.DataFrame:
    """Per trial (study.ctt.verdict.COLUMNS), by study.ctt.verdict.trial_scores: the fooling rate and
    the mean rating count the votes the CTT results page counts (study.ctt.stats.aggregate, raters who
    failed an attention check left out only when `exclude`); the Bradley-Terry score ignores `exclude`."""
    from study.ctt.verdict import trial_scores

    return trial_scores(data.store(), name, score, campaign, min_votes, exclude_failed=exclude)


if human or not human_scores(url, name, score_name, campaign, min_votes, False).empty:
    from study.ctt.verdict import SCORES

    label = SCORES[score_name]
    st.subheader(f"Human verdict: {objective} vs {label}")
    # the CTT results page's toggle, off by default there too: both pages count the same raters
    exclude = score_name != "bt_score" and st.toggle(
        "Exclude raters who failed an attention check",
        key="verdict_exclude",
        help="as on the CTT results page; `vidcolor tune` (the [human] table) counts only raters who "
        "passed every attention check",
    )
    scores = human_scores(url, name, score_name, campaign, min_votes, exclude)
    counted = scores[scores["counted"]].set_index("trial_id")
    verdict = scored.assign(
        human_score=scored["trial_id"].map(counted["score"]),
        human_low=scored["trial_id"].map(counted["low"]),
        human_high=scored["trial_id"].map(counted["high"]),
        human_votes=scored["trial_id"].map(scores.set_index("trial_id")["votes"]).fillna(0).astype(int),
    )
    front = trials_front(verdict, {"objective": mode, "human_score": "max"})
    has = verdict["human_score"].notna()
    interval = {"fool_rate": "Wilson", "mean_rating": "t", "bt_score": "bootstrap"}[score_name]
    raters = (
        "pairwise votes, attention pairs left out"
        if score_name == "bt_score"
        else ("raters who failed an attention check left out" if exclude else "every rater's votes")
    )
    where = f"campaign {campaign}'s votes only" if campaign else "every vote of the study"
    st.caption(
        f"{int(has.sum())} of {len(verdict)} trials have {min_votes}+ votes ({where}; {raters}; "
        f"bars: {interval} 95% intervals). "
        + (
            "The study searches both: `vidcolor tune` with its [human] table samples the next trials "
            "from this front (multi-objective TPE), counting only raters who passed every attention check."
            if human
            else "Add a [human] table to the study's spec to search both objectives."
        )
    )
    if not has.any():
        st.info(f"No trial has {min_votes} votes yet: build its CTT items and collect votes.")
    else:
        shown = verdict[has].assign(
            trial=marked(verdict[has], front[has]),
            above=verdict["human_high"] - verdict["human_score"],
            below=verdict["human_score"] - verdict["human_low"],
        )
        scatter(
            shown,
            "objective",
            "human_score",
            {"objective": f"{objective} ({direction_words(mode)})", "human_score": f"{label} (higher is better)"},
            "human_front",
            height=420,
            hover_data=["trial_id", "status", "human_votes", "human_low", "human_high"],
            error_y="above",
            error_y_minus="below",
        )
        percent = score_name == "fool_rate"
        number = dict(format="percent") if percent else dict(format="%.2f")
        columns = ["trial_id", "experiment", "objective", "human_score", "human_low", "human_high", "human_votes"]
        st.dataframe(
            shown[front[has]][[*columns, *params]].rename(
                columns={"human_score": score_name, "human_low": "low", "human_high": "high", "human_votes": "votes"}
            ),
            hide_index=True,
            key="human_front_table",
            column_config={
                score_name: st.column_config.NumberColumn(label, **number),
                "low": st.column_config.NumberColumn("95% low", help=f"{interval} 95% interval", **number),
                "high": st.column_config.NumberColumn("95% high", help=f"{interval} 95% interval", **number),
                "votes": st.column_config.NumberColumn("n", help="the votes the score rests on"),
            },
        )
    waiting = verdict.loc[~has, "trial_id"].tolist()
    if waiting:
        st.caption(f"Waiting for votes ({len(waiting)}): {', '.join(waiting)}")
