"""The human verdict per trial: one score from the Color Turing Test votes, for the search and the dashboard.

Three scores, each "higher is better":

- ``fool_rate``: the share of a trial's 2AFC votes that took its colorization for the real clip
  (Zhang et al. 2016's fooling rate; Wilson 95% interval), raters who failed an attention check left out;
- ``mean_rating``: the mean 1-5 naturalness rating of its clips (t 95% interval), same raters left out;
- ``bt_score``: its Bradley-Terry log-strength from pairwise votes between trials (bootstrap 95%
  interval; study.ranking), attention pairs left out.

``votes`` is what the score rests on (2AFC votes, ratings or comparisons); a trial counts once it has
``min_votes``. Light imports only (no torch, no Ray): the dashboard calls this.
"""

from __future__ import annotations

import pandas as pd

from models.errors import VidcolorError

SCORES = {
    "fool_rate": "fooling rate",
    "mean_rating": "mean rating (1-5)",
    "bt_score": "Bradley-Terry score",
}
COLUMNS = ["trial_id", "score", "low", "high", "votes", "counted"]


def trial_scores(
    store, study: str, score: str = "fool_rate", campaign: str | None = None, min_votes: int = 1
) -> pd.DataFrame:
    """One row per trial with votes (COLUMNS): the score, its 95% interval, the votes it rests on and
    whether they reach `min_votes`. Only `campaign`'s votes when it is given (an unknown campaign is
    an error naming it)."""
    from study.ctt.stats import aggregate, votes_from_store

    if score not in SCORES:
        raise VidcolorError(f"human score {score!r}: must be one of {', '.join(SCORES)}")
    if min_votes < 1:
        raise VidcolorError(f"human score: min_votes must be >= 1, got {min_votes}")
    if score == "bt_score":
        ranking = store.trial_ranking(study, campaign, n_boot=200)
        ranking = ranking[ranking["comparisons"] > 0]
        out = pd.DataFrame(
            {
                "trial_id": ranking["trial"],
                "score": ranking["score"],
                "low": ranking["low"],
                "high": ranking["high"],
                "votes": ranking["comparisons"].astype(int),
            }
        )
    else:
        raw = store.campaign_votes(study, campaign) if campaign else store.votes(study)
        agg = aggregate(votes_from_store(raw), by="trial", exclude_failed=True)
        if score == "fool_rate":
            out = pd.DataFrame(
                {
                    "trial_id": agg["trial"],
                    "score": agg["fooling_rate"],
                    "low": agg["fool_lo"],
                    "high": agg["fool_hi"],
                    "votes": agg["votes"].astype(int),
                }
            )
        else:
            out = pd.DataFrame(
                {
                    "trial_id": agg["trial"],
                    "score": agg["mean_rating"],
                    "low": agg["rating_lo"],
                    "high": agg["rating_hi"],
                    "votes": agg["ratings"].astype(int),
                }
            )
        out = out[out["votes"] > 0]
    out = out.assign(counted=out["votes"] >= min_votes).reset_index(drop=True)
    return out[COLUMNS]
