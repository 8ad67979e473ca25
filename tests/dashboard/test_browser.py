"""End to end in a real browser: `vidcolor dashboard` on the fixture study, driven by Playwright in
Debian's headless Chromium. Opens the trials table, casts 5 CTT votes, sees the results update,
and saves screenshots of the main pages to $VIDCOLOR_SCREENS (default /tmp/screens)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SCREENS = Path(os.environ.get("VIDCOLOR_SCREENS", "/tmp/screens"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


def _need_chromium() -> None:
    if Path(CHROMIUM).exists() or shutil.which("chromium"):
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but Chromium is missing at {CHROMIUM} (.ci/run installs it)")
    pytest.skip(f"Chromium not installed at {CHROMIUM} (apt-get install chromium); CI runs this test")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(fx, tmp_path):
    _need_chromium()
    info = fx.build(tmp_path)
    port = _free_port()
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "study", "dashboard", "--db", info["url"], "--port", str(port)],
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
                pytest.fail(f"dashboard did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield base, info
    finally:
        proc.terminate()  # `vidcolor dashboard` execs Streamlit: this pid is the server itself
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    with socket.socket() as s:  # nothing listens on the port any more: no server left behind
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT connections
        s.bind(("127.0.0.1", port))


def _settle(page, timeout: float = 60_000) -> None:
    """Wait until Streamlit has finished the current run (no running-status widget)."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)
    page.wait_for_timeout(300)


def _shot(page, name: str) -> None:
    """Screenshot of the whole page: Streamlit scrolls inside its own container, so the viewport is
    grown to the content's height first."""
    errors = page.locator("[data-testid='stException']")
    assert errors.count() == 0, f"{name}: {errors.first.inner_text()[:2000]}"
    SCREENS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"], section.main, "
        "[data-testid=\"stAppViewContainer\"]')].map(e => e.scrollHeight), 900)")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 40, 4000)})
    page.wait_for_timeout(800)
    page.screenshot(path=str(SCREENS / f"{name}.png"))
    page.set_viewport_size({"width": 1400, "height": 900})


def _assert_page_hides_the_answer(page, base: str, info: dict) -> None:
    """Nothing the browser gets (the served page, the live DOM, its URL, media names) names the
    real side, a stored file or the trial/experiment behind the pair."""
    items = info["store"].ctt_items("fixture")
    secrets_ = set(items["trial_id"].dropna()) | set(items["experiment"].dropna()) | {
        Path(p).stem for p in list(items["real_path"]) + list(items["fake_path"])}
    served = urllib.request.urlopen(f"{base}/ctt", timeout=10).read().decode()
    html = page.content()
    for text in (served, html, page.url):
        leaked = sorted(s for s in secrets_ if s in text)
        assert not leaked, leaked
    assert not re.search(r"real|fake|trial|exp\d", page.url, re.I), page.url
    # no attribute of any element (ids, classes, data-*, src, alt, title) says real or fake
    attrs = page.evaluate("() => [...document.querySelectorAll('*')].flatMap(e => "
                          "[...e.attributes].map(a => a.name + '=' + a.value))")
    bad = [a for a in attrs if re.search(r"real|fake|colori[sz]ed|gt_|pred_|t_00\d", a, re.I)]
    assert not bad, bad
    srcs = page.locator("video").evaluate_all("vs => vs.map(v => v.currentSrc || v.src)")
    assert len(srcs) == 2 and len(set(srcs)) == 2, srcs
    assert all(re.search(r"/media/[0-9a-f]+\.mp4$", s) for s in srcs), srcs
    # the two shown labels are neutral
    assert page.get_by_role("heading", name="A", exact=True).count() == 1
    assert page.get_by_role("heading", name="B", exact=True).count() == 1


def test_dashboard_in_chromium(server):
    from playwright.sync_api import expect, sync_playwright

    base, info = server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)

            page.goto(f"{base}/")
            expect(page.get_by_role("heading", name="Studies")).to_be_visible()
            expect(page.get_by_text("6 of 8 trials finished").or_(page.get_by_text("5 of 8 trials finished"))).to_be_visible()
            _settle(page)
            _shot(page, "overview")

            page.goto(f"{base}/trials")
            expect(page.get_by_role("heading", name="Trials")).to_be_visible()
            expect(page.get_by_text("6 of 6 trials")).to_be_visible()
            grid = page.locator("[data-testid='stDataFrame']")
            expect(grid).to_be_visible()
            expect(grid.get_by_text("t_004").first).to_be_attached()  # glide grid's accessible cells
            _settle(page)
            _shot(page, "trials")

            for path, heading, name in (("hyperparameters", "Hyperparameters", "hyperparameters"),
                                        ("curves", "Learning curves", "curves"),
                                        ("trial?trial=t_002", "Trial", "trial"),
                                        ("compare", "Compare trials", "compare")):
                page.goto(f"{base}/{path}")
                expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
                _settle(page)
                page.wait_for_timeout(1500)  # plotly draws after the run
                _shot(page, name)
            expect(page.locator("[data-testid='stImage']").first).to_be_visible()

            # -- five CTT votes ---------------------------------------------------------------------
            page.goto(f"{base}/ctt")
            page.get_by_label("Your name").fill("e2e rater")
            page.get_by_role("button", name="Start").click()
            expect(page.get_by_text("votes this session: 0")).to_be_visible()
            expect(page.locator("video")).to_have_count(2)
            _settle(page)
            _shot(page, "ctt_rate")
            _assert_page_hides_the_answer(page, base, info)
            for k in range(5):
                page.get_by_role("button", name="A is real" if k % 2 else "B is real").click()
                expect(page.get_by_text(f"votes this session: {k + 1}")).to_be_visible()
            votes = info["store"].votes("fixture")
            assert len(votes) == 5 and set(votes["rater"]) == {"e2e rater"}

            # -- results update -----------------------------------------------------------------------
            page.goto(f"{base}/ctt-results")
            expect(page.get_by_role("heading", name="Color Turing Test results")).to_be_visible()
            votes_metric = page.locator("[data-testid='stMetric']").filter(has_text="Votes")
            expect(votes_metric.first).to_contain_text("5")
            _settle(page)
            page.wait_for_timeout(1000)
            _shot(page, "ctt_results")
            # a vote cast elsewhere shows up on the next refresh of the live fragment
            store = info["store"]
            other = store.add_rater("late rater")
            uid = store.next_ctt_item("fixture", other)["uid"]
            assert store.record_vote(other, uid, choice="left", picked_real=True)
            expect(votes_metric.first).to_contain_text("6", timeout=30_000)
        finally:
            browser.close()
