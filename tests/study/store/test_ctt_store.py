"""The results store's Color Turing Test part: raters, items, the next item, votes (also concurrent ones)."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest

from models.errors import VidcolorError


def test_ctt_items_next_item_and_votes(store, study):
    store.upsert_trial(study, "t1", experiment="exp2")
    uids = store.add_ctt_items(
        study,
        [
            {"real_path": "/m/a_real.mp4", "fake_path": "/m/a_fake.mp4", "trial_id": "t1", "video_id": "v0", "clip": 0},
            {"real_path": "/m/b_real.mp4", "fake_path": "/m/b_fake.mp4", "trial_id": "t1", "video_id": "v1", "clip": 3},
            {"real_path": "/m/c_real.mp4", "fake_path": "/m/c_bad.mp4", "is_attention": True, "medium": "clip"},
        ],
    )
    assert len(set(uids)) == 3 and all(len(u) == 16 for u in uids)
    assert all("t1" not in u and "real" not in u for u in uids)
    with pytest.raises(VidcolorError, match="fake_path"):
        store.add_ctt_items(study, [{"real_path": "x"}])
    with pytest.raises(VidcolorError, match=r"CTT item 0: medium must be one of \('clip', 'frame'\), got 'gif'"):
        store.add_ctt_items(study, [{"real_path": "x", "fake_path": "y", "medium": "gif"}])
    assert len(store.ctt_items(study)) == 3  # the failed batches left nothing behind

    alice, bob = store.add_rater("alice"), store.add_rater("bob")
    assert store.add_rater("alice") == alice and store.add_rater() != store.add_rater()
    # Bob votes on items 0 and 1, so Alice's least-voted choice is the attention item.
    assert store.record_vote(bob, uids[0], choice="left", picked_real=True, response_ms=900)
    assert store.record_vote(bob, uids[1], choice="right", picked_real=False, response_ms=1200)
    nxt = store.next_ctt_item(study, alice)
    assert nxt["uid"] == uids[2] and nxt["is_attention"] and "trial_id" not in nxt and nxt["medium"] == "clip"
    assert store.next_ctt_item(study, bob)["uid"] == uids[2]
    assert store.record_vote(alice, uids[2], choice="left", picked_real=True, response_ms=500)
    # now every item has one vote; Alice has not seen 0 and 1
    assert store.next_ctt_item(study, alice, rng=random.Random(0))["uid"] in uids[:2]
    assert store.record_vote(alice, uids[0], choice="right", picked_real=False)
    assert store.next_ctt_item(study, alice)["uid"] == uids[1]
    assert store.record_vote(alice, uids[1], rating=4, mode="rating")
    assert store.next_ctt_item(study, alice) is None

    # a duplicate is refused without raising, and changes nothing
    assert store.record_vote(alice, uids[0], choice="left", picked_real=True) is False
    with pytest.raises(VidcolorError, match="unknown CTT item"):
        store.record_vote(alice, "nope", choice="left", picked_real=True)
    with pytest.raises(VidcolorError, match="unknown rater"):
        store.record_vote("ghost", uids[0], choice="left", picked_real=True)
    with pytest.raises(VidcolorError, match="rating"):
        store.record_vote(bob, uids[2], rating=6, mode="rating")
    with pytest.raises(VidcolorError, match="choice"):
        store.record_vote(bob, uids[2], choice="middle", picked_real=True)

    votes = store.votes(study)
    assert len(votes) == 5
    mine = votes[votes["rater"] == "alice"].set_index("uid")
    assert mine.loc[uids[0], "fooled"] is True and mine.loc[uids[0], "experiment"] == "exp2"
    assert mine.loc[uids[2], "is_attention"] and mine.loc[uids[2], "fooled"] is False
    assert mine.loc[uids[1], "rating"] == 4 and mine.loc[uids[1], "mode"] == "rating"
    assert set(votes["medium"]) == {"clip"} and "kind" not in votes.columns
    assert store.ctt_items(study).set_index("uid")["votes"].to_dict() == {uids[0]: 2, uids[1]: 2, uids[2]: 1}
    assert set(store.raters()["name"].dropna()) == {"alice", "bob"}


def test_ctt_items_record_split_and_legacy_items_are_rated_only(store, study):
    store.upsert_trial(study, "t1", experiment="exp2")
    color, legacy = store.add_ctt_items(
        study,
        [
            {
                "real_path": "/m/a.mp4",
                "fake_path": "/m/b.mp4",
                "trial_id": "t1",
                "split": "test",
                "source": "/videos/cockatoo.mp4",
                "video_id": "cockatoo",
                "clip": 2,
            },
            {
                "real_path": "/m/c.png",
                "fake_path": "/m/d.png",
                "trial_id": "t1",
                "split": "legacy",
                "medium": "frame",
                "frame": 5,
                "source": "/videos/film.mp4",
                "real_is_color": False,
            },
        ],
    )
    items = store.ctt_items(study).set_index("uid")
    assert items.loc[color, ["split", "source", "real_is_color", "medium"]].tolist() == [
        "test",
        "/videos/cockatoo.mp4",
        True,
        "clip",
    ]
    assert items.loc[legacy, ["split", "frame", "real_is_color", "medium"]].tolist() == ["legacy", 5, False, "frame"]
    rater = store.add_rater("carol")
    # "which is real" never draws the black-and-white original; the rating mode draws both
    for _ in range(5):
        assert store.next_ctt_item(study, rater, mode="2afc", rng=random.Random(_))["uid"] == color
    assert {store.next_ctt_item(study, rater, mode="rating", rng=random.Random(k))["uid"] for k in range(20)} == {
        color,
        legacy,
    }
    assert store.next_ctt_item(study, rater, medium="frame")["uid"] == legacy
    assert store.next_ctt_item(study, rater, medium="clip")["uid"] == color
    with pytest.raises(VidcolorError, match=r"CTT medium must be one of \('clip', 'frame'\), got 'gif'"):
        store.next_ctt_item(study, rater, medium="gif")
    with pytest.raises(VidcolorError, match="black-and-white original"):
        store.record_vote(rater, legacy, choice="left", picked_real=False, mode="2afc")
    with pytest.raises(VidcolorError, match="mode must be one of"):
        store.next_ctt_item(study, rater, mode="ranking")
    assert store.record_vote(rater, legacy, rating=2, mode="rating")
    assert store.record_vote(rater, color, choice="left", picked_real=True)
    assert store.next_ctt_item(study, rater, mode="2afc") is None
    assert store.next_ctt_item(study, rater, mode="rating") is None


def test_concurrent_votes_each_stored_exactly_once(store, study):
    """8 threads (raters) race over the same 25 items, each vote attempted twice at once."""
    uids = store.add_ctt_items(study, [{"real_path": f"/r{i}", "fake_path": f"/f{i}"} for i in range(25)])
    raters = [store.add_rater(f"r{i}") for i in range(8)]
    results: list[tuple[str, str, bool]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def vote(rater: str, seed: int) -> None:
        order = uids[:]
        random.Random(seed).shuffle(order)
        start.wait()
        for uid in order:
            try:
                ok = store.record_vote(rater, uid, choice="left", picked_real=seed % 2 == 0, response_ms=seed)
            except BaseException as exc:
                errors.append(exc)
                continue
            with lock:
                results.append((rater, uid, ok))

    threads = [threading.Thread(target=vote, args=(r, i * 2 + k)) for i, r in enumerate(raters) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    accepted = Counter((r, u) for r, u, ok in results if ok)
    assert len(results) == 8 * 25 * 2
    assert len(accepted) == 8 * 25 and set(accepted.values()) == {1}
    votes = store.votes(study)
    assert len(votes) == 8 * 25
    assert not votes.duplicated(["rater_id", "uid"]).any()
