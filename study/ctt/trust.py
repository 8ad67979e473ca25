"""How far a Color Turing Test's votes can be trusted, from the results store's tables: the figures
of the CTT results page's section of that name and of `vidcolor ctt export`'s -agreement, -raters
and -ranking files (docs/ctt-analysis.md).

Per task (2AFC "which is real", 1-5 ratings, pairwise "which looks more natural"):

- agreement between raters, Krippendorff's alpha (`study.ctt.agreement`) over the regular items
  (attention checks, whose answer the item forces, left out): nominal on picked_real per item for
  2AFC, interval on the rating per item for ratings, nominal on the winning trial per source pair
  (the two items, in either order) for pairwise votes; with a bootstrap 95% interval over items;
- left/right position bias of the 2AFC and pairwise answers on regular items (the `choice` column;
  pairwise votes record it since schema revision 0008, older ones have none);
- per rater: votes, attention checks passed and the leave-one-out consensus agreement
  (`rater_quality`: 2AFC on picked_real; pairwise on which trial of the pair won, an attention pair
  passed when the wrongly recolored side lost; ratings: a check passed when rated 1 or 2, as
  `study.ctt.stats`, and no consensus figure), and for pairwise raters Crowd-BT's reliability;
- the pairwise ranking by plain Bradley-Terry beside Crowd-BT (`study.ranking`), which weighs
  each rater by that reliability.

`exclude_failed` drops, everywhere, the votes of raters who failed an attention check: a 2AFC or
rating check (`study.ctt.stats.failed_raters`) or an attention pair. Light imports: choix
(study.ranking) and scipy load only when the figures are computed; no torch, no Ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from study.ctt import agreement as agr
from study.ctt import stats as ctt_stats

TASKS = ("2afc", "rating", "pairwise")
N_BOOT = 1000  # bootstrap resamples of alpha's interval
#: the agreement table: one row per task that has votes
AGREEMENT_COLUMNS = [
    "task",
    "votes",
    "metric",
    "alpha",
    "alpha_low",
    "alpha_high",
    "items",
    "values",
    "answers",
    "left",
    "left_share",
    "left_low",
    "left_high",
    "left_p",
]
#: the raters table: one row per rater and task
RATER_COLUMNS = ["rater_id", "rater", "task", *agr.QUALITY_COLUMNS[1:], "reliability"]
#: the pairwise ranking: plain Bradley-Terry beside Crowd-BT
RANKING_COLUMNS = [
    "trial",
    "comparisons",
    "bt_score",
    "bt_low",
    "bt_high",
    "bt_rank",
    "crowd_bt_score",
    "crowd_bt_rank",
]
METRIC = {"2afc": "nominal", "rating": "interval", "pairwise": "nominal"}


@dataclass
class Trust:
    """The figures: `agreement` (AGREEMENT_COLUMNS), `raters` (RATER_COLUMNS), `ranking`
    (RANKING_COLUMNS, empty without pairwise votes) and the raters left out (`excluded`)."""

    agreement: pd.DataFrame
    raters: pd.DataFrame
    ranking: pd.DataFrame
    excluded: set = field(default_factory=set)

    @property
    def empty(self) -> bool:
        return self.agreement.empty


def _bool(v) -> bool:
    return bool(v) and not (isinstance(v, float) and math.isnan(v))


def failed_pair_raters(pairs: pd.DataFrame) -> set:
    """Raters who picked the wrongly recolored side of an attention pair (its winner is no trial)."""
    if pairs.empty:
        return set()
    att = pairs[pairs["is_attention"].map(_bool)]
    return set(att.loc[att["winner"].isna(), "rater_id"])


def flagged_raters(votes: pd.DataFrame, pairs: pd.DataFrame) -> set:
    """Raters who failed an attention check: a 2AFC or rating check, or an attention pair."""
    failed = ctt_stats.failed_raters(ctt_stats.votes_from_store(votes)) if len(votes) else set()
    return set(failed) | failed_pair_raters(pairs)


def pair_key(uid_a: str, uid_b: str) -> str:
    """The unit of a pairwise vote: its two items in either order."""
    return "|".join(sorted((str(uid_a), str(uid_b))))


def pair_answers(pairs: pd.DataFrame) -> pd.DataFrame:
    """Pairwise votes as `rater_quality` reads 2AFC votes: rater_id, uid (`pair_key`), is_attention,
    picked_real (regular pairs: the first trial of the pair in sorted order won, a binary answer
    per pair; attention pairs: the check was passed, the wrongly recolored side lost), winner."""
    cols = ["rater_id", "uid", "is_attention", "picked_real", "winner"]
    if pairs.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for r in pairs.itertuples(index=False):
        att = _bool(r.is_attention)
        if att:
            picked = r.winner is not None and not pd.isna(r.winner)
        else:
            picked = str(r.winner) == min(str(r.winner), str(r.loser))
        rows.append((r.rater_id, pair_key(r.uid_a, r.uid_b), att, picked, r.winner))
    return pd.DataFrame(rows, columns=cols)


def _rating_answers(votes: pd.DataFrame) -> pd.DataFrame:
    """Rating votes with picked_real = a check passed (rated 1 or 2) on attention items, else None:
    `rater_quality` then counts the checks and gives no consensus figure."""
    out = votes.copy()
    rating = pd.to_numeric(out["rating"], errors="coerce")
    att = out["is_attention"].map(_bool)
    out["picked_real"] = [(bool(x <= 2) if a and not pd.isna(x) else None) for a, x in zip(att, rating)]
    return out


def _agreement_row(task: str, units: dict, votes: int, n_boot: int, rng) -> dict:
    a = agr.krippendorff_alpha(units, METRIC[task], n_boot=n_boot, rng=rng)
    row = dict.fromkeys(AGREEMENT_COLUMNS, math.nan)
    row.update(
        task=task,
        votes=votes,
        metric=METRIC[task],
        alpha=a["alpha"],
        alpha_low=a["low"],
        alpha_high=a["high"],
        items=a["units"],
        values=a["values"],
    )
    return row


def _pairwise_ranking(regular: pd.DataFrame, trials: list[str] | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Plain Bradley-Terry (`fit_bradley_terry`, bootstrap interval) beside Crowd-BT on the regular
    pairwise votes, and Crowd-BT's raters (rater_id, reliability)."""
    from study.ranking import fit_bradley_terry, fit_crowd_bt  # choix: only when there are pairwise votes

    items = sorted(set(trials or []) | set(regular["winner"]) | set(regular["loser"]))
    bt = fit_bradley_terry(regular, items=items).set_index("trial")
    crowd, reliability = fit_crowd_bt(regular.rename(columns={"rater_id": "rater"}), items=items)
    crowd = crowd.set_index("trial")
    out = pd.DataFrame(
        {
            "trial": bt.index,
            "comparisons": bt["comparisons"].astype(int).values,
            "bt_score": bt["score"].values,
            "bt_low": bt["low"].values,
            "bt_high": bt["high"].values,
            "bt_rank": bt["rank"].values,
            "crowd_bt_score": crowd["score"].reindex(bt.index).values,
            "crowd_bt_rank": crowd["rank"].reindex(bt.index).values,
        }
    )
    return out[RANKING_COLUMNS], reliability.rename(columns={"rater": "rater_id"})[["rater_id", "reliability"]]


