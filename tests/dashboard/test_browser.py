"""End to end in a real browser: `vidcolor dashboard` on the fixture study, driven by Playwright in
Debian's headless Chromium. Opens the trials table, casts 5 CTT votes, sees the results update,
and saves screenshots of the main pages to $VIDCOLOR_SCREENS (default /tmp/screens); the
dashboard's own rating page at 1366x768; and bench/rater_load.py (the rater server, `vidcolor ctt
serve`), small. The rater server's flow in Chromium is tests/study/ctt/test_rater_chromium.py."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import socket
import urllib.request
from pathlib import Path

import browser_tools
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENS = Path(os.environ.get("VIDCOLOR_SCREENS", "/tmp/screens"))
CHROMIUM, ARGS = browser_tools.CHROMIUM, browser_tools.CHROMIUM_ARGS
_need_chromium, _serving, _settle = browser_tools.need_chromium, browser_tools.serving, browser_tools.settle

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture()
def server(fx, tmp_path):
    _need_chromium()
    info = fx.build(tmp_path)
    with _serving(["dashboard", "--db", info["url"]], tmp_path, "dashboard") as (base, port):
        yield base, info
    with socket.socket() as s:  # nothing listens on the port any more: no server left behind
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT connections
        s.bind(("127.0.0.1", port))


def _shot(page, name: str) -> None:
    """Screenshot of the whole page: Streamlit scrolls inside its own container, so the viewport is
    grown to the content's height first."""
    errors = page.locator("[data-testid='stException']")
    assert errors.count() == 0, f"{name}: {errors.first.inner_text()[:2000]}"
    SCREENS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate(
        '() => Math.max(...[...document.querySelectorAll(\'[data-testid="stMain"], section.main, '
        '[data-testid="stAppViewContainer"]\')].map(e => e.scrollHeight), 900)'
    )
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 40, 4000)})
    page.wait_for_timeout(800)
    page.screenshot(path=str(SCREENS / f"{name}.png"))
    page.set_viewport_size({"width": 1400, "height": 900})


def _assert_page_hides_the_answer(page, base: str, info: dict) -> None:
    """Nothing the browser gets (the served page, the live DOM, its URL, media names) names the
    real side, a stored file or the trial/experiment behind the pair."""
    items = info["store"].ctt_items("fixture")
    secrets_ = (
        set(items["trial_id"].dropna())
        | set(items["experiment"].dropna())
        | {Path(p).stem for p in list(items["real_path"]) + list(items["fake_path"])}
    )
    served = urllib.request.urlopen(f"{base}/ctt", timeout=10).read().decode()
    # the clips' bytes ride in data: URIs (dashboard.rater_ui): random base64 may spell anything
    html = re.sub(r"data:video/mp4;base64,[A-Za-z0-9+/=]+", "data:", page.content())
    for text in (served, html, page.url):
        leaked = sorted(s for s in secrets_ if s in text)
        assert not leaked, leaked
    assert not re.search(r"real|fake|trial|exp\d", page.url, re.I), page.url
    # no attribute of any element (ids, classes, data-*, src, alt, title) says real or fake
    attrs = page.evaluate(
        "() => [...document.querySelectorAll('*')].flatMap(e => [...e.attributes]"
        ".filter(a => !a.value.startsWith('data:')).map(a => a.name + '=' + a.value))"
    )
    bad = [a for a in attrs if re.search(r"real|fake|colori[sz]ed|gt_|pred_|t_00\d", a, re.I)]
    assert not bad, bad
    srcs = page.locator("video").evaluate_all("vs => vs.map(v => v.currentSrc || v.src)")
    assert len(srcs) == 2 and len(set(srcs)) == 2, [s[:60] for s in srcs]
    assert all(s.startswith("data:video/mp4;base64,") for s in srcs), [s[:60] for s in srcs]  # no file name
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
            expect(
                page.get_by_text("6 of 8 trials finished").or_(page.get_by_text("5 of 8 trials finished"))
            ).to_be_visible()
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

            for path, heading, name in (
                ("hyperparameters", "Hyperparameters", "hyperparameters"),
                ("curves", "Learning curves", "curves"),
                ("trial?trial=t_002", "Trial", "trial"),
                ("compare", "Compare trials", "compare"),
            ):
                page.goto(f"{base}/{path}")
                expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
                _settle(page)
                page.wait_for_timeout(1500)  # plotly draws after the run
                _shot(page, name)
            # the compare page's frame view (dashboard.compare_widgets) drew its panels
            expect(
                page.frame_locator("iframe").first.locator("body[data-ready='1'] canvas.panel").first
            ).to_be_visible()

            # -- five CTT votes ---------------------------------------------------------------------
            page.goto(f"{base}/ctt?limit=0")  # until answered: the pair stays for the checks below
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


