"""CTT results: fooling rate per trial and experiment with Wilson 95% intervals, mean naturalness
rating with its t interval, votes, raters, attention-check failures; exclude flagged raters; the
Bradley-Terry ranking of trials from pairwise votes with bootstrap 95% intervals; how far the votes
can be trusted (study.ctt.trust: Krippendorff's alpha, left/right position bias, per-rater quality,
Crowd-BT beside Bradley-Terry); the campaigns."""

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
    exclude = st.toggle("Exclude raters who failed an attention check", key="ctt_exclude")
    if raw.empty:
        _trust(len(raw), len(pairs), exclude)
        _campaigns()
        return
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
    _trust(len(raw), len(pairs), exclude)
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


@st.cache_data(ttl=60, show_spinner="Computing agreement...")
def _trust_figures(url: str | None, study: str, n_votes: int, n_pairs: int, exclude: bool):
    """study.ctt.trust's figures; the database, the study and the vote counts key the cache."""
    from study.ctt import trust

    return trust.from_store(data.store(), study, exclude_failed=exclude)


TASK_NAMES = {"2afc": "2AFC (which is real)", "rating": "rating (1-5)", "pairwise": "pairwise"}


def _trust(n_votes: int, n_pairs: int, exclude: bool) -> None:
    """How far the votes can be trusted: agreement, position bias, raters, Crowd-BT (study.ctt.trust)."""
    figures = _trust_figures(data.db_url(), name, n_votes, n_pairs, exclude)
    st.subheader("How far the votes can be trusted")
    if figures.excluded:
        st.caption(
            f"{len(figures.excluded)} rater(s) who failed an attention check (a 2AFC or rating check, or an "
            "attention pair) left out of every figure below."
        )
    if figures.empty:
        st.caption("No votes left to judge.")
        return
    agreement = figures.agreement.assign(task=figures.agreement["task"].map(TASK_NAMES))
    st.markdown("**Agreement between raters** (Krippendorff's alpha)")
    st.dataframe(
        agreement[["task", "votes", "metric", "alpha", "alpha_low", "alpha_high", "items", "values"]],
        hide_index=True,
        width="stretch",
        key="trust_agreement",
        column_config={
            "votes": st.column_config.NumberColumn("votes", help="votes on regular items (attention checks left out)"),
            "metric": st.column_config.TextColumn(
                "metric", help="nominal: picked the real clip (2AFC) or which trial won (pairwise); interval: ratings"
            ),
            "alpha": st.column_config.NumberColumn("alpha", format="%.3f"),
            "alpha_low": st.column_config.NumberColumn("95% low", format="%.3f"),
            "alpha_high": st.column_config.NumberColumn("95% high", format="%.3f"),
            "items": st.column_config.NumberColumn(
                "items", help="items (pairwise: pairs of trials on one source) with votes of 2+ raters"
            ),
            "values": st.column_config.NumberColumn("values", help="the votes on those items"),
        },
    )
    st.caption(
        "1 = the raters agree on every item, 0 = no more than chance would give; interval: bootstrap over "
        "items. In a 2AFC Color Turing Test chance agreement is what a colorizer that fools people produces "
        "(raters who cannot tell guess), so read a low alpha beside the fooling rate: near 50% fooled, an "
        "alpha near 0 says the clips look real, not that the raters are careless. For ratings and pairwise "
        "votes Krippendorff asks for alpha ≥ 0.8 (≥ 0.667 for tentative conclusions)."
    )
    bias = figures.agreement[figures.agreement["answers"].fillna(0) > 0]
    if len(bias):
        st.markdown("**Left/right position bias** (answers on regular items)")
        st.dataframe(
            bias[["task", "answers", "left", "left_share", "left_low", "left_high", "left_p"]],
            hide_index=True,
            key="trust_bias",
            column_config={
                "left": st.column_config.NumberColumn("left answers"),
                "left_share": st.column_config.NumberColumn("share left", format="percent"),
                "left_low": st.column_config.NumberColumn("95% low", format="percent"),
                "left_high": st.column_config.NumberColumn("95% high", format="percent"),
                "left_p": st.column_config.NumberColumn("p (vs 50%)", format="%.3g"),
            },
        )
        st.caption(
            "The real clip is drawn on either side at random, so a share of 'left' answers away from 50% is the "
            "raters' habit, not the items': Wilson 95% interval, two-sided exact binomial test against 50%."
        )
    if n_pairs:
        st.caption(
            "Pairwise votes keep which trial won, not on which side it was shown: they have no position-bias figure."
        )
    st.markdown("**Raters**")
    raters = figures.raters.assign(
        task=figures.raters["task"].map({**TASK_NAMES, "2afc": "2AFC"}),
        # a name where the rater gave one, else the start of the id (the export has the whole id)
        rater=[
            n if isinstance(n, str) and n else f"{str(r)[:10]}…"
            for n, r in zip(figures.raters["rater"], figures.raters["rater_id"])
        ],
    ).drop(columns=["rater_id"])
    if not (figures.raters["task"] == "pairwise").any():
        raters = raters.drop(columns=["reliability"])
    st.dataframe(
        raters,
        hide_index=True,
        width="stretch",
        key="trust_raters",
        column_config={
            "attention_checks": st.column_config.NumberColumn("checks", help="attention checks answered"),
            "attention_passed": st.column_config.NumberColumn("passed"),
            "attention_pass_rate": st.column_config.NumberColumn("pass rate", format="percent"),
            "consensus_items": st.column_config.NumberColumn(
                "consensus items", help="items on which 2+ other raters gave a strict majority"
            ),
            "consensus_agreement": st.column_config.NumberColumn(
                "agrees",
                format="percent",
                help="share of those items on which this rater answered as the others' majority",
            ),
            "reliability": st.column_config.NumberColumn(
                "Crowd-BT reliability", format="%.2f", help="estimated chance this rater reports the better trial"
            ),
        },
    )
    st.caption(
        "Consensus: leave-one-out, over the rater's answers on items where at least two other raters gave a "
        "strict majority (2AFC: picked the real clip; pairwise: which trial won). Ratings have no consensus "
        "figure; a rating check is passed when rated 1 or 2."
    )
    if not figures.ranking.empty:
        st.markdown("**Crowd-BT beside Bradley-Terry** (pairwise votes, attention pairs left out)")
        st.dataframe(
            figures.ranking,
            hide_index=True,
            width="stretch",
            key="trust_crowd_bt",
            column_config={
                "bt_score": st.column_config.NumberColumn("Bradley-Terry score", format="%.2f"),
                "bt_low": st.column_config.NumberColumn("95% low", format="%.2f"),
                "bt_high": st.column_config.NumberColumn("95% high", format="%.2f"),
                "bt_rank": st.column_config.NumberColumn("rank"),
                "crowd_bt_score": st.column_config.NumberColumn("Crowd-BT score", format="%.2f"),
                "crowd_bt_rank": st.column_config.NumberColumn("Crowd-BT rank"),
            },
        )
        note = " Raters who failed an attention check are left out here, not in the ranking above."
        st.caption(
            "Crowd-BT (Chen et al. 2013) weighs each rater by the reliability in the raters table (below 0.5: "
            "their votes read as reversed); where its order differs from plain Bradley-Terry's, a few raters "
            "decide the difference." + (note if figures.excluded else "")
        )


def _campaigns() -> None:
    camps = data.store().campaigns(name)
    if camps.empty:
        return
    with st.expander(f"Campaigns ({len(camps)})"):
        st.dataframe(camps.drop(columns=["created"]), hide_index=True, width="stretch")


results()
