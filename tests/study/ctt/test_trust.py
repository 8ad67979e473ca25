"""How far the votes can be trusted (study.ctt.trust): the store's tables into agreement, position bias,
rater quality and Crowd-BT beside Bradley-Terry, on hand-made rows."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from study.ctt import trust

VOTE_COLS = ["rater_id", "rater", "uid", "is_attention", "choice", "picked_real", "rating", "mode"]
PAIR_COLS = ["rater_id", "uid_a", "uid_b", "winner", "loser", "is_attention"]


def _votes(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=VOTE_COLS).assign(trial_id="t", experiment="e")


def _pairs(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=PAIR_COLS)


def test_pairwise_units_ignore_the_order_of_the_pair_and_failed_attention_pairs_exclude_a_rater():
    """Units p (items x, y) and q (items y, z). On p: r1 and r2 say A (one shown as x|y, one as y|x),
    r3 says B; on q: all three say B (r3 shown z|y). Coincidences: p (A, A, B): o_AA = 1, o_AB =
    o_BA = 1; q (B, B, B): o_BB = 3; n_A = 2, n_B = 4, n = 6: alpha = 1 - 5 * 2 / (2 * 2 * 4) = 0.375.
    r3 also picked the wrong recoloring of an attention pair (winner None): flagged; without r3:
    p (A, A), q (B, B): alpha = 1."""
    pairs = _pairs(
        [
            ("r1", "x", "y", "A", "B", False),
            ("r2", "y", "x", "A", "B", False),
            ("r3", "x", "y", "B", "A", False),
            ("r1", "y", "z", "B", "C", False),
            ("r2", "y", "z", "B", "C", False),
            ("r3", "z", "y", "B", "C", False),
            ("r3", "w", "x", None, "A", True),  # failed: the wrongly recolored side won
            ("r1", "w", "x", "A", None, True),  # passed
        ]
    )
    assert trust.pair_key("y", "x") == trust.pair_key("x", "y") == "x|y"
    assert trust.failed_pair_raters(pairs) == {"r3"}
    empty = _votes([])
    every = trust.summarize(empty, pairs, n_boot=0)
    row = every.agreement.set_index("task").loc["pairwise"]
    assert row["alpha"] == pytest.approx(0.375) and (row["items"], row["values"], row["votes"]) == (2, 6, 6)
    assert math.isnan(row["alpha_low"]) and pd.isna(row["answers"])  # no bootstrap asked; no sides stored
    raters = every.raters.set_index("rater_id")
    assert raters.loc["r1", ["votes", "attention_checks", "attention_passed"]].tolist() == [3, 1, 1]
    assert raters.loc["r3", "attention_pass_rate"] == 0.0
    # leave-one-out: on p r3 is against r1 and r2, on q everyone agrees
    assert raters["consensus_agreement"].to_dict() == {"r1": 1.0, "r2": 1.0, "r3": 0.5}
    assert raters.loc["r3", "reliability"] < raters.loc["r1", "reliability"]
    assert list(every.ranking["trial"]) == ["A", "B", "C"] and every.excluded == set()  # A beat B 2-1, B beat C 3-0
    strict = trust.summarize(empty, pairs, exclude_failed=True, n_boot=0)
    assert strict.excluded == {"r3"} and set(strict.raters["rater_id"]) == {"r1", "r2"}
    assert strict.agreement.loc[0, "alpha"] == pytest.approx(1.0)
    assert strict.agreement.loc[0, "votes"] == 4


def test_two_afc_and_rating_figures_and_their_reading():
    """2AFC: two raters agree on u1 and u2 (T, T), (F, F): alpha 1; answers 3 left of 4 (the attention
    check's 'left' not counted). Ratings: units (1, 2) and (4, 5): interval alpha 0.85 (see
    tests/dashboard/test_ctt_trust.py); the rating check, rated 5, is failed."""
    votes = _votes(
        [
            ("a", "A", "u1", False, "left", True, None, "2afc"),
            ("a", "A", "u2", False, "left", False, None, "2afc"),
            ("b", "B", "u1", False, "left", True, None, "2afc"),
            ("b", "B", "u2", False, "right", False, None, "2afc"),
            ("b", "B", "c1", True, "left", True, None, "2afc"),
            ("d", "D", "u3", False, None, None, 1, "rating"),
            ("d", "D", "u4", False, None, None, 4, "rating"),
            ("e", "E", "u3", False, None, None, 2, "rating"),
            ("e", "E", "u4", False, None, None, 5, "rating"),
            ("e", "E", "c1", True, None, None, 5, "rating"),
        ]
    )
    out = trust.summarize(votes, _pairs([]), n_boot=200)
    agreement = out.agreement.set_index("task")
    assert list(agreement.index) == ["2afc", "rating"] and out.ranking.empty
    assert agreement.loc["2afc", "alpha"] == 1.0 and agreement.loc["rating", "alpha"] == pytest.approx(0.85)
    assert agreement.loc["2afc", ["answers", "left"]].tolist() == [4, 3]
    assert agreement.loc["2afc", "left_p"] == pytest.approx(10 / 16)  # 2 * P(X >= 3), X ~ Bin(4, 1/2)
    assert pd.isna(agreement.loc["rating", "answers"])
    raters = out.raters.set_index("rater_id")
    assert raters["rater"].to_dict() == {"a": "A", "b": "B", "d": "D", "e": "E"}
    assert raters.loc["e", ["task", "votes", "attention_checks", "attention_passed"]].tolist() == ["rating", 3, 1, 0]
    assert math.isnan(raters.loc["e", "consensus_agreement"]) and math.isnan(raters.loc["a", "reliability"])
    lines = trust.reading(out)
    assert lines[0].startswith("agreement, 2afc: Krippendorff's alpha (nominal) 1.000 (95% ")
    assert lines[0].endswith("over 2 items with 2+ votes (4 votes)")
    assert lines[-1] == (
        "position bias, 2afc: 75% of 4 answers on the left (95% 30% to 95%), exact binomial p = 0.625 against 50%"
    )
    # e failed the rating check: excluded, the rating units have one value each
    strict = trust.summarize(votes, _pairs([]), exclude_failed=True, n_boot=0)
    assert strict.excluded == {"e"} and strict.agreement.set_index("task").loc["rating", "items"] == 0
    assert math.isnan(strict.agreement.set_index("task").loc["rating", "alpha"])


def test_no_votes():
    out = trust.summarize(_votes([]), _pairs([]))
    assert out.empty and out.raters.empty and out.ranking.empty and trust.reading(out) == []
    assert list(out.agreement.columns) == trust.AGREEMENT_COLUMNS
    assert list(out.raters.columns) == trust.RATER_COLUMNS and list(out.ranking.columns) == trust.RANKING_COLUMNS
