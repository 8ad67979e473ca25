"""CTT campaigns in the results store: the protocol, invite tokens, sessions bound to them,
practice with feedback that is never counted, and results per campaign."""

from __future__ import annotations

import random
import threading

import pytest

from models.errors import VidcolorError
from study.store.rater_sessions import INVALID_INVITE


@pytest.fixture()
def study(fx, tmp_path):
    """The fixture study with 8 items: 3 trials x 2 clips and 2 attention checks."""
    info = fx.build(tmp_path / "db")
    assert len(info["store"].ctt_items("fixture")) == 8
    return info["store"]


def test_protocol_is_checked_and_too_few_items_are_refused(study):
    # the default protocol: 10 practice pairs, then 40 counted of which round(0.1 * 40) = 4 attention checks
    with pytest.raises(
        VidcolorError,
        match=r"^campaign 'zhang': a session needs 46 regular items \(10 practice \+ "
        r"36 counted\) and 4 attention checks; study 'fixture' has 6 regular items and 2 attention checks "
        r"for task 2afc",
    ):
        study.create_campaign("fixture", "zhang")
    for kwargs, message in [
        ({"task": "ab"}, "--task must be one of 2afc, rating"),
        ({"display_s": -1}, "--display-s must be in"),
        ({"session_items": 0}, "--pairs must be"),
        ({"practice_items": -1}, "--practice must be"),
        ({"attention_share": 1.0}, "--attention-share"),
        ({"trial_ids": ["t_001", "nope"]}, "--trials: study 'fixture' has no trial 'nope'"),
    ]:
        with pytest.raises(VidcolorError, match=message):
            study.create_campaign("fixture", "x", **kwargs)
    assert study.campaigns("fixture").empty  # nothing half-made
    study.create_campaign("fixture", "pilot", session_items=4, practice_items=2, attention_share=0.25)
    with pytest.raises(VidcolorError, match="already has a campaign named 'pilot'"):
        study.create_campaign("fixture", "pilot", session_items=4, practice_items=2)


def test_fit_protocol_to_the_items_there_are():
    from study.store.campaigns import fit_protocol

    assert fit_protocol(100, 10) == (40, 10)  # room for Zhang et al.'s 10 + 40 (36 regular + 4 checks)
    assert fit_protocol(46, 4) == (40, 10)
    # make demo's 12 regular items and 1 check: a fifth practice, the rest counted (10 + round(1.1) = 1 check)
    assert fit_protocol(12, 1) == (11, 2)
    assert fit_protocol(6, 2) == (6, 1)  # 5 regular + round(0.6) = 1 check, 1 practice
    assert fit_protocol(45, 4) == (40, 9)  # one short: one practice item less
    assert fit_protocol(12, 1, session_items=8) == (8, 5)  # --pairs given: 7 regular + 1 check, practice the rest
    assert fit_protocol(12, 1, practice_items=0) == (13, 0)
    assert fit_protocol(12, 0, 0.0) == (10, 2) and fit_protocol(12, 0) == (5, 2)  # no check: round(0.1 * 5) = 0
    # given values are kept; nothing that fits: the values asked for, for create_campaign to refuse
    assert fit_protocol(12, 1, session_items=40, practice_items=10) == (40, 10)
    assert fit_protocol(12, 1, session_items=40) == (40, 10)
    assert fit_protocol(0, 0) == (40, 10)
    for regular in range(1, 60):
        for attention in range(0, 6):
            p, q = fit_protocol(regular, attention)
            att = int(round(0.1 * p))
            assert (p, q) == (40, 10) or (p - att + q <= regular and att <= attention and q >= 1), (regular, attention)


def test_campaign_supply_counts_what_a_session_draws_from(study):
    assert study.campaign_supply("fixture") == (6, 2)
    assert study.campaign_supply("fixture", "rating", ["t_001"]) == (2, 2)
    assert study.campaign_supply("fixture", "pairwise") == (6, 2)  # 3 trial pairs x 2 sources
    with pytest.raises(VidcolorError, match="--task must be one of"):
        study.campaign_supply("fixture", "ab")


