"""Color Turing Test statistics: Wilson intervals, mean-rating intervals, per-trial aggregation.

The CTT follows Zhang et al. 2016 ("Colorful Image Colorization", sec. 3.1): a rater sees the real
clip and a colorized one side by side and picks the real one; the *fooling rate* of a colorizer is
the share of votes that picked its colorized clip. Attention checks pair the real clip with an
obviously wrong recoloring (hue-rotated / channel-swapped); a rater who picks the wrong one has not
been looking, and their votes can be excluded. The optional naturalness mode collects a 1-5 rating
of a single clip (a mean opinion score, as the seed paper's CTT column reads).

Pure pandas/numpy: no torch, no Ray (the dashboard imports this at start-up).

Votes come as one DataFrame row per vote with the columns in `VOTE_COLUMNS`:
``rater`` (id), ``item`` (id), ``trial`` (trial id or None for attention items), ``experiment``,
``vote_type`` (one of `VOTE_TYPES`: ``"2afc"``, ``"attention"`` or ``"rating"``), ``correct`` (for
2afc/attention: the rater picked the real clip; None for ratings), ``rating`` (1-5 for ratings,
else NaN).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from models.errors import VidcolorError

Z95 = 1.959963984540054  # two-sided 95% normal quantile
VOTE_COLUMNS = ("rater", "item", "trial", "experiment", "vote_type", "correct", "rating")
VOTE_TYPES = ("2afc", "attention", "rating")

# Student t 0.975 quantiles for 1..30 degrees of freedom (standard tables); beyond 30 we use the
# Cornish-Fisher expansion around the normal quantile, accurate to ~1e-4 there.
_T975 = (
    12.7062,
    4.3027,
    3.1824,
    2.7764,
    2.5706,
    2.4469,
    2.3646,
    2.3060,
    2.2622,
    2.2281,
    2.2010,
    2.1788,
    2.1604,
    2.1448,
    2.1314,
    2.1199,
    2.1098,
    2.1009,
    2.0930,
    2.0860,
    2.0796,
    2.0739,
    2.0687,
    2.0639,
    2.0595,
    2.0555,
    2.0518,
    2.0484,
    2.0452,
    2.0423,
)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (df >= 1)."""
    if df < 1:
        raise VidcolorError(f"t quantile needs at least 1 degree of freedom, got df={df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = Z95
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (nan, nan) when n == 0.

    centre = (p + z²/2n) / (1 + z²/n), half width = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n).
    """
    if n < 0 or successes < 0 or successes > n:
        raise VidcolorError(f"Wilson interval needs 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return (lo, hi)


def mean_interval(values: Iterable[float]) -> tuple[float, float, float]:
    """Mean with its Student-t 95% interval: (mean, lo, hi); the interval is nan with < 2 values."""
    x = np.asarray([v for v in values if v is not None and not pd.isna(v)], dtype=np.float64)
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if x.size < 2:
        return (mean, math.nan, math.nan)
    half = t975(x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return (mean, mean - half, mean + half)


def check_votes(votes: pd.DataFrame) -> pd.DataFrame:
    """Validate the vote table's columns and vote types (column `vote_type`); return a copy with
    normalized dtypes."""
    missing = [c for c in VOTE_COLUMNS if c not in votes.columns]
    if missing:
        raise VidcolorError(f"CTT votes table lacks column(s) {missing}; has {list(votes.columns)}")
    bad = sorted(set(votes["vote_type"].dropna()) - set(VOTE_TYPES))
    if bad:
        raise VidcolorError(f"CTT votes: unknown vote type(s) {bad}; expected one of {VOTE_TYPES}")
    out = votes.copy()
    out["rating"] = pd.to_numeric(out["rating"], errors="coerce")
    out["correct"] = out["correct"].astype("object").where(out["correct"].notna(), None)
    return out


def attention_failures(votes: pd.DataFrame) -> pd.Series:
    """Per rater: how many attention checks they failed (picked the wrong recoloring as real)."""
    votes = check_votes(votes)
    att = votes[votes["vote_type"] == "attention"]
    # an explicit bool mask: an empty object-dtype Series would index columns, not rows
    failed = att.loc[att["correct"].map(lambda c: c is not None and not bool(c)).astype(bool)]
    counts = failed.groupby("rater").size()
    raters = pd.Index(votes["rater"].unique(), name="rater")
    return counts.reindex(raters, fill_value=0).astype(int)


def failed_raters(votes: pd.DataFrame, max_failures: int = 0) -> set:
    """Raters who failed more than `max_failures` attention checks (default: any failure)."""
    fails = attention_failures(votes)
    return set(fails[fails > max_failures].index)


def aggregate(
    votes: pd.DataFrame, by: str = "trial", exclude_failed: bool = False, max_failures: int = 0
) -> pd.DataFrame:
    """CTT results per `by` ("trial" or "experiment").

    Columns: `by`, votes (2AFC votes), fooled (votes for the colorized clip), fooling_rate,
    fool_lo, fool_hi (Wilson 95%), ratings, mean_rating, rating_lo, rating_hi (t 95%),
    raters (distinct raters with any vote in the group), attention_failures (failed checks by
    those raters), excluded_raters (raters dropped from the group by `exclude_failed`).
    Attention items belong to no trial and do not count as votes.
    """
    if by not in ("trial", "experiment"):
        raise VidcolorError(f"CTT aggregation: by must be 'trial' or 'experiment', got {by!r}")
    votes = check_votes(votes)
    fails = attention_failures(votes)
    bad = set(fails[fails > max_failures].index)
    scored = votes[votes["vote_type"].isin(("2afc", "rating")) & votes[by].notna()]
    rows = []
    for key, group in scored.groupby(by, sort=True):
        excluded = sorted(set(group["rater"]) & bad) if exclude_failed else []
        if excluded:
            group = group[~group["rater"].isin(excluded)]
        afc = group[group["vote_type"] == "2afc"]
        n = int(len(afc))
        fooled = int(sum(1 for c in afc["correct"] if c is not None and not bool(c)))
        lo, hi = wilson_interval(fooled, n)
        mean, rlo, rhi = mean_interval(group.loc[group["vote_type"] == "rating", "rating"])
        raters = sorted(set(group["rater"]))
        rows.append(
            {
                by: key,
                "votes": n,
                "fooled": fooled,
                "fooling_rate": fooled / n if n else math.nan,
                "fool_lo": lo,
                "fool_hi": hi,
                "ratings": int((group["vote_type"] == "rating").sum()),
                "mean_rating": mean,
                "rating_lo": rlo,
                "rating_hi": rhi,
                "raters": len(raters),
                "attention_failures": int(fails.reindex(raters, fill_value=0).sum()),
                "excluded_raters": len(excluded),
            }
        )
    cols = [
        by,
        "votes",
        "fooled",
        "fooling_rate",
        "fool_lo",
        "fool_hi",
        "ratings",
        "mean_rating",
        "rating_lo",
        "rating_hi",
        "raters",
        "attention_failures",
        "excluded_raters",
    ]
    return pd.DataFrame(rows, columns=cols)


def rater_summary(votes: pd.DataFrame, max_failures: int = 0) -> pd.DataFrame:
    """Per rater: votes, attention checks seen and failed, and whether they are flagged."""
    votes = check_votes(votes)
    fails = attention_failures(votes)
    att = votes[votes["vote_type"] == "attention"].groupby("rater").size()
    total = votes.groupby("rater").size()
    out = pd.DataFrame(
        {
            "votes": total,
            "attention_checks": att.reindex(total.index, fill_value=0),
            "attention_failures": fails.reindex(total.index, fill_value=0),
        }
    )
    out["flagged"] = out["attention_failures"] > max_failures
    return out.reset_index().rename(columns={"index": "rater"})


def votes_from_store(store_votes: pd.DataFrame) -> pd.DataFrame:
    """Map `Store.votes()` rows to `VOTE_COLUMNS`.

    A 2AFC vote is correct when the rater picked the real side. An attention check shown in rating
    mode (a single, obviously wrong recoloring) counts as passed when rated 1 or 2.
    """
    df = store_votes
    if df.empty:
        return pd.DataFrame(columns=list(VOTE_COLUMNS))

    def vote_type(row) -> str:
        if bool(row["is_attention"]):
            return "attention"
        return "rating" if row["mode"] == "rating" else "2afc"

    def correct(row):
        if row["mode"] == "rating":
            return (row["rating"] <= 2) if bool(row["is_attention"]) and not pd.isna(row["rating"]) else None
        return None if row["picked_real"] is None or pd.isna(row["picked_real"]) else bool(row["picked_real"])

    out = pd.DataFrame(
        {
            "rater": df["rater_id"],
            "item": df["uid"],
            "trial": df["trial_id"].where(df["trial_id"].notna(), None),
            "experiment": df["experiment"].where(df["experiment"].notna(), None),
            "vote_type": df.apply(vote_type, axis=1),
            "correct": df.apply(correct, axis=1).astype(object),
            "rating": pd.to_numeric(df["rating"], errors="coerce"),
        }
    )
    return out