# ---- issue 25: page paths, the trial page's frames, the pruned / failed filter ----------------------

#: every page's url_path (dashboard/app.py) and its heading
PAGE_PATHS = {
    "overview": "Studies",
    "trials": "Trials",
    "hyperparameters": "Hyperparameters",
    "curves": "Learning curves",
    "trial": "Trial",
    "compare": "Compare trials",
    "ctt": "Color Turing Test",
    "ctt-results": "Color Turing Test results",
}


@pytest.fixture(scope="module")
def study_server(fx, tmp_path_factory):
    """One `vidcolor dashboard` on a fixture study for the tests below (they only read it)."""
    _need_chromium()
    tmp = tmp_path_factory.mktemp("issue25")
    info = fx.build(tmp)
    with _serving(["dashboard", "--db", info["url"]], tmp, "dashboard") as (base, _):
        yield base, info


@contextlib.contextmanager
def _page(width: int = 1366, height: int = 768):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def test_every_page_opens_at_its_url_path(study_server):
    """/overview opened a "Page not found" dialog: Streamlit serves its default page at "/" only.
    Every url_path opens its own page, and "/" opens the overview."""
    from playwright.sync_api import expect

    base, _ = study_server
    with _page() as page:
        for path, heading in [("", "Studies"), *PAGE_PATHS.items()]:
            page.goto(f"{base}/{path}")
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
            _settle(page)
            assert page.get_by_text("Page not found").count() == 0, path
            assert page.locator("[role='dialog']").count() == 0, path
        page.goto(f"{base}/")
        expect(page.get_by_role("heading", name="Studies", exact=True)).to_be_visible()
        page.wait_for_url(re.compile(r"/overview$"))


def test_trial_page_shows_its_frames_first_and_sharp(study_server):
    """At 1366x768 the trial page's frames start on the first screen (the configuration's JSON is
    folded below them), and the browser never scales a 64 px frame up (that blurs it): the image it
    gets is at least as wide as it is drawn."""
    from playwright.sync_api import expect

    base, _ = study_server
    with _page() as page:
        page.goto(f"{base}/trial")
        expect(page.get_by_role("heading", name="Trial", exact=True)).to_be_visible()
        images = page.locator("[data-testid='stImage'] img")
        expect(images).to_have_count(3)
        _settle(page)
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=stImage] img')].every(i => i.complete)"
        )
        SCREENS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENS / "trial_first_screen.png"))
        top = images.first.bounding_box()["y"]
        assert top < 768, f"the first frame starts at y={top}, below the first screen"
        sizes = images.evaluate_all("is => is.map(i => [i.naturalWidth, i.getBoundingClientRect().width])")
        assert all(natural >= drawn for natural, drawn in sizes), sizes
        expect(page.get_by_text("Configuration", exact=True)).to_be_visible()  # the expander's label
        assert (
            page.locator("[data-testid='stJson']").count() == 0
            or not page.locator("[data-testid='stJson']").first.is_visible()
        )