def _bias_columns(bias: dict) -> dict:
    return {
        "answers": bias["answers"],
        "left": bias["left"],
        "left_share": bias["left_share"],
        "left_low": bias["low"],
        "left_high": bias["high"],
        "left_p": bias["p"],
    }


def summarize(
    votes: pd.DataFrame,
    pairs: pd.DataFrame,
    exclude_failed: bool = False,
    trials: list[str] | None = None,
    names: dict | None = None,
    n_boot: int = N_BOOT,
    rng: int | None = 0,
) -> Trust:
    """The figures from `Store.votes()` rows (`votes`) and `Store.pair_votes()` rows (`pairs`);
    `trials`: every trial to rank (those with items: the ranking lists the ones without votes
    last, as `Store.trial_ranking`); `names`: rater id -> display name (else Store.votes' `rater`)."""
    excluded = flagged_raters(votes, pairs) if exclude_failed else set()
    if excluded:
        votes = votes[~votes["rater_id"].isin(excluded)]
        pairs = pairs[~pairs["rater_id"].isin(excluded)]
    names = dict(names or {})
    if len(votes):
        names = {**dict(zip(votes["rater_id"], votes["rater"])), **names}
    rows, raters = [], []
    ranking = pd.DataFrame(columns=RANKING_COLUMNS)
    for task in TASKS:
        if task == "pairwise":
            if pairs.empty:
                continue
            answers = pair_answers(pairs)
            regular = pairs[~pairs["is_attention"].map(_bool)]
            units = agr.vote_units(answers[~answers["is_attention"]], unit="uid", value="winner")
            row = _agreement_row(task, units, len(regular), n_boot, rng)
            if "choice" in regular and regular["choice"].notna().any():  # recorded since schema 0008
                row.update(_bias_columns(agr.position_bias(regular["choice"])))
            rows.append(row)
            quality = agr.rater_quality(answers)
            quality["reliability"] = math.nan
            if len(regular):
                ranking, reliability = _pairwise_ranking(regular, trials)
                quality["reliability"] = quality["rater_id"].map(reliability.set_index("rater_id")["reliability"])
        else:
            mine = votes[votes["mode"] == task] if len(votes) else votes
            if mine.empty:
                continue
            regular = mine[~mine["is_attention"].map(_bool)]
            value = "picked_real" if task == "2afc" else "rating"
            units = agr.vote_units(regular, unit="uid", value=value)
            if task == "rating":
                units = {k: [float(v) for v in vals] for k, vals in units.items()}
            row = _agreement_row(task, units, len(regular), n_boot, rng)
            if task == "2afc":
                row.update(_bias_columns(agr.position_bias(regular["choice"])))
            rows.append(row)
            quality = agr.rater_quality(mine if task == "2afc" else _rating_answers(mine))
            quality["reliability"] = math.nan
        quality.insert(1, "rater", quality["rater_id"].map(names))
        quality.insert(2, "task", task)
        raters.append(quality)
    agreement = pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)
    for col in ("votes", "items", "values"):
        agreement[col] = agreement[col].astype(int)
    for col in ("answers", "left"):
        agreement[col] = agreement[col].astype("Int64")
    rater_table = pd.concat(raters, ignore_index=True) if raters else pd.DataFrame(columns=RATER_COLUMNS)
    return Trust(agreement, rater_table[RATER_COLUMNS], ranking, excluded)


