"""bench/rater_load.py, small: raters in Chromium against `vidcolor ctt serve`, every vote stored once."""

import importlib.util
from pathlib import Path

import pytest

from tests.dashboard.test_browser import _need_chromium

BENCH = Path(__file__).resolve().parents[2] / "bench" / "rater_load.py"
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


def test_four_raters_five_votes_each_stored_once():
    _need_chromium()
    spec = importlib.util.spec_from_file_location("bench_rater_load", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    res = bench.run(None, raters=4, votes=5, concurrency=2)
    assert res["votes_stored"] == res["distinct_stored"] == 20 and res["all_stored_once"]
    assert res["sessions_finished"] == 4 and res["answers_timed"] == 20
    assert 0 < res["store_p50_ms"] <= res["store_p99_ms"] and 0 < res["click_p50_ms"] <= res["click_p99_ms"]
