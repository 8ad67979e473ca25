"""The human verdict per trial: one score from the Color Turing Test votes, for the search and the dashboard.

Three scores, each "higher is better":

- ``fool_rate``: the share of a trial's 2AFC votes that took its colorization for the real clip
  (Zhang et al. 2016's fooling rate; Wilson 95% interval), raters who failed an attention check left out
  unless ``exclude_failed=False`` (the dashboard's pages count every rater unless asked);
- ``mean_rating``: the mean 1-5 naturalness rating of its clips (t 95% interval), the same raters counted;
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
    store,
    study: str,
    score: str = "fool_rate",
    campaign: str | None = None,
    min_votes: int = 1,
    exclude_failed: bool = True,
) -> pd.DataFrame:
    """One row per trial with votes (COLUMNS): the score, its 95% interval, the votes it rests on and
    whether they reach `min_votes`. Only `campaign`'s votes when it is given (an unknown campaign is
    an error naming it). `exclude_failed`: the fooling rate and the mean rating leave out raters who
    failed an attention check (the default, what `vidcolor tune`'s [human] rounds count); False
    counts every rater, as the dashboard's pages do by default. The Bradley-Terry score ignores it
    (attention pairs are left out of its fit, their raters' other votes kept)."""
    from study.ctt.stats import aggregate, votes_from_store

    if score not in SCORES:
        raise VidcolorError(f"human score {score!r}: must be one of {', '.join(SCORES)}")
    if min_votes < 1:
        raise VidcolorError(f"human score: min_votes must be >= 1, got {min_votes}")
    if score != "bt_score":
        raw = store.campaign_votes(study, campaign) if campaign else store.votes(study)
        agg = aggregate(votes_from_store(raw), by="trial", exclude_failed=exclude_failed)
        return from_aggregate(agg, score, min_votes)
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
    return out.assign(counted=out["votes"] >= min_votes).reset_index(drop=True)[COLUMNS]


#: a score -> its columns in `study.ctt.stats.aggregate`: (score, 95% low, 95% high, votes)
AGGREGATE_COLUMNS = {
    "fool_rate": ("fooling_rate", "fool_lo", "fool_hi", "votes"),
    "mean_rating": ("mean_rating", "rating_lo", "rating_hi", "ratings"),
}


def from_aggregate(agg: pd.DataFrame, score: str, min_votes: int = 1) -> pd.DataFrame:
    """`trial_scores`' rows (COLUMNS) from `study.ctt.stats.aggregate(votes, by="trial", ...)` (the
    table the CTT results page draws): the fooling rate with its Wilson interval or the mean rating
    with its t interval, the 2AFC votes or ratings, counted = votes >= `min_votes`; trials without
    such votes left out."""
    if score not in AGGREGATE_COLUMNS:
        raise VidcolorError(f"human score {score!r} from CTT votes: must be one of {', '.join(AGGREGATE_COLUMNS)}")
    value, low, high, votes = AGGREGATE_COLUMNS[score]
    out = pd.DataFrame(
        {
            "trial_id": agg["trial"],
            "score": agg[value],
            "low": agg[low],
            "high": agg[high],
            "votes": agg[votes].astype(int),
        }
    )
    out = out[out["votes"] > 0]
    return out.assign(counted=out["votes"] >= min_votes).reset_index(drop=True)[COLUMNS]
