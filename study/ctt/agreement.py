"""How far a Color Turing Test's votes can be trusted: agreement between raters, left/right
position bias, and each rater's quality.

- `krippendorff_alpha`: Krippendorff's alpha (Krippendorff 2004, "Content Analysis", ch. 11; the
  computation of Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability") over units (CTT
  items, or pairs of trials on one source) each coded by any number of raters, missing values
  allowed, nominal or interval; with a bootstrap interval over units. alpha = 1 is perfect
  agreement, 0 the agreement of chance. In a 2AFC CTT chance agreement is *expected* for a
  colorizer that fools people (raters then guess): read alpha with the fooling rate, not alone.
- `position_bias`: the share of answers for the left side with its Wilson interval and an exact
  binomial test against 1/2 (sides are drawn at random, so a bias shows in the raters, not the items).
- `rater_quality`: per rater, attention checks passed and agreement with the other raters'
  majority on the same items (leave-one-out consensus).

Pure numpy/pandas/scipy: no torch, no Ray.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping

import numpy as np
import pandas as pd

from models.errors import VidcolorError
from study.ctt.stats import wilson_interval

METRICS = ("nominal", "interval")


def _delta(values: list, metric: str) -> np.ndarray:
    """The squared distance between values: 0/1 nominal, (c - k)^2 interval. Zero on the diagonal."""
    if metric == "nominal":
        return 1.0 - np.eye(len(values))
    v = np.asarray(values, dtype=float)
    return (v[:, None] - v[None, :]) ** 2


def _unit_parts(units: list[list], values: list, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pairable unit (2+ values): its value counts c (units, V) and its observed disagreement,
    the sum of its part of Krippendorff's coincidence matrix, (c c' - diag c) / (m - 1), weighted by
    `delta`: c' delta c / (m - 1) as delta's diagonal is 0. The coincidence matrix's row sums are the
    counts, so alpha needs only these two sums over units (and a bootstrap their weighted sums)."""
    index = {v: i for i, v in enumerate(values)}
    counts = np.zeros((len(units), len(values)))
    observed = np.zeros(len(units))
    for u, unit in enumerate(units):
        m = len(unit)
        if m < 2:
            continue
        for v in unit:
            counts[u, index[v]] += 1
        # every ordered pair of distinct coders in the unit, each unit weighing its m values
        observed[u] = counts[u] @ delta @ counts[u] / (m - 1)
    return counts, observed


def _alpha_of(n_c: np.ndarray, observed: float, delta: np.ndarray) -> float:
    """Alpha from the values' totals n_c and the observed disagreement."""
    n = n_c.sum()
    if n < 2:
        return math.nan
    expected = n_c @ delta @ n_c / (n - 1)
    if expected == 0:  # one value only: no variation to agree on
        return math.nan
    return 1.0 - observed / expected