def test_hide_pruned_and_failed_trials_toggle(study_server):
    """The sidebar's toggle takes the STOPPED t_003 and the failed t_006 out of the trials table, and
    stays on from page to page."""
    from playwright.sync_api import expect

    base, _ = study_server
    with _page(1400, 900) as page:
        page.goto(f"{base}/trials")
        grid = page.locator("[data-testid='stDataFrame']")
        expect(page.get_by_text("6 of 6 trials")).to_be_visible()
        expect(grid.get_by_text("t_003").first).to_be_attached()
        _settle(page)
        page.get_by_text("Hide pruned / failed trials").click()
        expect(page.get_by_text("4 of 4 trials")).to_be_visible()
        _settle(page)
        expect(grid.get_by_text("t_004").first).to_be_attached()
        expect(grid.get_by_text("t_003")).to_have_count(0)
        expect(grid.get_by_text("t_006")).to_have_count(0)
        _shot(page, "trials_hide_pruned")
        # another page and back (the same session): still on
        page.get_by_role("link", name="Learning curves").click()
        expect(page.get_by_role("heading", name="Learning curves", exact=True)).to_be_visible()
        _settle(page)
        page.get_by_role("link", name="Trials", exact=True).click()
        expect(page.get_by_text("4 of 4 trials")).to_be_visible()
        expect(grid.get_by_text("t_003")).to_have_count(0)


#: (trial id, x, y) of each point of a plotly scatter chart, in pixels from the chart's top left corner
_POINTS = """gd => (gd.calcdata || []).flatMap((cd, k) => gd._fullData[k].type !== 'scatter' ? [] : cd.map(pt => [
    gd._fullData[k].customdata[pt.i][0],
    gd._fullLayout.xaxis.c2p(pt.x) + gd._fullLayout._size.l,
    gd._fullLayout.yaxis.c2p(pt.y) + gd._fullLayout._size.t,
]))"""
#: the trial ids a plotly chart draws (its traces' first customdata column)
_PLOTTED = "gd => gd._fullData.flatMap(t => [...(t.customdata || [])].map(c => c[0]))"


@pytest.fixture()
def two_studies_server(fx, tmp_path):
    """`vidcolor dashboard` on the fixture study and a newer one (the sidebar's default), "other"."""
    _need_chromium()
    info = fx.build(tmp_path)
    info["store"].create_study("other", objective="val_rmse_rgb", mode="min", spec={"name": "other"})
    info["store"].upsert_trial("other", "o_1", params={"lam": 0.5})
    with _serving(["dashboard", "--db", info["url"]], tmp_path, "dashboard") as (base, _):
        yield base, info


def test_box_selected_trials_open_the_compare_page(two_studies_server):
    """Dragging a box around two points of the hyperparameters page's trade-off chart selects them
    (t_002 and t_004: no other point inside); "Compare selected" opens the compare page on them, in
    the study chosen in the sidebar (a button with st.switch_page opened the newest study's instead)."""
    from playwright.sync_api import expect

    base, _ = two_studies_server
    with _page() as page:
        page.goto(f"{base}/hyperparameters?study=fixture")
        expect(page.get_by_role("heading", name="Hyperparameters", exact=True)).to_be_visible()
        chart = page.locator(".st-key-tradeoff .js-plotly-plot")
        expect(chart).to_be_visible(timeout=60_000)
        _settle(page)
        chart.scroll_into_view_if_needed()
        page.wait_for_function("() => document.querySelector('.st-key-tradeoff .js-plotly-plot')?.calcdata")
        points = {t: (x, y) for t, x, y in chart.evaluate(_POINTS)}
        assert set(points) == {"t_001", "t_002", "t_003", "t_004", "t_005"}
        (x1, y1), (x2, y2) = points["t_002"], points["t_004"]
        lo, hi = (min(x1, x2) - 10, min(y1, y2) - 10), (max(x1, x2) + 10, max(y1, y2) + 10)
        inside = [t for t, (x, y) in points.items() if lo[0] <= x <= hi[0] and lo[1] <= y <= hi[1]]
        assert sorted(inside) == ["t_002", "t_004"], points
        box = chart.bounding_box()
        page.mouse.move(box["x"] + lo[0], box["y"] + lo[1])
        page.mouse.down()
        page.mouse.move(box["x"] + (lo[0] + hi[0]) / 2, box["y"] + (lo[1] + hi[1]) / 2, steps=5)
        page.mouse.move(box["x"] + hi[0], box["y"] + hi[1], steps=5)
        page.mouse.up()
        link = page.get_by_role("link", name="Compare selected (2)")
        expect(link).to_be_visible(timeout=60_000)
        expect(page.get_by_text("Selected (2): t_002, t_004,")).to_be_visible()  # best objective first
        _settle(page)
        _shot(page, "hyperparameters_selected")
        link.click()
        expect(page.get_by_role("heading", name="Compare trials", exact=True)).to_be_visible(timeout=60_000)
        page.wait_for_url(re.compile(r"/compare$"))
        _settle(page)
        chosen = page.locator("[data-testid='stMultiSelect']").first
        expect(chosen).to_contain_text("t_002", timeout=60_000)
        expect(chosen).to_contain_text("t_004")
        assert "t_001" not in chosen.inner_text() and "t_003" not in chosen.inner_text()
        # the frame view draws the two of them beside the gray input and the truth
        frames = page.frame_locator("iframe").first
        expect(frames.locator("body[data-ready='1'] canvas.panel").first).to_be_visible(timeout=60_000)
        assert "t_002 (" in frames.locator("body").inner_text() and "t_001" not in frames.locator("body").inner_text()


