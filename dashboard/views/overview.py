"""Overview: every study in the database and the live progress of the selected one."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import data

st.title("Studies")
url = data.db_url()


@st.fragment(run_every=data.REFRESH_S)
def live() -> None:
    studies = data.studies(url)
    if studies.empty:
        st.info("No study yet. Run `vidcolor tune STUDY.toml` (or `vidcolor demo`) to fill the database.")
        return
    st.dataframe(
        studies,
        hide_index=True,
        width="stretch",
        column_config={"best": st.column_config.NumberColumn("best", format="%.4f")},
    )
    name = data.selected_study()
    if not name:
        return
    info = data.study_info(url, name) or {}
    trials = data.trials(url, name)
    st.subheader(f"Study {name}")
    planned = int(((info.get("spec") or {}).get("num_trials")) or len(trials) or 1)
    done = int(trials["status"].isin(["TERMINATED", "STOPPED", "ERROR"]).sum())
    c = st.columns(5)
    c[0].metric("Status", info.get("status", "?"))
    c[1].metric("Trials", f"{len(trials)} / {planned}")
    c[2].metric("Running", int((trials["status"] == "RUNNING").sum()))
    c[3].metric("Failed", int((trials["status"] == "ERROR").sum()))
    objective, mode = info.get("objective", "objective"), info.get("mode", "min")
    scored = trials.dropna(subset=["objective"])
    best = (scored["objective"].min() if mode == "min" else scored["objective"].max()) if len(scored) else None
    c[4].metric(f"Best {objective} ({mode})", "–" if best is None else f"{best:.4g}")
    st.progress(min(1.0, done / planned), text=f"{done} of {planned} trials finished")
    # the sidebar's filter: the plot and the table below leave out pruned / failed trials (the figures
    # above count the whole study's progress)
    scored = data.shown(scored)
    if len(scored):
        scored = scored.sort_values("started")
        running_best = scored["objective"].cummin() if mode == "min" else scored["objective"].cummax()
        fig = px.scatter(
            scored,
            x="started",
            y="objective",
            color="experiment",
            symbol="status",
            hover_data=["trial_id"],
            title=f"{objective} of each trial (line: best so far)",
            color_discrete_sequence=px.colors.qualitative.D3,
        )
        fig.update_traces(marker=dict(size=12, line=dict(width=1, color="white")))
        fig.add_scatter(
            x=scored["started"],
            y=running_best,
            mode="lines",
            name="best so far",
            line=dict(color="gray", dash="dot", shape="hv"),
        )
        fig.data = (fig.data[-1],) + tuple(fig.data[:-1])  # the line under the markers
        fig.update_layout(height=360, yaxis_title=objective)
        st.plotly_chart(fig, width="stretch")
    # the sidebar's filter here too: no STOPPED / ERROR columns while it hides them
    counts = data.shown(trials).groupby(["experiment", "status"], dropna=False).size().rename("trials").reset_index()
    hidden = " (pruned / failed hidden by the sidebar's filter)" if data.hiding() else ""
    st.caption(f"Trials per experiment and status{hidden}")
    st.dataframe(
        counts.pivot_table(index="experiment", columns="status", values="trials", fill_value=0), width="content"
    )
    st.caption(f"Refreshes every {data.REFRESH_S} s. Last update {pd.Timestamp.now():%H:%M:%S}.")


live()


def report_download() -> None:
    """The selected study as `vidcolor report --out`'s self-contained HTML file, built on request."""
    name = data.selected_study()
    if not name:
        return
    st.subheader("Report")
    st.caption(
        "One HTML file with the trials, plots, the best trials' frames and clips and the CTT results; "
        "it opens offline, to mail or attach (the same as `vidcolor report STUDY --out report.html`)."
    )
    key = f"report_html_{name}"
    if st.button("Build the report", key="build_report"):
        from study.tune.study_report import build_report

        with st.spinner("Building the report..."):
            st.session_state[key] = build_report(data.store(), name).encode("utf-8")
    if key in st.session_state:
        st.download_button(
            f"Download report-{name}.html ({len(st.session_state[key]) / 1e6:.1f} MB)",
            st.session_state[key],
            file_name=f"report-{name}.html",
            mime="text/html",
        )


report_download()
