"""Hyperparameters: parallel coordinates, parameter importance, the RMSE / colorfulness / temporal
stability trade-off with its Pareto front, and warnings for best values on the edge of the range."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from dashboard import analysis, data

url, name, info, trials = data.page_trials("Hyperparameters")
scored = trials.dropna(subset=["objective"])
if scored.empty:
    st.info("No trial has reported its objective yet.")
    st.stop()
objective, mode = info.get("objective", "objective"), info.get("mode", "min")
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
fig = go.Figure(
    go.Parcoords(
        line=dict(color=scored["objective"], colorscale="Viridis", reversescale=(mode == "min"), showscale=True),
        dimensions=dims,
    )
)
fig.update_layout(height=380, margin=dict(l=60, r=60, t=40, b=20))
st.plotly_chart(fig, width="stretch")

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

# -- trade-off -------------------------------------------------------------------------------------
st.subheader("Trade-off: RMSE vs colorfulness vs temporal stability")
axes = analysis.tradeoff_columns(data.metrics_of(scored))
if len(axes) < 2:
    st.info(f"The trials report too few of RMSE / colorfulness / temporal metrics (found: {list(axes)}).")
else:
    cols = list(axes)
    front = analysis.pareto_front(scored, {c: d for c, (_, d) in axes.items()})
    df = scored.assign(pareto=np.where(front, "Pareto front", "dominated"))
    kw = dict(color=cols[2], color_continuous_scale="Viridis") if len(cols) > 2 else {}
    fig = px.scatter(
        df,
        x=cols[0],
        y=cols[1],
        symbol="pareto",
        hover_data=["trial_id", "experiment"],
        symbol_map={"Pareto front": "star", "dominated": "circle"},
        labels={
            c: f"{axes[c][0]} ({c.removeprefix('best_')}, {'lower' if axes[c][1] == 'min' else 'higher'} is better)"
            for c in cols
        },
        **kw,
    )
    fig.update_traces(marker=dict(size=13, line=dict(width=1, color="black")))
    fig.update_layout(height=460, legend=dict(orientation="h", y=-0.2))
    st.plotly_chart(fig, width="stretch")
    st.caption("Stars: trials no other trial beats on all of " + ", ".join(axes[c][0] for c in cols) + ".")
    st.dataframe(df[front][["trial_id", "experiment", *cols]], hide_index=True)

# -- human verdict ---------------------------------------------------------------------------------
human = (info.get("spec") or {}).get("human") or {}
score_name = human.get("score", "fool_rate")
min_votes = int(human.get("min_votes", 1))


@st.cache_data(ttl=data.REFRESH_S, show_spinner=False)
def human_scores(url: str | None, name: str, score: str, campaign: str | None, min_votes: int) -> pd.DataFrame:
    from study.ctt.verdict import trial_scores

    return trial_scores(data.store(), name, score, campaign, min_votes)


scores = human_scores(url, name, score_name, human.get("campaign"), min_votes)
if human or not scores.empty:
    from study.ctt.verdict import SCORES

    label = SCORES[score_name]
    st.subheader(f"Human verdict: {objective} vs {label}")
    counted = scores[scores["counted"]].set_index("trial_id")
    verdict = scored.assign(
        human_score=scored["trial_id"].map(counted["score"]),
        human_votes=scored["trial_id"].map(scores.set_index("trial_id")["votes"]).fillna(0).astype(int),
    )
    front = analysis.pareto_front(verdict, {"objective": mode, "human_score": "max"})
    has = verdict["human_score"].notna()
    where = f", campaign {human['campaign']}" if human.get("campaign") else ""
    st.caption(
        f"{int(has.sum())} of {len(verdict)} trials have {min_votes}+ votes{where}. "
        + (
            "The study searches both: `vidcolor tune` with its [human] table samples the next trials "
            "from this front (multi-objective TPE)."
            if human
            else "Add a [human] table to the study's spec to search both objectives."
        )
    )
    if not has.any():
        st.info(f"No trial has {min_votes} votes yet: build its CTT items and collect votes.")
    else:
        shown = verdict[has].assign(pareto=np.where(front[has], "Pareto front", "dominated"))
        fig = px.scatter(
            shown,
            x="objective",
            y="human_score",
            symbol="pareto",
            hover_data=["trial_id", "human_votes"],
            symbol_map={"Pareto front": "star", "dominated": "circle"},
            labels={
                "objective": f"{objective} ({'lower' if mode == 'min' else 'higher'} is better)",
                "human_score": f"{label} (higher is better)",
            },
        )
        fig.update_traces(marker=dict(size=13, line=dict(width=1, color="black")))
        fig.update_layout(height=420, legend=dict(orientation="h", y=-0.2))
        st.plotly_chart(fig, width="stretch", key="human_front")
        st.dataframe(
            shown[front[has]][["trial_id", "experiment", "objective", "human_score", "human_votes", *params]].rename(
                columns={"human_score": score_name, "human_votes": "votes"}
            ),
            hide_index=True,
            key="human_front_table",
        )
    waiting = verdict.loc[~has, "trial_id"].tolist()
    if waiting:
        st.caption(f"Waiting for votes ({len(waiting)}): {', '.join(waiting)}")
