"""The vote path under load (bench/votes.py): 20 concurrent raters x 50 votes, each stored exactly once."""

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "votes.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_votes", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_twenty_raters_fifty_votes_exactly_once(tmp_path):
    res = _bench().run(f"sqlite:///{tmp_path}/votes.db", raters=20, votes=50)
    assert res["votes_cast"] == 1000
    assert res["votes_stored"] == 1000 and res["distinct_stored"] == 1000
    assert res["stored_match_cast"]  # the stored (rater, item) pairs are exactly the accepted ones
    assert res["duplicates_refused"] == 100 and res["duplicates_accepted"] == 0
    print(f"vote p50 {res['vote_p50_ms']:.1f} ms, p99 {res['vote_p99_ms']:.1f} ms")


def test_next_item_is_among_the_least_voted(tmp_path):
    bench = _bench()
    url = f"sqlite:///{tmp_path}/votes.db"
    from study.store import Store

    raters = bench.setup(url, raters=4, votes=5)  # 15 items
    store = Store(url)
    for i, rater in enumerate(raters):  # one after the other
        assert len(bench.rater_loop(store, rater, 5, seed=i)["cast"]) == 5
    counts = store.ctt_items(bench.STUDY)["votes"]
    # 20 votes over 15 items, always drawn among the least-voted: counts 1 or 2, never 0 and 3
    assert counts.sum() == 20 and counts.max() - counts.min() <= 1


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_rater_server_sessions_under_load_store_each_vote_once(tmp_path):
    """The rater server's path: 10 sessions through one invite, 12 answers each, a double click every 10th."""
    res = _bench().run(f"sqlite:///{tmp_path}/votes.db", raters=10, votes=12, path="session")
    assert res["votes_cast"] == res["votes_stored"] == res["distinct_stored"] == 120
    assert res["stored_match_cast"] and res["duplicates_refused"] == 10 and res["duplicates_accepted"] == 0