def test_hide_pruned_trials_leaves_them_out_of_the_overview_table_and_plots(study_server):
    """The overview's table of trials per experiment and status ignored the sidebar's filter: the
    STOPPED t_003 and failed t_006 stayed in it. Now the toggle takes them out of that table, the
    overview's plot and the hyperparameters page's trade-off chart."""
    from playwright.sync_api import expect

    base, _ = study_server
    with _page(1400, 900) as page:
        page.goto(f"{base}/overview")
        expect(page.get_by_role("heading", name="Studies", exact=True)).to_be_visible()
        counts = page.locator("[data-testid='stDataFrame']").nth(1)
        expect(counts.get_by_text("STOPPED").first).to_be_attached(timeout=60_000)
        expect(counts.get_by_text("ERROR").first).to_be_attached()
        plot = page.locator(".js-plotly-plot").first
        expect(plot).to_be_visible(timeout=60_000)
        _settle(page)
        assert "t_003" in plot.evaluate(_PLOTTED)
        page.get_by_text("Hide pruned / failed trials").click()
        expect(counts.get_by_text("STOPPED")).to_have_count(0, timeout=20_000)
        expect(counts.get_by_text("ERROR")).to_have_count(0)
        expect(counts.get_by_text("TERMINATED").first).to_be_attached()
        expect(page.get_by_text("(pruned / failed hidden by the sidebar's filter)")).to_be_visible()
        _settle(page)
        page.wait_for_function(
            "() => { const gd = document.querySelector('.js-plotly-plot');"
            " return gd && !gd._fullData.some(t => [...(t.customdata || [])].some(c => c[0] === 't_003')); }"
        )
        assert sorted(set(plot.evaluate(_PLOTTED))) == ["t_001", "t_002", "t_004", "t_005"]
        _shot(page, "overview_hide_pruned")
        page.get_by_role("link", name="Hyperparameters").click()
        chart = page.locator(".st-key-tradeoff .js-plotly-plot")
        expect(chart).to_be_visible(timeout=60_000)
        _settle(page)
        page.wait_for_function("() => document.querySelector('.st-key-tradeoff .js-plotly-plot')?._fullData")
        assert sorted(set(chart.evaluate(_PLOTTED))) == ["t_001", "t_002", "t_004", "t_005"]


def _body(page) -> str:
    return page.locator("[data-testid='stApp']").inner_text()


# ---- what a user found after `make demo`: the rating pages at 1366x768, bare clips, feedback, the link

LAPTOP = (1366, 768)


def _fits(page, buttons: list[str]) -> None:
    """Nothing on the page scrolls and each named button lies wholly inside the viewport."""
    width, height = LAPTOP
    scrolls = page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=stMain], [data-testid=stAppViewContainer]'),"
        " document.scrollingElement].map(e => [e.getAttribute('data-testid') || e.tagName,"
        " e.scrollHeight, e.clientHeight, e.scrollTop])"
    )
    assert all(full <= shown + 1 and top == 0 for _, full, shown, top in scrolls), scrolls
    for name in buttons:
        box = page.get_by_role("button", name=name).bounding_box()
        assert box is not None, name
        inside = box["x"] >= 0 and box["y"] >= 0
        assert inside and box["x"] + box["width"] <= width and box["y"] + box["height"] <= height, (name, box)


