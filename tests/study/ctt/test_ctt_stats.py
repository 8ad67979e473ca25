"""Hand-computed checks of the CTT statistics (Wilson interval, t interval, aggregation, exclusion)."""

import math

import pandas as pd
import pytest

from models.errors import VidcolorError
from study.ctt import stats as ctt_stats


def test_wilson_matches_hand_computation():
    # 3 of 10: p = .3, z² = 3.8415; centre = (.3 + .19207)/1.38415 = .35550;
    # half = 1.96·sqrt(.021 + .0096036)/1.38415 = .24772 -> [.10779, .60322]
    lo, hi = ctt_stats.wilson_interval(3, 10)
    assert lo == pytest.approx(0.10779, abs=1e-4)
    assert hi == pytest.approx(0.60322, abs=1e-4)
    # 0 of 10: lower bound 0, upper z²/n / (1 + z²/n) = .38415/1.38415 = .27753
    lo, hi = ctt_stats.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.27753, abs=1e-4)
    # symmetric: 10 of 10 mirrors 0 of 10
    lo, hi = ctt_stats.wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(1 - 0.27753, abs=1e-4)
    # 50 of 100: centre .5, half = 1.96·sqrt(.0025 + .000096)/1.038415 = .09617
    lo, hi = ctt_stats.wilson_interval(50, 100)
    assert (lo + hi) / 2 == pytest.approx(0.5)
    assert hi - 0.5 == pytest.approx(0.09617, abs=1e-4)


def test_wilson_edge_cases():
    assert all(math.isnan(v) for v in ctt_stats.wilson_interval(0, 0))
    with pytest.raises(VidcolorError, match="successes=5, n=3"):
        ctt_stats.wilson_interval(5, 3)


def test_mean_interval_and_t_quantiles():
    # 1..5: mean 3, sd sqrt(2.5), se .70711, t(4) = 2.7764 -> half 1.96324
    mean, lo, hi = ctt_stats.mean_interval([1, 2, 3, 4, 5])
    assert mean == 3.0
    assert lo == pytest.approx(3 - 1.96324, abs=1e-4) and hi == pytest.approx(3 + 1.96324, abs=1e-4)
    m, lo, hi = ctt_stats.mean_interval([4])
    assert m == 4 and math.isnan(lo) and math.isnan(hi)
    # table and expansion agree with published quantiles: t(40) = 2.0211, t(120) = 1.9799
    assert ctt_stats.t975(40) == pytest.approx(2.0211, abs=2e-4)
    assert ctt_stats.t975(120) == pytest.approx(1.9799, abs=2e-4)
    assert ctt_stats.t975(30) > ctt_stats.t975(31) > ctt_stats.Z95


def _votes():
    rows = []
    # trial A (exp1): 4 2afc votes by r1,r2,r3,r4; fooled r1 and r3 (correct=False)
    for rater, correct in [("r1", False), ("r2", True), ("r3", False), ("r4", True)]:
        rows.append(
            dict(
                rater=rater,
                item=f"a-{rater}",
                trial="A",
                experiment="exp1",
                vote_type="2afc",
                correct=correct,
                rating=None,
            )
        )
    # trial B (exp1): r1 fooled, r2 not
    rows.append(dict(rater="r1", item="b1", trial="B", experiment="exp1", vote_type="2afc", correct=False, rating=None))
    rows.append(dict(rater="r2", item="b2", trial="B", experiment="exp1", vote_type="2afc", correct=True, rating=None))
    # trial C (exp2): ratings 2 (r1), 4 (r2), 5 (r3)
    for rater, rating in [("r1", 2), ("r2", 4), ("r3", 5)]:
        rows.append(
            dict(
                rater=rater,
                item=f"c-{rater}",
                trial="C",
                experiment="exp2",
                vote_type="rating",
                correct=None,
                rating=rating,
            )
        )
    # attention checks: r1 fails one, r2 passes, r3 fails two
    for rater, correct, item in [("r1", False, "x1"), ("r2", True, "x1"), ("r3", False, "x1"), ("r3", False, "x2")]:
        rows.append(
            dict(
                rater=rater, item=item, trial=None, experiment=None, vote_type="attention", correct=correct, rating=None
            )
        )
    return pd.DataFrame(rows)


def test_attention_failures_and_flagging():
    fails = ctt_stats.attention_failures(_votes())
    assert fails.to_dict() == {"r1": 1, "r2": 0, "r3": 2, "r4": 0}
    assert ctt_stats.failed_raters(_votes()) == {"r1", "r3"}
    assert ctt_stats.failed_raters(_votes(), max_failures=1) == {"r3"}
    summ = ctt_stats.rater_summary(_votes()).set_index("rater")
    assert summ.loc["r3", "attention_checks"] == 2 and bool(summ.loc["r3", "flagged"])
    assert not bool(summ.loc["r4", "flagged"])