def krippendorff_alpha(
    units: Mapping[Hashable, Iterable] | Iterable[Iterable],
    metric: str = "nominal",
    n_boot: int = 0,
    rng: np.random.Generator | int | None = 0,
) -> dict:
    """Krippendorff's alpha of `units` (each the values its raters gave; None/NaN is missing),
    `metric` nominal or interval (ratings). Returns ``{"alpha", "low", "high", "units", "values"}``:
    units that have 2+ values (the pairable ones) and how many values they hold; with `n_boot`,
    a 95% percentile interval from resampling the units (else low = high = NaN)."""
    if metric not in METRICS:
        raise VidcolorError(f"Krippendorff's alpha: metric must be one of {METRICS}, got {metric!r}")
    raw = units.values() if isinstance(units, Mapping) else units
    cleaned = []
    for unit in raw:
        kept = [v for v in unit if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if len(kept) >= 2:
            cleaned.append(kept)
    values = sorted({v for unit in cleaned for v in unit}, key=lambda v: (str(type(v)), v))
    delta = _delta(values, metric)
    counts, observed = _unit_parts(cleaned, values, delta)
    alpha = _alpha_of(counts.sum(axis=0), observed.sum(), delta) if cleaned else math.nan
    low = high = math.nan
    if n_boot > 0 and len(cleaned) >= 2:
        gen = np.random.default_rng(rng)
        boots = []
        for _ in range(n_boot):  # a resample of the units: how often each is drawn weighs its sums
            weights = np.bincount(gen.integers(0, len(cleaned), len(cleaned)), minlength=len(cleaned))
            boots.append(_alpha_of(weights @ counts, weights @ observed, delta))
        boots = [b for b in boots if not math.isnan(b)]
        if boots:
            low, high = (float(x) for x in np.percentile(boots, [2.5, 97.5]))
    return {
        "alpha": float(alpha),
        "low": low,
        "high": high,
        "units": len(cleaned),
        "values": int(sum(len(u) for u in cleaned)),
    }


def vote_units(votes: pd.DataFrame, unit: str = "uid", value: str = "picked_real") -> dict:
    """Votes grouped into Krippendorff units: `unit` column -> list of `value` (one per vote)."""
    missing = [c for c in (unit, value) if c not in votes.columns]
    if missing:
        raise VidcolorError(f"votes lack column(s) {missing}; have {list(votes.columns)}")
    out: dict = {}
    for key, v in zip(votes[unit], votes[value]):
        if v is None or (not isinstance(v, str) and pd.isna(v)):
            continue
        out.setdefault(key, []).append(bool(v) if isinstance(v, (bool, np.bool_)) else v)
    return out


def position_bias(sides: Iterable[str | None]) -> dict:
    """Left/right bias of the answers: ``{"answers", "left", "left_share", "low", "high", "p"}``
    with the Wilson 95% interval of the share of "left" and the two-sided exact binomial p-value
    against 1/2 (scipy.stats.binomtest). Answers other than left/right (ratings) are not counted."""
    from scipy.stats import binomtest

    kept = [s for s in sides if s in ("left", "right")]
    n, left = len(kept), sum(1 for s in kept if s == "left")
    lo, hi = wilson_interval(left, n)
    return {
        "answers": n,
        "left": left,
        "left_share": left / n if n else math.nan,
        "low": lo,
        "high": hi,
        "p": float(binomtest(left, n, 0.5).pvalue) if n else math.nan,
    }


#: `rater_quality`'s table
QUALITY_COLUMNS = [
    "rater_id",
    "votes",
    "attention_checks",
    "attention_passed",
    "attention_pass_rate",
    "consensus_items",
    "consensus_agreement",
]


def rater_quality(votes: pd.DataFrame) -> pd.DataFrame:
    """Per rater: votes, attention checks seen and passed, pass rate, and agreement with the
    consensus: over the rater's counted 2AFC votes on items that at least two *other* raters
    answered with a strict majority, the share that picked what that majority picked (NaN with
    no such item). `votes`: Store.votes() rows (rater_id, uid, is_attention, picked_real)."""
    cols = QUALITY_COLUMNS
    if votes.empty:
        return pd.DataFrame(columns=cols)
    answered = votes[votes["picked_real"].notna()].copy()
    answered["picked_real"] = answered["picked_real"].astype(bool)
    regular = answered[~answered["is_attention"].astype(bool)]
    yes = regular.groupby("uid")["picked_real"].sum()
    total = regular.groupby("uid")["picked_real"].size()
    rows = []
    for rater, mine in votes.groupby("rater_id", sort=True):
        att = mine[mine["is_attention"].astype(bool) & mine["picked_real"].notna()]
        passed = int(att["picked_real"].astype(bool).sum())
        agree = n_items = 0
        for uid, picked in regular[regular["rater_id"] == rater][["uid", "picked_real"]].itertuples(index=False):
            others_yes, others = yes[uid] - int(picked), total[uid] - 1
            if others < 2 or 2 * others_yes == others:
                continue
            n_items += 1
            agree += int(bool(picked) == (2 * others_yes > others))
        rows.append(
            {
                "rater_id": rater,
                "votes": int(len(mine)),
                "attention_checks": int(len(att)),
                "attention_passed": passed,
                "attention_pass_rate": passed / len(att) if len(att) else math.nan,
                "consensus_items": n_items,
                "consensus_agreement": agree / n_items if n_items else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=cols)