def from_store(
    store, study: str, exclude_failed: bool = False, campaign: str | None = None, n_boot: int = N_BOOT
) -> Trust:
    """`summarize` on a study's votes (or one campaign's), every trial with items ranked."""
    votes = store.campaign_votes(study, campaign) if campaign else store.votes(study)
    pairs = store.pair_votes(study, campaign)
    items = store.ctt_items(study)
    trials = sorted(items.loc[~items["is_attention"].map(_bool), "trial_id"].dropna()) if len(items) else []
    names = store.raters().set_index("rater_id")["name"].dropna().to_dict() if len(pairs) else None
    return summarize(votes, pairs, exclude_failed=exclude_failed, trials=trials, names=names, n_boot=n_boot)


def reading(trust: Trust) -> list[str]:
    """One short line per figure, for a printed summary: alpha per task, then the 2AFC bias."""
    out = []
    for r in trust.agreement.itertuples(index=False):
        interval = "" if math.isnan(r.alpha_low) else f" (95% {r.alpha_low:.3f} to {r.alpha_high:.3f})"
        alpha = "n/a" if math.isnan(r.alpha) else f"{r.alpha:.3f}"
        out.append(
            f"agreement, {r.task}: Krippendorff's alpha ({r.metric}) {alpha}{interval} over {r.items} items "
            f"with 2+ votes ({r.values} votes)"
        )
    for r in trust.agreement.itertuples(index=False):
        if not pd.isna(r.answers) and r.answers:
            out.append(
                f"position bias, {r.task}: {r.left_share:.0%} of {r.answers} answers on the left "
                f"(95% {r.left_low:.0%} to {r.left_high:.0%}), exact binomial p = {r.left_p:.3g} against 50%"
            )
    return out
