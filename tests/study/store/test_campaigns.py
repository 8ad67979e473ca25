"""CTT campaigns in the results store: the protocol, invite tokens, sessions bound to them,
practice with feedback that is never counted, and results per campaign."""

from __future__ import annotations

import random
import threading

import pytest

from models.errors import VidcolorError
from study.store.campaigns import INVALID_INVITE


@pytest.fixture()
def study(fx, tmp_path):
    """The fixture study with 8 items: 3 trials x 2 clips and 2 attention checks."""
    info = fx.build(tmp_path / "db")
    assert len(info["store"].ctt_items("fixture")) == 8
    return info["store"]


def test_protocol_is_checked_and_too_few_items_are_refused(study):
    # the default protocol: 10 practice pairs, then 40 counted of which round(0.1 * 40) = 4 attention checks
    with pytest.raises(VidcolorError, match=r"^campaign 'zhang': a session needs 46 regular items \(10 practice \+ "
                                            r"36 counted\) and 4 attention checks; study 'fixture' has 6 and 2 for task 2afc"):
        study.create_campaign("fixture", "zhang")
    for kwargs, message in [({"task": "ab"}, "--task must be one of 2afc, rating"),
                            ({"display_s": -1}, "--display-s must be in"), ({"session_items": 0}, "--pairs must be"),
                            ({"practice_items": -1}, "--practice must be"), ({"attention_share": 1.0}, "--attention-share"),
                            ({"trial_ids": ["t_001", "nope"]}, "--trials: study 'fixture' has no trial 'nope'")]:
        with pytest.raises(VidcolorError, match=message):
            study.create_campaign("fixture", "x", **kwargs)
    assert study.campaigns("fixture").empty  # nothing half-made
    study.create_campaign("fixture", "pilot", session_items=4, practice_items=2, attention_share=0.25)
    with pytest.raises(VidcolorError, match="already has a campaign named 'pilot'"):
        study.create_campaign("fixture", "pilot", session_items=4, practice_items=2)


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
