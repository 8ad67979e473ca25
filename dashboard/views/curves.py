"""Learning curves: a metric per epoch for the chosen trials."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from dashboard import data

url, name, info, trials = data.page_trials("Learning curves")
with_epochs = trials[trials["epochs"] > 0]
if with_epochs.empty:
    st.info("No trial has logged an epoch yet.")
    st.stop()
ids = list(with_epochs["trial_id"])
if "curves_trials" not in st.session_state:
    chosen = [t for t in st.session_state.get("chosen_trials", []) if t in ids]
    if not chosen:
        order = with_epochs.sort_values("objective", ascending=info.get("mode", "min") == "min")
        chosen = list(order["trial_id"].head(5))
    st.session_state["curves_trials"] = chosen
sel = st.multiselect("Trials", ids, key="curves_trials")
ep = data.epochs(url, name, tuple(sel)) if sel else None
if ep is None or ep.empty:
    st.info("Choose one or more trials.")
    st.stop()
metrics = [c for c in ep.columns if c not in ("trial_id", "experiment", "epoch", "time")]
objective = info.get("objective")
default = [m for m in (objective, "train_loss") if m in metrics] or metrics[:1]
for m in st.multiselect("Metrics", metrics, default=default):
    fig = px.line(
        ep.dropna(subset=[m]),
        x="epoch",
        y=m,
        color="trial_id",
        markers=True,
        hover_data=["experiment"],
        title=m,
        color_discrete_map=data.trial_colours(trials),  # a trial keeps its colour whatever is chosen
    )
    fig.update_layout(height=330, xaxis=dict(dtick=1))
    st.plotly_chart(fig, width="stretch")
