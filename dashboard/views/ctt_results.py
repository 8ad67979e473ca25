"""CTT results: fooling rate per trial and experiment with Wilson 95% intervals, mean naturalness
rating with its t interval, votes, raters, attention-check failures; exclude flagged raters; the
Bradley-Terry ranking of trials from pairwise votes with bootstrap 95% intervals; the campaigns."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboard import data
from study.ctt import stats as ctt_stats

name = data.page_study("Color Turing Test results")


@st.fragment(run_every=data.REFRESH_S)
def results() -> None:
    raw = data.votes(name)
    items = data.store().ctt_items(name)
    c = st.columns(4)
    c[0].metric("Items", len(items))
    c[1].metric("Votes", len(raw))
    c[2].metric("Raters", raw["rater_id"].nunique() if len(raw) else 0)
    votes = ctt_stats.votes_from_store(raw)
    flagged = ctt_stats.failed_raters(votes) if len(votes) else set()
    c[3].metric("Raters failing attention checks", len(flagged))
    pairs = data.store().pair_votes(name)
    if raw.empty and pairs.empty:
        st.info(
            "No votes yet. Build items with `vidcolor ctt build`, then make a campaign with invite links "
            "(`vidcolor ctt campaign create`) served by `vidcolor ctt serve`, or send colleagues to the "
            "*Rate clips* page."
        )
        _campaigns()
        return
    if len(pairs):
        _ranking(len(pairs))
    if raw.empty:
        _campaigns()
        return
    exclude = st.toggle("Exclude raters who failed an attention check", key="ctt_exclude")
    for level, label in (("trial", "Per trial"), ("experiment", "Per experiment")):
        agg = ctt_stats.aggregate(votes, by=level, exclude_failed=exclude)
        st.subheader(label)
        if agg.empty:
            st.caption("No votes on trial items yet.")
            continue
        shown = agg[agg["votes"] > 0]
        if len(shown):
            fig = go.Figure(
                go.Bar(
                    x=shown[level],
                    y=shown["fooling_rate"],
                    error_y=dict(
                        type="data",
                        symmetric=False,
                        array=shown["fool_hi"] - shown["fooling_rate"],
                        arrayminus=shown["fooling_rate"] - shown["fool_lo"],
                    ),
                    text=[f"{v:.0%} (n={n})" for v, n in zip(shown["fooling_rate"], shown["votes"])],
                    textposition="outside",
                    cliponaxis=False,
                )
            )
            fig.add_hline(y=0.5, line_dash="dot", annotation_text="chance (50%)")
            fig.update_layout(
                height=320,
                yaxis=dict(range=[0, 1.12], tickformat=".0%", title="fooling rate"),
                xaxis_title=level,
                margin=dict(t=40),
            )
            st.plotly_chart(fig, width="stretch", key=f"fool_{level}")
        st.dataframe(
            agg,
            hide_index=True,
            width="stretch",
            key=f"table_{level}",
            column_config={
                "fooling_rate": st.column_config.NumberColumn("fooling rate", format="percent"),
                "fool_lo": st.column_config.NumberColumn("95% low", format="percent"),
                "fool_hi": st.column_config.NumberColumn("95% high", format="percent"),
                "mean_rating": st.column_config.NumberColumn("mean rating", format="%.2f"),
                "rating_lo": st.column_config.NumberColumn("rating 95% low", format="%.2f"),
                "rating_hi": st.column_config.NumberColumn("rating 95% high", format="%.2f"),
            },
        )
    with st.expander("Raters"):
        summ = ctt_stats.rater_summary(votes)
        names = raw.drop_duplicates("rater_id").set_index("rater_id")["rater"]
        summ.insert(1, "name", summ["rater"].map(names))
        st.dataframe(summ, hide_index=True)
    st.download_button(
        "Download votes CSV", raw.to_csv(index=False).encode(), file_name=f"{name}_ctt_votes.csv", mime="text/csv"
    )
    _campaigns()


@st.cache_data(ttl=60, show_spinner="Fitting the ranking...")
def _fit(study: str, n_votes: int):  # n_votes keys the cache: a new vote refits
    return data.store().trial_ranking(study)


def _ranking(n_votes: int) -> None:
    st.subheader("Pairwise ranking (Bradley-Terry)")
    rank = _fit(name, n_votes)
    shown = rank.dropna(subset=["score"])
    st.caption(
        f"{n_votes} pairwise votes (attention pairs left out of the fit); score = log-strength, "
        "a difference of 1 means the better trial wins 73% of comparisons; bars: bootstrap 95% intervals."
    )
    if len(shown):
        fig = go.Figure(
            go.Scatter(
                x=shown["score"],
                y=shown["trial"],
                mode="markers",
                error_x=dict(
                    type="data",
                    symmetric=False,
                    array=shown["high"] - shown["score"],
                    arrayminus=shown["score"] - shown["low"],
                ),
            )
        )
        fig.update_layout(
            height=80 + 40 * len(shown),
            xaxis_title="Bradley-Terry score",
            yaxis=dict(autorange="reversed", title="trial"),
            margin=dict(t=20),
        )
        st.plotly_chart(fig, width="stretch", key="bt_rank")
    st.dataframe(
        rank,
        hide_index=True,
        width="stretch",
        key="bt_table",
        column_config={
            "score": st.column_config.NumberColumn("score", format="%.2f"),
            "low": st.column_config.NumberColumn("95% low", format="%.2f"),
            "high": st.column_config.NumberColumn("95% high", format="%.2f"),
        },
    )


def _campaigns() -> None:
    camps = data.store().campaigns(name)
    if camps.empty:
        return
    with st.expander(f"Campaigns ({len(camps)})"):
        st.dataframe(camps.drop(columns=["created"]), hide_index=True, width="stretch")


results()
