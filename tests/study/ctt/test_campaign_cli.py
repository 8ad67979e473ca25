"""`vidcolor ctt campaign create` with a recruiting platform, `invite --expires`, `campaign close`
and `ctt invite revoke`, through the CLI, and their bad input."""

from __future__ import annotations

import datetime as dt

import pytest

from models.errors import VidcolorError
from study.cli import main as cli
from study.ctt.campaign import parse_expires, platform_url


def test_prolific_campaign_prints_its_study_url_and_stores_the_settings(fx, tmp_path, capsys):
    info = fx.build(tmp_path)
    consent = tmp_path / "consent.txt"
    consent.write_text("We study colour.\n\nYou may stop at any time.\n", encoding="utf-8")
    argv = ["ctt", "campaign", "create", "--db", info["url"], "--name", "p1", "--base-url", "https://ctt.example.org"]
    argv += ["--platform", "prolific", "--consent", str(consent), "--screen", "--completion-code", "C1A2"]
    argv += ["--screened-code", "X9", "--completion-url", "https://app.prolific.com/submissions/complete?cc={code}"]
    argv += ["--uses", "0", "--expires", "14d"]
    assert cli(argv) == 0
    out = capsys.readouterr().out
    assert "https://ctt.example.org/i/" in out and "until 20" in out
    assert "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}" in out
    assert "the colour-vision screen" in out and "completion code C1A2" in out
    token = out.split("/i/", 1)[1].split("\n", 1)[0].split("?", 1)[0].strip()
    settings = info["store"].campaign_settings(token)
    assert settings["consent_text"].startswith("We study colour.") and settings["screen"]
    assert settings["id_params"] == {"participant": "PROLIFIC_PID", "study": "STUDY_ID", "session": "SESSION_ID"}
    assert settings["problem"] is None
    # revoke it by its whole link; then the campaign closed
    assert cli(["ctt", "invite", "revoke", "--db", info["url"], f"https://ctt.example.org/i/{token}"]) == 0
    assert "is withdrawn" in capsys.readouterr().out
    assert "withdrawn" in info["store"].campaign_settings(token)["problem"]
    assert cli(["ctt", "campaign", "invite", "--db", info["url"], "--name", "p1", "--expires", "2h"]) == 0
    more = capsys.readouterr().out.split("/i/", 1)[1].split("\n", 1)[0].split("?", 1)[0].strip()
    assert cli(["ctt", "campaign", "close", "--db", info["url"], "--name", "p1"]) == 0
    assert "is closed" in capsys.readouterr().out
    assert "not valid" in info["store"].campaign_settings(more)["problem"]


def test_bad_recruiting_input_is_refused_before_anything_is_written(fx, tmp_path, capsys):
    info = fx.build(tmp_path)
    base = ["ctt", "campaign", "create", "--db", info["url"], "--name", "bad"]
    for extra, message in (
        (["--expires", "yesterday"], "--expires must be a duration"),
        (["--expires", "2020-01-01"], "is in the past"),
        (["--consent", str(tmp_path / "missing.txt")], "--consent"),
        (["--completion-url", "ftp://x"], "--completion-url must be an http(s) URL"),
        (["--id-param", "who=PID"], "--id-param: unknown id who"),
        (["--id-param", "study=S"], "the participant's id parameter is needed"),
        (["--completion-code", " spaced "], "--completion-code must be"),
    ):
        assert cli(base + extra) == 2, extra
        assert message in capsys.readouterr().err, extra
    assert info["store"].campaigns("fixture").empty
    assert cli(["ctt", "invite", "revoke", "--db", info["url"], "nosuchtoken"]) == 2
    assert "no invite link with token nosuchto..." in capsys.readouterr().err


def test_expiry_and_study_url_by_hand():
    now = dt.datetime(2026, 12, 8, 12, 0)
    assert parse_expires("36h", now) == dt.datetime(2026, 12, 10, 0, 0)
    assert parse_expires("90m", now) == dt.datetime(2026, 12, 8, 13, 30)
    assert parse_expires("2027-01-31T18:00", now) == dt.datetime(2027, 1, 31, 18, 0)
    assert parse_expires("2027-01-31T18:00+01:00", now) == dt.datetime(2027, 1, 31, 17, 0)  # to UTC
    assert parse_expires(None) is None
    with pytest.raises(VidcolorError, match="in the past"):
        parse_expires("0m", now)
    link = "https://x/i/T"
    assert platform_url(link, {"participant": "workerId"}, "mturk") is None  # MTurk adds them itself
    assert platform_url(link, {"participant": "pid", "study": "sid"}, None) == "https://x/i/T?pid=<pid>&sid=<sid>"