def _bare_clips(page, count: int = 2) -> None:
    """The item's clips play by themselves, muted and looped, with no controls attribute (no seek
    bar, no menu with Download), no download or picture in picture, and take no pointer events
    (no context menu with "Save video as")."""
    page.wait_for_function(
        f"() => document.querySelectorAll('video').length == {count} && "
        "[...document.querySelectorAll('video')].every(v => v.readyState >= 2 && !v.paused)",
        timeout=30_000,
    )
    clips = page.locator("video").evaluate_all(
        "vs => vs.map(v => ({attrs: v.getAttributeNames(), controls: v.controls, autoplay: v.autoplay,"
        " muted: v.muted, loop: v.loop, paused: v.paused, list: [...v.controlsList],"
        " pip: v.disablePictureInPicture, pointer: getComputedStyle(v).pointerEvents}))"
    )
    for clip in clips:
        assert "controls" not in clip["attrs"] and not clip["controls"], clip
        assert clip["autoplay"] and clip["muted"] and clip["loop"] and not clip["paused"], clip
        assert "nodownload" in clip["list"] and clip["pip"] and clip["pointer"] == "none", clip


def test_rater_link_on_the_dashboard_fixes_study_task_time_and_fits_a_laptop(server):
    """`/?mode=rater` on the dashboard: no sidebar with its study picker, no task or display time
    to choose (the link fixes them; the default display time is the campaigns' 1 s), no word of
    attention checks; the pair and the answer buttons fit 1366x768, the clips play bare."""
    from playwright.sync_api import expect

    base, _ = server
    with _page(*LAPTOP) as page:
        page.goto(f"{base}/?mode=rater")
        expect(page.get_by_role("button", name="Start")).to_be_visible()
        _settle(page)
        assert page.locator("[data-testid='stSidebar']").count() == 0
        for widget in ("stSelectbox", "stRadio", "stNumberInput", "stSlider", "stCheckbox"):
            assert page.locator(f"[data-testid='{widget}']").count() == 0, widget
        text = _body(page)
        assert "Each one is shown for 1 second" in text and not re.search(r"check|attention|easy", text, re.I), text
        page.get_by_role("button", name="Start").click()
        page.wait_for_selector("text=Time is up", timeout=30_000)  # the default display time ran out
        # the link may keep the pair until answered: then it and the buttons fit the screen
        page.goto(f"{base}/?mode=rater&limit=0")
        expect(page.get_by_role("button", name="Start")).to_be_visible()
        _settle(page)
        page.get_by_role("button", name="Start").click()
        page.wait_for_selector("text=votes this session: 0", timeout=30_000)
        _settle(page)
        _bare_clips(page)
        _fits(page, ["A is real", "B is real"])
        SCREENS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENS / "dashboard_rater_1366x768.png"))
        assert page.locator("[data-testid='stSidebar']").count() == 0


RATER_LOAD = ROOT / "bench" / "rater_load.py"


def test_four_raters_five_votes_each_stored_once():
    """bench/rater_load.py, small: 4 raters in Chromium, 2 at a time, 5 votes each on `vidcolor ctt
    serve`; every vote stored once, every session finished, every vote timed in the browser."""
    _need_chromium()
    spec = importlib.util.spec_from_file_location("bench_rater_load", RATER_LOAD)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    res = bench.run(None, raters=4, votes=5, concurrency=2)
    assert not res["rater_errors"] and not res["server_errors"], res
    assert res["votes_stored"] == res["distinct_stored"] == 20 and res["all_stored_once"], res
    assert res["sessions"] == res["sessions_finished"] == 4 and res["votes_timed"] == 20, res
    assert 0 < res["vote_p50_ms"] <= res["vote_p99_ms"], res
    assert res["requests_timed"]["answer"] == 20 and 0 <= res["answer_req_p50_ms"] <= res["answer_req_p99_ms"], res