def test_invites_bind_sessions_and_run_out(study):
    study.create_campaign("fixture", "pilot", session_items=4, practice_items=2, attention_share=0.25)
    (once,) = study.add_invites("fixture", "pilot", 1, max_uses=1)
    (many,) = study.add_invites("fixture", "pilot", 1, max_uses=None)
    first = study.open_session(once, "Ann")
    for token in (once, "not-a-token", ""):
        with pytest.raises(VidcolorError, match=f"^{INVALID_INVITE}$".replace("(", r"\(").replace(")", r"\)")):
            study.open_session(token, "Ann")
    again = [study.open_session(many, "Ann") for _ in range(3)]
    # a name is display only: every session is a rater of its own
    raters = {study.session_state(sid)["display_name"] for sid in [first, *again]}
    assert raters == {"Ann"} and len({first, *again}) == 4
    study.close_campaign("fixture", "pilot")
    with pytest.raises(VidcolorError, match="not valid"):
        study.open_session(many)
    table = study.campaigns("fixture").iloc[0]
    assert (table["invites"], table["sessions"], table["finished_sessions"], table["is_open"]) == (2, 4, 0, False)


def test_a_one_use_link_raced_by_many_raters_lets_one_in(study):
    study.create_campaign("fixture", "pilot", session_items=4, practice_items=2, attention_share=0.25)
    (token,) = study.add_invites("fixture", "pilot", 1, max_uses=1)
    got, refused = [], []

    def join():
        try:
            got.append(study.open_session(token))
        except VidcolorError:
            refused.append(1)

    threads = [threading.Thread(target=join) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 1 and len(refused) == 7


def test_session_practice_first_with_feedback_then_counted_votes(study):
    study.create_campaign("fixture", "pilot", session_items=4, practice_items=2, attention_share=0.25)
    (token,) = study.add_invites("fixture", "pilot", 1, max_uses=None)
    sid = study.open_session(token, rng=random.Random(3))
    items = study.ctt_items("fixture").set_index("uid")
    seen, feedback = [], []
    while not (state := study.session_state(sid))["done"]:
        item = state["item"]
        assert set(item) == {"uid", "medium", "real_path", "fake_path", "practice"}  # no trial, no side
        seen.append((item["uid"], item["practice"]))
        out = study.answer(sid, item["uid"], picked_real=True, choice="left", response_ms=800)
        assert study.answer(sid, item["uid"], picked_real=False, choice="right")["stale"]  # a resubmitted form
        if item["practice"]:
            feedback.append(out["correct"])
        else:
            assert out["recorded"]
    assert [p for _, p in seen] == [True, True, False, False, False, False]
    practice, counted = {u for u, p in seen if p}, [u for u, p in seen if not p]
    assert not practice & set(counted)  # a practice item, its answer shown, is never asked again
    assert not items.loc[list(practice), "is_attention"].any()
    assert int(items.loc[counted, "is_attention"].sum()) == 1  # round(0.25 * 4)
    assert feedback == [True, True]
    votes = study.campaign_votes("fixture", "pilot")
    assert sorted(votes["uid"]) == sorted(counted) and votes["picked_real"].all()  # practice never stored
    assert study.campaigns("fixture").iloc[0]["finished_sessions"] == 1
    assert study.answer(sid, counted[0], picked_real=True) == {"stale": True}  # nothing after the end
    with pytest.raises(VidcolorError, match="unknown rater session"):
        study.session_state("nope")


def test_results_are_per_campaign(study):
    for name in ("a", "b"):
        study.create_campaign("fixture", name, session_items=2, practice_items=0, attention_share=0.0)
    ids = {name: study.open_session(study.add_invites("fixture", name)[0]) for name in ("a", "b")}
    for name, sid in ids.items():
        while not (state := study.session_state(sid))["done"]:
            study.answer(sid, state["item"]["uid"], picked_real=(name == "a"), choice="left")
    a, b = study.campaign_votes("fixture", "a"), study.campaign_votes("fixture", "b")
    assert len(a) == len(b) == 2 and a["picked_real"].all() and not b["picked_real"].any()
    assert len(study.votes("fixture")) == 4
    with pytest.raises(VidcolorError, match="has no campaign named 'c'"):
        study.campaign_votes("fixture", "c")


def test_rating_campaign_draws_every_item_kind(study):
    study.create_campaign("fixture", "rate", task="rating", session_items=3, practice_items=1, attention_share=0.0)
    sid = study.open_session(study.add_invites("fixture", "rate")[0])
    state = study.session_state(sid)
    assert state["task"] == "rating" and state["practice"] == 1 and state["counted"] == 3
    assert study.answer(sid, state["item"]["uid"], rating=4) == {"practice": True, "correct": None, "stale": False}
    uid = study.session_state(sid)["item"]["uid"]
    assert study.answer(sid, uid, rating=2)["recorded"]
    assert study.campaign_votes("fixture", "rate")["rating"].tolist() == [2]


def _pairwise(study, **kw):
    args = {"session_items": 4, "practice_items": 1, "attention_share": 0.25, **kw}
    study.create_campaign("fixture", "rank", task="pairwise", **args)
    (token,) = study.add_invites("fixture", "rank", 1, max_uses=None)
    return token


def _trials_of(study, entry):
    by_uid = study.ctt_items("fixture").set_index("uid")["trial_id"]
    return frozenset(by_uid[u] for u in entry.split("|"))


def test_pairwise_sessions_pair_two_trials_on_one_source(study):
    token = _pairwise(study)
    sid = study.open_session(token, rng=random.Random(0))
    items = study.ctt_items("fixture").set_index("uid")
    counted = []
    while not (state := study.session_state(sid))["done"]:
        item = state["item"]
        assert set(item) == {"uid", "medium", "paths", "practice"} and len(item["paths"]) == 2
        a, b = item["uid"].split("|")
        assert item["paths"] == (items.loc[a, "fake_path"], items.loc[b, "fake_path"])  # two colorizations
        if not item["practice"]:
            counted.append(item["uid"])
        with pytest.raises(VidcolorError, match="names the winner 'a' or 'b', got None"):
            study.answer(sid, item["uid"])
        study.answer(sid, item["uid"], winner="a")
    regular = [e for e in counted if not items.loc[e.split("|"), "is_attention"].any()]
    for entry in regular:  # the same source, two trials
        a, b = entry.split("|")
        assert items.loc[a, ["video_id", "clip"]].tolist() == items.loc[b, ["video_id", "clip"]].tolist()
        assert items.loc[a, "trial_id"] != items.loc[b, "trial_id"]
    # the 3 trials make 3 trial pairs; with no votes yet a session asks each once
    assert {_trials_of(study, e) for e in regular} == {
        frozenset(p) for p in [("t_001", "t_002"), ("t_001", "t_004"), ("t_002", "t_004")]
    }
    votes = study.pair_votes("fixture", "rank")
    assert len(votes) == 4 and int(votes["is_attention"].sum()) == 1  # the practice pair is not stored


def test_simulated_raters_rank_the_trials(study):
    token = _pairwise(study, practice_items=0, attention_share=0.0, session_items=6)
    strength = {"t_002": 3.0, "t_004": 0.0, "t_001": -3.0}
    rng = random.Random(1)
    items = study.ctt_items("fixture").set_index("uid")["trial_id"]
    for _ in range(6):
        sid = study.open_session(token, rng=rng)
        while not (state := study.session_state(sid))["done"]:
            a, b = state["item"]["uid"].split("|")
            p_a = 1 / (1 + pow(2.718281828, strength[items[b]] - strength[items[a]]))
            study.answer(sid, state["item"]["uid"], winner="a" if rng.random() < p_a else "b")
    ranking = study.trial_ranking("fixture", "rank", n_boot=200)
    assert list(ranking["trial"]) == ["t_002", "t_004", "t_001"]
    assert ranking["comparisons"].sum() == 2 * 36
    assert (ranking["low"] <= ranking["score"]).all() and (ranking["score"] <= ranking["high"]).all()


def test_pairwise_plan_when_some_trial_pairs_share_no_source(fx, tmp_path):
    """t_001-t_002 share clip v1, t_002-t_004 share v2, t_001-t_004 nothing: a session still fills
    (and opening one never spins on a trial pair without a common source)."""
    info = fx.build(tmp_path / "db", with_items=False)
    store = info["store"]
    media = store.media("fixture")
    path = str(media[media["media_type"] == "pred_mp4"]["path"].iloc[0])
    store.add_ctt_items(
        "fixture",
        [
            {"trial_id": t, "real_path": path, "fake_path": path, "video_id": v, "clip": 0}
            for t, v in (("t_001", "v1"), ("t_002", "v1"), ("t_002", "v2"), ("t_004", "v2"))
        ],
    )
    store.create_campaign("fixture", "sparse", task="pairwise", session_items=2, practice_items=0, attention_share=0.0)
    sid = store.open_session(store.add_invites("fixture", "sparse")[0], rng=random.Random(0))
    state = store.session_state(sid)
    assert state["counted"] == 2
    trials = store.ctt_items("fixture").set_index("uid")["trial_id"]
    seen = set()
    while not (state := store.session_state(sid))["done"]:
        seen.add(frozenset(trials[u] for u in state["item"]["uid"].split("|")))
        store.answer(sid, state["item"]["uid"], winner="b")
    assert seen == {frozenset({"t_001", "t_002"}), frozenset({"t_002", "t_004"})}


def test_display_clock_survives_a_reload_and_restarts_with_the_next_item(study):
    import time

    study.create_campaign("fixture", "clock", session_items=2, practice_items=0, attention_share=0.0, display_s=1)
    sid = study.open_session(study.add_invites("fixture", "clock")[0])
    first = study.session_state(sid)
    time.sleep(0.3)
    again = study.session_state(sid)  # a reload: the same item, its clock running on
    assert again["item"]["uid"] == first["item"]["uid"] and again["shown_s"] >= first["shown_s"] + 0.25
    study.answer(sid, first["item"]["uid"], picked_real=True, choice="left")
    assert study.session_state(sid)["shown_s"] < 0.25  # the next item's clock starts when it is first shown


def test_practice_items_stay_the_campaigns_when_items_are_added(fx, tmp_path):
    """Practice answers are revealed: the practice items are fixed when the campaign is made, so items
    built later never reshuffle them into counted items of later sessions."""
    import random

    from study.store.schema import RaterSessionRow

    info = fx.build(tmp_path)
    store = info["store"]
    store.create_campaign("fixture", "c", session_items=3, practice_items=2, attention_share=0.0)
    (token,) = store.add_invites("fixture", "c", max_uses=None)

    def plan() -> tuple[list, list]:
        sid = store.open_session(token, rng=random.Random(len(store.campaign_sessions("fixture", "c"))))
        with store._read() as s:
            row = s.get(RaterSessionRow, sid)
            return list(row.plan[: row.practice]), list(row.plan[row.practice :])

    before, _ = plan()
    items = store.ctt_items("fixture")
    extra = items[~items["is_attention"]].iloc[0]
    store.add_ctt_items(  # another item, as a later `ctt build` would add
        "fixture",
        [
            {
                "real_path": extra["real_path"],
                "fake_path": extra["fake_path"],
                "medium": "clip",
                "trial_id": "t_001",
                "video_id": "vid_z",
                "clip": 9,
                "split": "test",
            }
        ],
    )
    for _ in range(5):
        practice, counted = plan()
        assert sorted(practice) == sorted(before) and not set(practice) & set(counted)