def test_no_attention_votes_means_no_failures():
    # regression: with no attention vote, the empty mask once selected columns and raised KeyError
    only = _votes()
    only = only[only["vote_type"] != "attention"]
    assert ctt_stats.attention_failures(only).to_dict() == {"r1": 0, "r2": 0, "r3": 0, "r4": 0}
    assert ctt_stats.failed_raters(only) == set()
    store_votes = pd.DataFrame(
        {
            "rater_id": ["a", "b"],
            "uid": ["u1", "u2"],
            "trial_id": ["T", "T"],
            "experiment": ["e", "e"],
            "is_attention": [False, False],
            "mode": ["2afc", "2afc"],
            "picked_real": [True, False],
            "rating": [None, None],
        }
    )
    votes = ctt_stats.votes_from_store(store_votes)
    res = ctt_stats.aggregate(votes, exclude_failed=True).set_index("trial")
    assert res.loc["T", "votes"] == 2 and res.loc["T", "fooled"] == 1 and res.loc["T", "excluded_raters"] == 0


def test_aggregate_per_trial_by_hand():
    res = ctt_stats.aggregate(_votes(), by="trial").set_index("trial")
    assert list(res.index) == ["A", "B", "C"]  # attention items belong to no trial
    a = res.loc["A"]
    assert (a.votes, a.fooled, a.raters, a.attention_failures) == (4, 2, 4, 3)
    assert a.fooling_rate == 0.5
    lo, hi = ctt_stats.wilson_interval(2, 4)
    assert (a.fool_lo, a.fool_hi) == (lo, hi)
    c = res.loc["C"]
    assert c.votes == 0 and math.isnan(c.fooling_rate)
    assert c.ratings == 3 and c.mean_rating == pytest.approx(11 / 3)


def test_aggregate_excluding_failed_raters_by_hand():
    res = ctt_stats.aggregate(_votes(), by="trial", exclude_failed=True).set_index("trial")
    # r1 and r3 are dropped: A keeps r2 (not fooled) and r4 (not fooled)
    a = res.loc["A"]
    assert (a.votes, a.fooled, a.fooling_rate, a.excluded_raters, a.raters) == (2, 0, 0.0, 2, 2)
    assert res.loc["B", "votes"] == 1 and res.loc["B", "fooled"] == 0
    assert res.loc["C", "ratings"] == 1 and res.loc["C", "mean_rating"] == 4.0
    # tolerating one failure keeps r1 but still drops r3
    res1 = ctt_stats.aggregate(_votes(), by="trial", exclude_failed=True, max_failures=1).set_index("trial")
    assert (res1.loc["A", "votes"], res1.loc["A", "fooled"]) == (3, 1)


def test_aggregate_per_experiment():
    res = ctt_stats.aggregate(_votes(), by="experiment").set_index("experiment")
    e1 = res.loc["exp1"]
    assert (e1.votes, e1.fooled, e1.raters) == (6, 3, 4)
    assert res.loc["exp2", "ratings"] == 3


def test_bad_vote_tables_are_named():
    with pytest.raises(VidcolorError, match="lacks column"):
        ctt_stats.aggregate(pd.DataFrame({"rater": []}))
    bad = _votes()
    bad.loc[0, "vote_type"] = "vote"
    with pytest.raises(
        VidcolorError,
        match=r"unknown vote type\(s\) \['vote'\]; expected one of "
        r"\('2afc', 'attention', 'rating'\)",
    ):
        ctt_stats.aggregate(bad)
    with pytest.raises(VidcolorError, match=r"lacks column\(s\) \['vote_type'\]"):  # the old column name
        ctt_stats.aggregate(_votes().rename(columns={"vote_type": "kind"}))
    with pytest.raises(VidcolorError, match="by must be"):
        ctt_stats.aggregate(_votes(), by="rater")


def test_votes_from_store_names_each_vote_type():
    store_votes = pd.DataFrame(
        {
            "rater_id": ["a", "a", "b", "b"],
            "uid": ["u1", "u2", "u3", "u4"],
            "trial_id": ["T", None, "T", None],
            "experiment": ["e", None, "e", None],
            "is_attention": [False, True, False, True],
            "mode": ["2afc", "2afc", "rating", "rating"],
            "picked_real": [False, True, None, None],
            "rating": [None, None, 4, 2],
        }
    )
    votes = ctt_stats.votes_from_store(store_votes)
    assert tuple(votes.columns) == ctt_stats.VOTE_COLUMNS and "vote_type" in ctt_stats.VOTE_COLUMNS
    assert ctt_stats.VOTE_TYPES == ("2afc", "attention", "rating")
    assert list(votes["vote_type"]) == ["2afc", "attention", "rating", "attention"]
    # 2afc: picked the real side; attention in rating mode: passed when rated 1 or 2; plain ratings: None
    assert list(votes["correct"]) == [False, True, None, True]
    assert list(ctt_stats.votes_from_store(store_votes.iloc[:0]).columns) == list(ctt_stats.VOTE_COLUMNS)
