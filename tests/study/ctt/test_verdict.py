"""study.ctt.verdict.trial_scores' `exclude_failed` (no Ray: tests/study/tune/test_human.py has the
[human] rounds that use its default)."""

from __future__ import annotations

import pytest

from models.errors import VidcolorError
from study.ctt import stats as ctt_stats
from study.ctt.verdict import COLUMNS, from_aggregate, trial_scores
from study.store import Store


def test_exclude_failed_counts_every_rater_when_false(tmp_path):
    """t1: five raters, two fooled; a sixth, fooled too, fails the attention check. Default (what
    `vidcolor tune` counts): 2 / 5; every rater (the dashboard's default): 3 / 6. Both are
    `from_aggregate` of the results page's table."""
    store = Store(f"sqlite:///{tmp_path}/results.db")
    store.create_study("s", objective="val_rmse_rgb")
    store.upsert_trial("s", "t1", experiment="exp2", params={}, status="RUNNING")
    item = {"real_path": "r", "fake_path": "f", "video_id": "v", "clip": 0}
    (uid,) = store.add_ctt_items("s", [{**item, "trial_id": "t1"}])
    (att,) = store.add_ctt_items("s", [{**item, "trial_id": None, "is_attention": True}])
    for k in range(6):
        rater = store.add_rater(f"r{k}")
        store.record_vote(rater, uid, choice="left", picked_real=k not in (0, 1, 5))
        store.record_vote(rater, att, choice="left", picked_real=k != 5)
    strict = trial_scores(store, "s", min_votes=6).set_index("trial_id")
    assert strict.loc["t1", ["score", "votes", "counted"]].tolist() == [pytest.approx(2 / 5), 5, False]
    every = trial_scores(store, "s", min_votes=6, exclude_failed=False).set_index("trial_id")
    assert every.loc["t1", ["score", "votes", "counted"]].tolist() == [0.5, 6, True]
    votes = ctt_stats.votes_from_store(store.votes("s"))
    for exclude, got in ((True, strict), (False, every)):
        agg = ctt_stats.aggregate(votes, by="trial", exclude_failed=exclude)
        assert from_aggregate(agg, "fool_rate", 6).set_index("trial_id").equals(got)
    assert list(every.reset_index().columns) == COLUMNS
    with pytest.raises(VidcolorError, match="from CTT votes: must be one of fool_rate, mean_rating"):
        from_aggregate(agg, "bt_score")
