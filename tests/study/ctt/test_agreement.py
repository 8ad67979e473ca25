"""Agreement, position bias and rater quality of CTT votes (study.ctt.agreement), against published
and hand-computed values."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from models.errors import VidcolorError
from study.ctt.agreement import krippendorff_alpha, position_bias, rater_quality, vote_units

N = None
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the example with missing
# values: 4 coders, 12 units; the paper's alpha is 0.743 nominal and 0.849 interval
CODERS = (
    [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
)


def test_krippendorff_alpha_matches_the_published_example():
    units = [list(u) for u in zip(*CODERS)]
    nominal = krippendorff_alpha(units)
    assert nominal["alpha"] == pytest.approx(0.743, abs=5e-4)
    assert nominal["units"] == 11 and nominal["values"] == 40  # unit 12 has one value: not pairable
    assert krippendorff_alpha(units, "interval")["alpha"] == pytest.approx(0.849, abs=5e-4)


def test_krippendorff_alpha_by_hand_and_its_limits():
    # o = [[2, 2], [2, 2]], n = 8: alpha = 1 - 7 * 4 / (4 * 4 * 2) = 0.125
    assert krippendorff_alpha([[1, 1], [0, 0], [1, 0], [0, 1]])["alpha"] == pytest.approx(0.125)
    assert krippendorff_alpha([[True, True, True], [False, False]])["alpha"] == 1.0
    assert math.isnan(krippendorff_alpha([[1, 1], [1, 1]])["alpha"])  # one value: nothing to agree on
    assert math.isnan(krippendorff_alpha([[1], [0]])["alpha"])  # no unit with two values
    boot = krippendorff_alpha(
        {f"u{i}": [i % 2, i % 2, 1 - i % 2 if i % 5 == 0 else i % 2] for i in range(40)}, n_boot=200
    )
    assert boot["low"] <= boot["alpha"] <= boot["high"] and boot["high"] - boot["low"] > 0
    with pytest.raises(VidcolorError, match="metric must be one of"):
        krippendorff_alpha([[1, 2]], metric="ordinal")


def test_position_bias_share_interval_and_exact_test():
    out = position_bias(["left"] * 60 + ["right"] * 40 + [None, "rating"])
    assert out["answers"] == 100 and out["left"] == 60 and out["left_share"] == 0.6
    assert out["p"] == pytest.approx(0.056888, abs=1e-5)  # two-sided exact binomial, 60 of 100
    assert out["low"] < 0.6 < out["high"] and out["low"] > 0.5 - 0.01
    assert math.isnan(position_bias([])["left_share"])


def _votes(rows):
    return pd.DataFrame(rows, columns=["rater_id", "uid", "is_attention", "picked_real"])


def test_rater_quality_attention_and_leave_one_out_consensus():
    votes = _votes(
        [
            ("a", "i1", False, True),
            ("b", "i1", False, True),
            ("c", "i1", False, True),
            ("d", "i1", False, False),
            ("a", "i2", False, False),
            ("b", "i2", False, False),
            ("c", "i2", False, True),
            ("d", "i2", False, True),
            ("a", "att", True, True),
            ("d", "att", True, False),
            ("d", "i3", False, None),
        ]
    )
    q = rater_quality(votes).set_index("rater_id")
    # i1: the others of d said real 3 of 3 -> d disagrees; a's others 2 of 3 -> agrees
    # i2: a's others (b no, c yes, d yes) 2 of 3 yes -> a (no) disagrees; d's others 1 of 3 -> d (yes) disagrees
    assert q.loc["a", ["consensus_items", "consensus_agreement"]].tolist() == [2, 0.5]
    assert q.loc["d", ["consensus_items", "consensus_agreement"]].tolist() == [2, 0.0]
    assert q.loc["a", "attention_pass_rate"] == 1.0 and q.loc["d", "attention_pass_rate"] == 0.0
    assert q.loc["d", "votes"] == 4 and math.isnan(q.loc["b", "attention_pass_rate"])
    assert vote_units(votes) == {"i1": [True] * 3 + [False], "i2": [False, False, True, True], "att": [True, False]}
