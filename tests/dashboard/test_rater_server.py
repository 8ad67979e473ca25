"""The rater server (`vidcolor ctt serve`) in Debian's headless Chromium: a rater opens an invite
link, does the practice pairs with feedback, casts the session's votes with the display limit
enforced and sees the end; the researcher pages are not there; the campaign counts the votes."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.dashboard.test_browser import ARGS, CHROMIUM, ROOT, SCREENS, _free_port, _need_chromium, _settle

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]
DISPLAY_S = 2.0


@pytest.fixture()
def rater_server(fx, tmp_path):
    _need_chromium()
    info = fx.build(tmp_path)
    store = info["store"]
    store.create_campaign("fixture", "pilot", session_items=3, practice_items=2, attention_share=0.34,
                          display_s=DISPLAY_S)
    (token,) = store.add_invites("fixture", "pilot", 1, max_uses=1)
    port = _free_port()
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "study", "ctt", "serve", "--db", info["url"], "--port", str(port)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{base}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"rater server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield base, info, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _body(page) -> str:
    return page.locator("[data-testid='stApp']").inner_text()


def _secrets(info) -> set[str]:
    trials = info["store"].trials("fixture")
    return {"fixture", *trials["trial_id"], *trials["experiment"].dropna()}


def test_invite_practice_votes_display_limit_and_end(rater_server):
    from playwright.sync_api import sync_playwright

    base, info, token = rater_server
    store = info["store"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        # researcher paths show nothing of the study: only the invite notice
        for path in ("", "trials", "overview", "ctt-results", "hyperparameters", "?mode=researcher&study=fixture"):
            page.goto(f"{base}/{path}")
            _settle(page)
            page.wait_for_selector("text=reached through an invite link", timeout=30_000)
            text = _body(page)
            assert "reached through an invite link" in text, (path, text[:500])
            assert not [s for s in _secrets(info) if s in text], path
            assert page.locator("[data-testid='stDataFrame']").count() == 0
            assert page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").count() == 0
        page.goto(f"{base}/?invite={token}")
        _settle(page)
        page.get_by_role("button", name="Start").click()
        _settle(page)
        page.wait_for_selector("text=Practice 1 of 2", timeout=30_000)
        feedback = []
        sizes = []
        for step in range(5):
            text = _body(page)
            assert ("Practice" if step < 2 else "Pair") in text, text[:300]
            assert not [s for s in _secrets(info) if s in text]
            videos = page.locator("video")
            page.wait_for_function("() => document.querySelectorAll('video').length == 2", timeout=20_000)
            srcs = videos.evaluate_all("vs => vs.map(v => v.currentSrc || v.src)")
            sizes.append([len(urllib.request.urlopen(s, timeout=10).read()) for s in srcs])
            if step == 2:  # the display limit: after DISPLAY_S the clips are gone from the page
                SCREENS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENS / "rater_pair.png"))
                page.wait_for_selector("text=Time is up", timeout=int(DISPLAY_S * 1000) + 10_000)
                assert page.locator("video").count() == 0
            page.get_by_role("button", name="A is real").click()
            _settle(page)
            if step < 2:
                page.wait_for_selector(f"text={'Practice 2 of 2' if step == 0 else 'Pair 1 of 3'}", timeout=30_000)
                feedback.append("was the real one" in _body(page))
            elif step < 4:
                page.wait_for_selector(f"text=Pair {step} of 3", timeout=30_000)
        assert feedback == [True, True]  # practice answers come with the answer
        assert all(a == b for a, b in sizes), sizes  # both sides of every pair: the same number of bytes
        page.wait_for_selector("text=That was the last one", timeout=30_000)
        page.screenshot(path=str(SCREENS / "rater_end.png"))
        # the link was for one session: a second visit is refused
        fresh = browser.new_page()
        fresh.goto(f"{base}/?invite={token}")
        _settle(fresh)
        fresh.get_by_role("button", name="Start").click()
        fresh.wait_for_selector("text=this invite link is not valid", timeout=30_000)
        browser.close()
    votes = store.campaign_votes("fixture", "pilot")
    assert len(votes) == 3 and votes["response_ms"].gt(0).all()  # the 2 practice answers are not votes
    assert int(votes["is_attention"].sum()) == 1
    assert store.campaigns("fixture").iloc[0]["finished_sessions"] == 1
    assert Path(SCREENS / "rater_end.png").exists()
