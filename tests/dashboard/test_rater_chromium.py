"""The rater server (`vidcolor ctt serve`, study.ctt.rater_app) in headless Chromium, as a rater
recruited on Prolific meets it: the study link with Prolific's ids -> the consent page -> the
colour-vision plates -> a practice item with feedback -> the counted items (one composite file
each, no player controls, fitting a 1366x768 screen) -> the completion code; the participant's ids
stored; a second browser on the same link is not the first rater; a withdrawn and an expired link
each say so; the database gone mid-session shows the plain page."""

from __future__ import annotations

import datetime as dt
import re

import browser_tools
import pytest

from study.ctt import plates
from study.store.campaigns import EXPIRED_INVITE, REVOKED_INVITE, TAKEN_PART
from study.store.schema import RaterSessionRow

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]
CONSENT = "This study is run by the colour lab.\n\nYou may stop at any time."


@pytest.fixture()
def campaign(fx, tmp_path):
    browser_tools.need_chromium()
    info = fx.build(tmp_path)
    store = info["store"]
    store.create_campaign(
        "fixture",
        "prolific",
        task="2afc",
        display_s=3,
        session_items=3,
        practice_items=1,
        attention_share=0.34,
        consent_text=CONSENT,
        completion_code="C0DE42",
        screened_code="SCR77",
        id_params={"participant": "PROLIFIC_PID", "study": "STUDY_ID", "session": "SESSION_ID"},
        screen=True,
    )
    (token,) = store.add_invites("fixture", "prolific", max_uses=None)
    (expired,) = store.add_invites("fixture", "prolific", expires=dt.datetime(2021, 1, 1))
    (revoked,) = store.add_invites("fixture", "prolific")
    store.revoke_invite(revoked)
    with browser_tools.serving(["ctt", "serve", "--db", info["url"]], tmp_path, "rater server") as (base, _):
        yield info, base, {"token": token, "expired": expired, "revoked": revoked}


def _link(base: str, token: str, pid: str) -> str:
    return f"{base}/i/{token}?PROLIFIC_PID={pid}&STUDY_ID=st-9&SESSION_ID=se-{pid}"


def _consent(page, base: str, token: str, pid: str) -> None:
    page.goto(_link(base, token, pid))
    page.get_by_text("This study is run by the colour lab.").wait_for()
    page.get_by_label("I have read the above and agree to take part.").check()
    page.get_by_role("button", name="Start").click()


def _seed_of(store, pid: str) -> str:
    with store._read() as s:
        from sqlalchemy import select

        return s.scalar(select(RaterSessionRow.seed).where(RaterSessionRow.participant_id == pid))


def _inside(page, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    assert box and box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= 1366, (selector, box)
    assert box["y"] + box["height"] <= 768, (selector, box)


def test_prolific_rater_from_link_to_completion_code(campaign, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    info, base, links = campaign
    store = info["store"]
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_tools.CHROMIUM, args=browser_tools.CHROMIUM_ARGS)
        try:
            first = browser.new_context(viewport={"width": 1366, "height": 768})
            page = first.new_page()
            page.set_default_timeout(60_000)
            page.on("request", lambda r: requests.append(r.url))
            _consent(page, base, links["token"], "pp-1")
            page.wait_for_url(re.compile(r"/rate$"))
            assert "session" not in page.url and "pp-1" not in page.url  # nothing to share in the URL
            cookie = next(c for c in first.cookies() if c["name"] == "vc_rater")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert page.evaluate("() => document.cookie") == ""  # the page's script cannot read it
            # the colour-vision screen
            page.get_by_role("button", name="Begin").click()
            for k, digit in enumerate(plates.digits(_seed_of(store, "pp-1"))):
                expect(page.locator("#plate-label")).to_contain_text(f"Plate {k + 1} of {plates.PLATES}")
                page.locator("#digit").fill(str(digit))
                page.get_by_role("button", name="Next").dblclick()  # a double click answers once
            # a practice item, then the counted ones
            for step in range(4):
                expect(page.locator("#progress")).to_have_text(
                    "Practice 1 of 1" if step == 0 else f"Item {step} of 3", timeout=30_000
                )
                media = page.locator("#stage video")
                media.wait_for()
                assert media.get_attribute("controls") is None and page.evaluate(
                    "() => { const v = document.querySelector('#stage video'); return v.muted && v.loop && !v.paused }"
                )
                assert media.evaluate("v => v.currentSrc").startswith("blob:")  # fetched once, no URL to reuse
                _inside(page, "#left")
                _inside(page, "#right")
                assert page.evaluate("() => document.scrollingElement.scrollHeight <= innerHeight + 1")
                if step == 1:
                    page.screenshot(path=str(tmp_path / "rater_item_1366x768.png"))
                page.get_by_role("button", name="\u2190 Left").click()
                if step == 0:
                    expect(page.locator("#feedback")).to_contain_text("real footage")
                    page.get_by_role("button", name="Next").click()
                    expect(page.locator("#feedback")).to_have_count(0)
            expect(page.locator("#code")).to_have_text("C0DE42")
            page.screenshot(path=str(tmp_path / "rater_done.png"))
            sessions = store.campaign_sessions("fixture", "prolific")
            mine = sessions[sessions["participant_id"] == "pp-1"]
            assert mine[["external_study", "external_session"]].values.tolist() == [["st-9", "se-pp-1"]]
            assert mine["finished"].notna().all() and len(store.campaign_votes("fixture", "prolific")) == 3

            # the same link in a second browser: with the same participant id turned away, with
            # another its own session, never the first rater's
            second = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
            _consent(second, base, links["token"], "pp-1")
            expect(second.get_by_text(TAKEN_PART)).to_be_visible()
            _consent(second, base, links["token"], "pp-2")
            second.wait_for_url(re.compile(r"/rate$"))
            expect(second.get_by_role("button", name="Begin")).to_be_visible()  # its own screen, from the start

            # withdrawn and expired links
            third = browser.new_context().new_page()
            for token, text in ((links["revoked"], REVOKED_INVITE), (links["expired"], EXPIRED_INVITE)):
                third.goto(_link(base, token, "pp-3"))
                expect(third.get_by_text(text.capitalize() + ".")).to_be_visible()
                assert third.locator("form").count() == 0

            # the database gone mid-session (overwritten in place: the server's open connections
            # read garbage, as from a failed disk): the plain page, nothing internal
            for path in tmp_path.glob("results.db*"):
                with open(path, "r+b") as f:
                    f.write(b"not a database " * 4096)
                    f.truncate()
            second.reload()
            body = second.locator("body").inner_text()
            assert "Something went wrong on our side" in body
            for leak in ("Traceback", str(tmp_path), "sqlite", "vc_", "Error"):
                assert leak not in body, leak
        finally:
            browser.close()
    outside = [u for u in requests if not u.startswith((base, f"blob:{base}"))]
    assert not outside, outside  # nothing but the rater server (and the page's own blob: copies)
    assert any("/m/" in u for u in requests)
