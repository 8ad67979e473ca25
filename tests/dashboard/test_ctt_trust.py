"""AppTest of the CTT results page's "How far the votes can be trusted" (study.ctt.trust) on hand-made
votes, against hand-computed figures."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
Z = 1.959963984540054


def wilson(k: int, n: int) -> list[float]:
    p, z2 = k / n, Z * Z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return [centre - half, centre + half]


def texts(at: AppTest) -> str:
    parts = [e.value for element in ("markdown", "caption", "subheader") for e in getattr(at, element)]
    return "\n".join(str(p) for p in parts)


#: a table of the section -> a column only it has (AppTest gives a dataframe no key)
TABLES = {"agreement": "alpha", "bias": "left_share", "raters": "consensus_agreement", "crowd_bt": "crowd_bt_score"}


def tables(at: AppTest, name: str) -> list:
    return [d.value for d in at.dataframe if TABLES[name] in d.value.columns]


def table(at: AppTest, name: str):
    [frame] = tables(at, name)
    return frame


def _votes(store) -> None:
    """2AFC on the regular items u1-u3 (1 = picked the real clip) and one attention check:

            u1 u2 u3  sides  check
        ann  1  1  0  L L L  passed
        bob  1  0  0  L L R  passed
        cat  1  0  1  L L R  failed

    ratings of u4, u5 by dan (1, 4) and eve (2, 5); both pass their check (rated 2 and 1)."""
    items = store.ctt_items("fixture")
    u1, u2, u3, u4, u5 = items.loc[~items["is_attention"], "uid"].iloc[:5]
    check = items.loc[items["is_attention"], "uid"].iloc[0]
    side = {"L": "left", "R": "right"}
    for name, picks, sides in (("ann", "110", "LLL"), ("bob", "100", "LLR"), ("cat", "101", "LLR")):
        rater = store.add_rater(name)
        for uid, pick, s in zip((u1, u2, u3), picks, sides):
            store.record_vote(rater, uid, choice=side[s], picked_real=pick == "1")
        store.record_vote(rater, check, choice="right", picked_real=name != "cat")  # answers on the right
    for name, (r4, r5, rc) in (("dan", (1, 4, 2)), ("eve", (2, 5, 1))):
        rater = store.add_rater(name)
        for uid, r in ((u4, r4), (u5, r5), (check, rc)):
            store.record_vote(rater, uid, rating=r, mode="rating")


def test_agreement_bias_and_raters_by_hand(tmp_path, monkeypatch, fx):
    """2AFC, every rater: Krippendorff's coincidences o_FF = 2, o_FT = o_TF = 2, o_TT = 3 (u1 adds 3
    to TT; u2 and u3, two of one and one of the other, 1 to FF and 1 to each off-diagonal cell), n_F =
    4, n_T = 5, n = 9: alpha = 1 - (n - 1) * 4 / (2 * 4 * 5) = 0.2. Without cat (failed the check):
    o_TT = 2, o_FF = 2, o_FT = o_TF = 1, n = 6: alpha = 1 - 5 * 2 / 18 = 4/9. Ratings, interval:
    units (1, 2), (4, 5): observed 4, expected 2 * (1 + 9 + 16 + 4 + 9 + 1) / 3 = 80/3: alpha = 0.85.
    Left answers on regular items: 7 of 9 (two-sided exact p = 2 * 46/512), without cat 5 of 6
    (2 * 7/64); the check, answered on the right, not counted. Leave-one-out consensus: ann agrees
    on u1, not u2 (u3: the others tie) = 1/2; bob only u1 = 1; cat u1, not u3 = 1/2; with two raters
    left no one has two others: no figure."""
    info = fx.build(tmp_path)
    monkeypatch.setenv("VIDCOLOR_DB", info["url"])
    _votes(info["store"])
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("views/ctt_results.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "How far the votes can be trusted" in texts(at)
    assert "chance agreement is what a colorizer that fools people produces" in texts(at)
    agreement = table(at, "agreement").set_index("task")
    afc, rating = agreement.loc["2AFC (which is real)"], agreement.loc["rating (1-5)"]
    assert afc["alpha"] == pytest.approx(0.2) and (afc["votes"], afc["items"], afc["values"]) == (9, 3, 9)
    assert afc["metric"] == "nominal" and afc["alpha_low"] <= afc["alpha_high"]
    assert rating["alpha"] == pytest.approx(0.85) and (rating["items"], rating["values"], rating["metric"]) == (
        2,
        4,
        "interval",
    )
    bias = table(at, "bias").iloc[0]
    assert (bias["answers"], bias["left"]) == (9, 7) and bias["left_share"] == pytest.approx(7 / 9)
    assert [bias["left_low"], bias["left_high"]] == pytest.approx(wilson(7, 9))
    assert [bias["left_low"], bias["left_high"]] == pytest.approx([0.4526, 0.9368], abs=1e-4)
    assert bias["left_p"] == pytest.approx(92 / 512)
    raters = table(at, "raters").set_index("rater")
    assert "reliability" not in raters.columns  # no pairwise votes
    assert raters.loc["ann", ["votes", "attention_checks", "attention_passed", "consensus_items"]].tolist() == [
        4,
        1,
        1,
        2,
    ]
    assert raters["consensus_agreement"].to_dict() == pytest.approx(
        {"ann": 0.5, "bob": 1.0, "cat": 0.5, "dan": math.nan, "eve": math.nan}, nan_ok=True
    )
    assert raters["attention_pass_rate"].to_dict() == {"ann": 1.0, "bob": 1.0, "cat": 0.0, "dan": 1.0, "eve": 1.0}
    assert raters.loc["dan", "task"] == "rating (1-5)" and raters.loc["dan", "votes"] == 3
    # the toggle leaves cat out of every figure
    at.toggle(key="ctt_exclude").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "1 rater(s) who failed an attention check" in texts(at)
    agreement = table(at, "agreement").set_index("task")
    assert agreement.loc["2AFC (which is real)", "alpha"] == pytest.approx(4 / 9)
    assert agreement.loc["2AFC (which is real)", "votes"] == 6
    assert agreement.loc["rating (1-5)", "alpha"] == pytest.approx(0.85)
    bias = table(at, "bias").iloc[0]
    assert (bias["answers"], bias["left"]) == (6, 5) and bias["left_p"] == pytest.approx(14 / 64)
    assert [bias["left_low"], bias["left_high"]] == pytest.approx(wilson(5, 6))
    raters = table(at, "raters").set_index("rater")
    assert sorted(raters.index) == ["ann", "bob", "dan", "eve"]
    assert raters.loc[["ann", "bob"], "consensus_items"].tolist() == [0, 0]
    # the page's other figures still there and toggled too
    assert at.dataframe[0].value["excluded_raters"].max() == 1


def test_pairwise_crowd_bt_beside_bradley_terry(tmp_path, monkeypatch, fx):
    """A pairwise campaign: 4 sessions of the 6 pairs (3 trials x 2 sources); three raters prefer
    t_002 > t_004 > t_001, one the reverse. Each source pair has 3 votes for one trial and 1 for the
    other: coincidences o[t_002, t_002] = 8, o[t_004, t_004] = 4, and 2 in each off-diagonal cell;
    n = (12, 8, 4), 24 values: alpha = 1 - 23 * 12 / (2 * (96 + 48 + 32)) = 76/352. Plain Bradley-Terry
    is the ranking above it; Crowd-BT reads the reversed rater as unreliable (below 0.5) and so
    spreads the scores further."""
    info = fx.build(tmp_path)
    monkeypatch.setenv("VIDCOLOR_DB", info["url"])
    store = info["store"]
    store.create_campaign("fixture", "rank", task="pairwise", session_items=6, practice_items=0, attention_share=0.0)
    (token,) = store.add_invites("fixture", "rank", 1, max_uses=None)
    trial_of = store.ctt_items("fixture").set_index("uid")["trial_id"]
    order = {"t_002": 0, "t_004": 1, "t_001": 2}
    for k in range(4):
        sid = store.open_session(token)
        while not (state := store.session_state(sid))["done"]:
            a, b = state["item"]["uid"].split("|")
            better = (order[trial_of[a]] < order[trial_of[b]]) != (k == 3)
            store.answer(sid, state["item"]["uid"], winner="a" if better else "b")
    reversed_rater = store.campaign_sessions("fixture", "rank")["rater_id"].iloc[-1]
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("views/ctt_results.py").run()
    assert not at.exception, [e.value for e in at.exception]
    agreement = table(at, "agreement").set_index("task")
    assert list(agreement.index) == ["pairwise"]
    assert agreement.loc["pairwise", "alpha"] == pytest.approx(76 / 352)
    assert agreement.loc["pairwise", ["votes", "items", "values"]].tolist() == [24, 6, 24]
    assert not tables(at, "bias")
    assert "they have no position-bias figure" in texts(at)
    ranking = at.dataframe[0].value.set_index("trial")  # the Bradley-Terry ranking at the top
    both = table(at, "crowd_bt").set_index("trial")
    assert list(both.index) == ["t_002", "t_004", "t_001"]
    assert both["bt_score"].tolist() == pytest.approx(ranking.loc[both.index, "score"].tolist())
    assert both["bt_low"].tolist() == pytest.approx(ranking.loc[both.index, "low"].tolist())
    assert both["bt_rank"].tolist() == [1, 2, 3] and both["crowd_bt_rank"].tolist() == [1, 2, 3]
    spread = both.loc["t_002"] - both.loc["t_001"]
    assert spread["crowd_bt_score"] > spread["bt_score"] > 0
    raters = table(at, "raters")
    assert len(raters) == 4 and set(raters["task"]) == {"pairwise"}
    prefix = f"{reversed_rater[:10]}…"
    rev = raters[raters["rater"] == prefix].iloc[0]
    others = raters[raters["rater"] != prefix]
    assert rev["reliability"] < 0.5 < others["reliability"].min()
    assert rev["consensus_agreement"] == 0.0 and (others["consensus_agreement"] == 1.0).all()
    assert (raters["consensus_items"] == 6).all()
