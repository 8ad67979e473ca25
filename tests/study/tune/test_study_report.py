"""`vidcolor report STUDY --out report.html`: one self-contained file (every image and clip inside
it as a data: URI, plotly inlined) that opens offline in Chromium without a single request, with
the trials, their hyperparameters, the plots, the best trials' frames beside gray and ground truth
and the CTT results; bad --out and study names are clear errors."""

from __future__ import annotations

import base64
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from study.cli import main as vidcolor

CHROMIUM = "/usr/bin/chromium"


class _Refs(HTMLParser):
    """Every src/href/poster attribute, and the text of the page outside scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.text: list[str] = []
        self._script = 0

    def handle_starttag(self, tag, attrs):
        self._script += tag == "script"
        self.refs += [(tag, k, v or "") for k, v in attrs if k in ("src", "href", "poster", "srcset")]

    def handle_endtag(self, tag):
        self._script -= tag == "script"

    def handle_data(self, data):
        if not self._script:
            self.text.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory, fx):
    info = fx.build(tmp_path_factory.mktemp("report"))
    out = info["root"] / "out" / "report.html"
    assert vidcolor(["report", "--study", info["study"], "--db", info["url"], "--out", str(out)]) == 0
    return info, out


def test_report_is_one_file_with_the_trials_plots_and_media_inside(report):
    info, out = report
    page = out.read_text(encoding="utf-8")
    refs = _Refs()
    refs.feed(page)
    # nothing outside the file: every reference is a data: URI (no http, no file path, no //host)
    assert refs.refs and all(v.startswith("data:") for _, _, v in refs.refs), [
        r for r in refs.refs if not r[2].startswith("data:")
    ][:3]
    outside_scripts = re.sub(r"<script\b.*?</script>", "", page, flags=re.S)
    assert not re.search(r"<link\b|@import|url\((?!data:)", outside_scripts)
    text = " ".join(refs.text)
    trials = info["store"].trials(info["study"])
    for tid in trials["trial_id"]:
        assert tid in text  # every trial in the table, the failed one too
    for param in ("lam", "lr", "grid"):
        assert f">{param}</th>" in page
    # the images are the stored PNGs byte for byte, and there are clips of gray, trials and truth
    images = [v for tag, _, v in refs.refs if tag == "img"]
    stored = {Path(p).read_bytes() for p in info["store"].media(info["study"])["path"] if p.endswith(".png")}
    assert images and all(base64.b64decode(v.split(",", 1)[1]) in stored for v in images)
    videos = [v for tag, _, v in refs.refs if tag == "video"]
    assert len(videos) == 2 + 3  # gray, ground truth and the three best trials
    assert all(base64.b64decode(v.split(",", 1)[1])[4:8] == b"ftyp" for v in videos)
    assert page.count("Plotly.newPlot") >= 3 and "No Color Turing Test votes" in page


def test_best_trials_shown_are_the_best_by_the_objective(report):
    from study.tune.study_report import best_trials

    info, out = report
    trials = info["store"].trials(info["study"])
    best = best_trials(trials, [("val_rmse_rgb", "min")])
    ranked = trials.dropna(subset=["best_val_rmse_rgb"]).sort_values("best_val_rmse_rgb")["trial_id"].tolist()
    assert best == ranked[:3]
    page = out.read_text(encoding="utf-8")
    labels = re.findall(r'<div class="label">([^<]*)</div>', page)
    assert labels == ["gray", *(f"trial {t}" for t in best), "ground truth"]


def test_a_missing_media_file_leaves_a_blank_and_a_note(tmp_path, fx):
    from study.tune.study_report import best_trials

    info = fx.build(tmp_path, with_items=False)
    best = best_trials(info["store"].trials(info["study"]), [("val_rmse_rgb", "min")])[0]
    media = info["store"].media(info["study"])
    for path in media[(media["trial_id"] == best) & (media["media_type"] == "pred_png")]["path"]:
        Path(path).unlink()
    out = tmp_path / "r.html"
    assert vidcolor(["report", info["study"], "--db", info["url"], "--out", str(out)]) == 0
    assert "could not be read and are left blank" in out.read_text(encoding="utf-8")


def test_bad_out_and_study_names_are_clear_errors(report, tmp_path, capsys):
    info, out = report
    before = out.read_bytes()
    assert vidcolor(["report", info["study"], "--db", info["url"], "--out", str(out)]) == 2
    assert str(out) in capsys.readouterr().err and out.read_bytes() == before  # refused, kept
    assert vidcolor(["report", info["study"], "--db", info["url"], "--out", str(tmp_path)]) == 2
    assert "--out" in capsys.readouterr().err
    assert vidcolor(["report", info["study"], "--study", "other", "--db", info["url"]]) == 2
    assert "two studies named" in capsys.readouterr().err
    assert vidcolor(["report", "--db", info["url"]]) == 2
    assert "name the study" in capsys.readouterr().err
    assert vidcolor(["report", "nope", "--db", info["url"], "--out", str(tmp_path / "n.html")]) == 2
    assert "nope" in capsys.readouterr().err and not (tmp_path / "n.html").exists()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_report_opens_offline_in_chromium_without_a_request(report):
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.skip(f"Chromium not installed at {CHROMIUM} (apt-get install chromium); CI runs this test")
    from playwright.sync_api import sync_playwright

    _, out = report
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-background-networking"]
        )
        try:
            context = browser.new_context(offline=True, viewport={"width": 1366, "height": 768})
            page = context.new_page()
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(out.as_uri())
            page.wait_for_selector(".main-svg", timeout=60_000)
            page.wait_for_timeout(500)
            assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
            assert page.locator(".plot-container").count() >= 3  # plotly drew every figure
            widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
            assert widths and all(w > 0 for w in widths)  # every frame decoded
        finally:
            browser.close()


def test_a_study_whose_trials_have_no_objective_yet_still_gets_a_report(tmp_path):
    from study.store import Store

    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store(url)
    store.create_study("young", objective="val_rmse_rgb", mode="min")
    store.upsert_trial("young", "t1", experiment="exp1", params={"lam": 0.5}, config={})
    out = tmp_path / "young.html"
    assert vidcolor(["report", "young", "--db", url, "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert "t1" in page and "No trial has reported its objective yet" in page
