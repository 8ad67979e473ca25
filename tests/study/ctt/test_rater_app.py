"""The rater server (study.ctt.rater_app) over HTTP, in-process (Starlette's TestClient): the
Prolific-style flow from invite to completion code, sessions bound to the browser's cookie,
per-session media URLs, invites that expire or are withdrawn, the colour-vision screen, plain pages
for every error; and a script playing the attacker on 300 items of a frame and of a clip campaign,
which must be right about the real side and the attention checks at most 60% of the time
(balanced accuracy: a guess that never changes scores 50%)."""

from __future__ import annotations

import datetime as dt
import re
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from study.ctt import plates
from study.ctt.composite import real_on_left
from study.ctt.rater_app import COOKIE, create_app
from study.store import Store
from study.store.campaigns import EXPIRED_INVITE, REVOKED_INVITE, TAKEN_PART
from study.store.schema import RaterSessionRow

PROLIFIC = {"participant": "PROLIFIC_PID", "study": "STUDY_ID", "session": "SESSION_ID"}
DONE_URL = "https://app.prolific.com/submissions/complete?cc={code}"


def _seed(store: Store, session_id: str) -> str:
    with store._read() as s:
        return s.get(RaterSessionRow, session_id).seed


def _session_of(store: Store, client: TestClient) -> str:
    return store.session_for_secret(client.cookies.get(COOKIE))


@pytest.fixture()
def served(fx, tmp_path):
    info = fx.build(tmp_path)
    store: Store = info["store"]
    store.create_campaign(
        info["study"],
        "prolific",
        task="2afc",
        session_items=4,
        practice_items=2,
        attention_share=0.25,
        consent_text="We study colorization.\n\nYour answers are anonymous.",
        completion_code="C0MPLETE",
        screened_code="SCREENED1",
        completion_url=DONE_URL,
        id_params=PROLIFIC,
        screen=True,
    )
    [token] = store.add_invites(info["study"], "prolific", max_uses=None)
    app = create_app(store, tmp_path / "cache")
    return info, store, app, token


def _client(app) -> TestClient:
    return TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)


def _join(client: TestClient, token: str, pid: str) -> None:
    page = client.get(f"/i/{token}", params={"PROLIFIC_PID": pid, "STUDY_ID": "st1", "SESSION_ID": f"se-{pid}"})
    assert (
        page.status_code == 200 and "We study colorization." in page.text and "Your answers are anonymous." in page.text
    )
    r = client.post(f"/i/{token}", data={"agree": "yes", "participant": pid, "study": "st1", "session": f"se-{pid}"})
    assert r.status_code == 303 and r.headers["location"] == "/rate"
    cookie = r.headers["set-cookie"]
    assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")


def test_prolific_flow_consent_screen_practice_items_completion(served):
    info, store, app, token = served
    rater = _client(app)
    _join(rater, token, "pid-1")
    assert rater.get("/rate").status_code == 200
    state = rater.get("/api/state").json()
    assert state["phase"] == "screen" and len(state["plates"]) == plates.PLATES
    sid = _session_of(store, rater)
    for url in state["plates"]:
        r = rater.get(url)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content[:4] == b"\x89PNG"
    assert rater.post("/api/answer", json={"position": 0, "side": "left"}).json() == {"stale": True}  # screen first
    rater.post("/api/screen", json={"answers": [str(d) for d in plates.digits(_seed(store, sid))]})
    seen_media, votes = set(), []
    while True:
        state = rater.get("/api/state").json()
        if state["phase"] != "item":
            break
        item = state["item"]
        assert set(item) == {"position", "medium", "media", "practice"}  # nothing about sides or checks
        media = rater.get(item["media"])
        assert media.status_code == 200 and media.headers["content-type"] == "video/mp4"
        assert "etag" not in media.headers and "last-modified" not in media.headers
        assert media.headers["cache-control"].startswith("no-store")
        seen_media.add(item["media"])
        other = _client(app)  # another browser, or no cookie: the URL is not theirs
        assert other.get(item["media"]).status_code == 404
        rater.post("/api/shown", json={"position": item["position"]})
        out = rater.post("/api/answer", json={"position": item["position"], "side": "left", "ms": 900}).json()
        assert not out["stale"]
        if item["practice"]:
            assert out["feedback"].startswith(("Right", "Not this time"))
        else:
            votes.append(item["position"])
        assert rater.get(item["media"]).status_code == 404  # dead once answered
    assert state["phase"] == "done" and state["code"] == "C0MPLETE"
    assert state["redirect"] == "https://app.prolific.com/submissions/complete?cc=C0MPLETE"
    assert len(seen_media) == 6 and len(votes) == 4
    stored = store.campaign_votes(info["study"], "prolific")
    assert len(stored) == 4 and set(stored["choice"]) == {"left"}
    seed = _seed(store, sid)
    for uid, picked in zip(stored["uid"], stored["picked_real"]):
        assert bool(picked) == real_on_left(seed, uid)  # "left" was the real side exactly when drawn there
    sessions = store.campaign_sessions(info["study"], "prolific").set_index("session_id")
    assert sessions.loc[sid, ["participant_id", "external_study", "external_session"]].tolist() == [
        "pid-1",
        "st1",
        "se-pid-1",
    ]
    # a reload, later, continues at the end; the same participant in another browser is turned away
    assert rater.get(f"/i/{token}").headers["location"] == "/rate"
    again = _client(app)
    again.get(f"/i/{token}", params={"PROLIFIC_PID": "pid-1"})
    r = again.post(f"/i/{token}", data={"agree": "yes", "participant": "pid-1"})
    assert r.status_code == 409 and TAKEN_PART in r.text and "Traceback" not in r.text


def test_a_second_browser_on_the_same_link_is_its_own_rater(served):
    info, store, app, token = served
    first, second = _client(app), _client(app)
    _join(first, token, "pid-a")
    _join(second, token, "pid-b")
    a, b = _session_of(store, first), _session_of(store, second)
    assert a and b and a != b
    # the first one's media URL means nothing to the second
    store.screen_result(a, True)
    url = first.get("/api/state").json()["item"]["media"]
    assert second.get(url).status_code == 404 and first.get(url).status_code == 200
    # a URL with the session id in it does not exist: the session is the cookie's
    assert second.get(f"/rate?session={a}").status_code == 200 and _session_of(store, second) == b


def test_screened_out_rater_gets_the_other_code_and_votes_nothing(served):
    info, store, app, token = served
    rater = _client(app)
    _join(rater, token, "pid-s")
    rater.post("/api/screen", json={"answers": ["", "", "", ""]})
    state = rater.get("/api/state").json()
    assert state["phase"] == "screened" and state["code"] == "SCREENED1" and state["redirect"].endswith("cc=SCREENED1")
    assert rater.post("/api/answer", json={"position": 0, "side": "left"}).json()["stale"]
    assert store.campaign_votes(info["study"], "prolific").empty


def test_expired_revoked_and_closed_invites_show_a_clear_notice(served):
    info, store, app, token = served
    [old] = store.add_invites(info["study"], "prolific", expires=dt.datetime(2020, 1, 1))
    [gone] = store.add_invites(info["study"], "prolific")
    assert store.revoke_invite(gone) == "prolific"
    client = _client(app)
    for t, text in ((old, EXPIRED_INVITE), (gone, REVOKED_INVITE)):
        page = client.get(f"/i/{t}", params={"PROLIFIC_PID": "x"})
        assert page.status_code == 410 and text.capitalize() in page.text and "<form" not in page.text
        r = client.post(f"/i/{t}", data={"agree": "yes", "participant": "x"})  # nor by posting the form
        assert r.status_code == 409 and text in r.text and COOKIE not in r.headers.get("set-cookie", "")
    assert client.get("/i/not-a-token").status_code == 410  # as a used-up one: nothing more said
    assert client.get(f"/i/{token}").status_code == 400  # no participant id: opened outside Prolific
    store.close_campaign(info["study"], "prolific")
    assert "not valid" in client.get(f"/i/{token}", params={"PROLIFIC_PID": "y"}).text


def test_only_its_page_health_and_media_and_plain_pages_for_errors(served, monkeypatch):
    info, store, app, token = served
    client = _client(app)
    assert client.get("/health").text == "ok"
    for path in ("/_stcore/metrics", "/_stcore/health", "/admin", "/static/x.js", "/m/nothing", "/api/nothing"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert "Traceback" not in r.text and "/tmp" not in r.text and "/work" not in r.text
    assert client.get("/rate").status_code == 403  # no session in this browser
    assert client.get(f"/?invite={token}").headers["location"] == f"/i/{token}"  # links of earlier versions
    _join(client, token, "pid-e")

    def broken(*a, **k):
        raise RuntimeError(f"database at {info['root']} went away")

    monkeypatch.setattr(store, "session_state", broken)
    r = client.get("/api/state")
    assert r.status_code == 500 and "Something went wrong on our side" in r.json()["error"]
    assert str(info["root"]) not in r.text and "Traceback" not in r.text and "RuntimeError" not in r.text
    monkeypatch.setattr(store, "campaign_settings", broken)
    page = client.get(f"/i/{token}")
    assert page.status_code == 500 and "Something went wrong" in page.text and str(info["root"]) not in page.text


def test_plates_draw_the_digit_by_hue_at_one_lightness():
    import cv2

    seed = "s33d"
    assert len(set(plates.digits(seed))) == plates.PLATES and plates.digits(seed) == plates.digits(seed)
    right = plates.digits(seed)
    assert plates.check(seed, right) and plates.check(seed, [right[0], right[1], right[2], "x"])
    assert not plates.check(seed, [right[0], right[1], "x", "y"])
    img = plates.plate(seed, 0)
    lab = cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    dots = lab[..., 0] < 95  # not the white background
    figure = plates._mask(right[0]) & dots
    ground = ~plates._mask(right[0]) & dots
    assert abs(lab[figure, 0].mean() - lab[ground, 0].mean()) < 4  # no lightness cue
    assert lab[figure, 1].mean() - lab[ground, 1].mean() > 40  # red against green


# -- the attacker ---------------------------------------------------------------------------------


def _attack_study(store: Store, root: Path, medium: str, n: int, rng: np.random.Generator) -> None:
    """A study of `n` items made the way `ctt build` makes them (study.ctt.clips.write_pair): a real
    side with grain and detailed colour, a colorized side with the same lightness and smooth,
    paler colour (a colorizer's typical output), and one in three an attention check (a wrong
    recoloring of the colorized side)."""
    import cv2

    from study.ctt.clips import write_pair, wrong_recoloring
    from study.media.video_out import write_video

    store.create_study("attack", objective="val_rmse_rgb")
    store.upsert_trial("attack", "t1", experiment="exp5")
    src, out = root / "src", root / "items"
    src.mkdir()
    out.mkdir()
    items = []
    for i in range(n):
        frames = 1 if medium == "frame" else 6
        base = rng.integers(0, 255, (frames, 6, 8, 3)).astype(np.float32)
        real = np.stack([cv2.resize(f, (64, 48), interpolation=cv2.INTER_CUBIC) for f in base])
        real = np.clip(real + rng.normal(0, 12, real.shape), 0, 255).astype(np.uint8)  # grain
        lab = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2Lab) for f in real]).astype(np.float32)
        lab[..., 1:] = 128 + 0.5 * (
            cv2.GaussianBlur(lab[..., 1:].reshape(-1, 64, 2), (0, 0), 4).reshape(lab[..., 1:].shape) - 128
        )
        fake = np.stack([cv2.cvtColor(f.astype(np.uint8), cv2.COLOR_Lab2RGB) for f in lab])
        if medium == "frame":
            from PIL import Image

            rp, fp = src / f"r{i}.png", src / f"f{i}.png"
            Image.fromarray(real[0]).save(rp)
            Image.fromarray(fake[0]).save(fp)
        else:
            rp = Path(write_video(src / f"r{i}.mp4", list(real), fps=8))
            fp = Path(write_video(src / f"f{i}.mp4", list(fake), fps=8))
        attention = i % 3 == 0  # 100 of 300: enough checks that chance rarely looks like a leak
        a, b = write_pair(rp, fp, out, rng, recolor=wrong_recoloring if attention else None)
        items.append(
            {
                "real_path": str(a),
                "fake_path": str(b),
                "medium": medium,
                "is_attention": attention,
                "trial_id": None if attention else "t1",
                "video_id": f"v{i}",
                "clip": 0,
                "frame": 0 if medium == "frame" else None,
                "split": "test",
            }
        )
    store.add_ctt_items("attack", items)


def _box_sizes(blob: bytes) -> dict[str, int]:
    """Top-level mp4 boxes: name -> total size."""
    out, pos = {}, 0
    while pos + 8 <= len(blob):
        size = int.from_bytes(blob[pos : pos + 4], "big")
        name = blob[pos + 4 : pos + 8].decode("latin-1")
        if size < 8:
            break
        out[name] = out.get(name, 0) + size
        pos += size
    return out


def _record(app, token: str, n: int) -> tuple[list[dict], Store]:
    """One rater who answers every item 'left' and records, per item, everything the browser got."""
    client = _client(app)
    _join_plain(client, token)
    seen = []
    while True:
        state = client.get("/api/state").json()
        if state["phase"] != "item":
            break
        item = state["item"]
        t0 = time.perf_counter()
        media = client.get(item["media"])
        elapsed = time.perf_counter() - t0
        seen.append(
            {
                "position": item["position"],
                "url": item["media"],
                "size": len(media.content),
                "headers": dict(media.headers),
                "seconds": elapsed,
                "boxes": _box_sizes(media.content) if item["medium"] == "clip" else {},
                "png_chunks": len(re.findall(rb"IDAT", media.content)) if item["medium"] == "frame" else 0,
            }
        )
        client.post("/api/shown", json={"position": item["position"]})
        client.post("/api/answer", json={"position": item["position"], "side": "left"})
    return seen, client


def _join_plain(client: TestClient, token: str) -> None:
    client.get(f"/i/{token}")
    assert client.post(f"/i/{token}", data={"agree": "yes"}).status_code == 303


def _accuracy(guesses: list[bool], truth: list[bool]) -> float:
    return sum(g == t for g, t in zip(guesses, truth)) / len(truth)


def _balanced(guesses: list[bool], truth: list[bool]) -> float:
    pos = [g for g, t in zip(guesses, truth) if t]
    neg = [not g for g, t in zip(guesses, truth) if not t]
    return (sum(pos) / max(1, len(pos)) + sum(neg) / max(1, len(neg))) / 2


@pytest.mark.slow
@pytest.mark.parametrize("medium", ["frame", "clip"])
def test_an_attacker_who_records_everything_cannot_tell_the_sides_or_the_checks(medium, tmp_path):
    # 300 items: chance alone puts a guess's balanced accuracy above 0.6 about 3 times in 10,000
    n = 300
    store = Store(f"sqlite:///{tmp_path / 'attack.db'}")
    rng = np.random.default_rng(7 if medium == "frame" else 8)
    _attack_study(store, tmp_path, medium, n, rng)
    attention = sum(1 for i in range(n) if i % 3 == 0)
    store.create_campaign(
        "attack", "c", task="2afc", display_s=0, session_items=n, practice_items=0, attention_share=attention / n
    )
    [token] = store.add_invites("attack", "c", max_uses=None)
    seen, client = _record(create_app(store, tmp_path / "cache"), token, n)
    assert len(seen) == n
    sid = _session_of(store, client)
    with store._read() as s:
        row = s.get(RaterSessionRow, sid)
        plan, seed = list(row.plan), row.seed
    items = store.ctt_items("attack").set_index("uid")
    truth_left = [real_on_left(seed, plan[x["position"]]) for x in seen]
    truth_check = [bool(items.loc[plan[x["position"]], "is_attention"]) for x in seen]
    assert 0.3 < sum(truth_left) / n < 0.7  # both arrangements occur

    sizes = [x["size"] for x in seen]
    assert len(set(sizes)) == 1  # one frame size, one file length: real or not, left or right, check or not
    if medium == "clip":
        assert len({tuple(sorted(x["boxes"].items())) for x in seen}) == 1  # and the same boxes
    median_size, median_time = statistics.median(sizes), statistics.median(x["seconds"] for x in seen)
    attacks = {  # each: a guess of "real on the left" per item from what the browser received
        "larger file": [x["size"] > median_size for x in seen],
        "slower response": [x["seconds"] > median_time for x in seen],
        "url parity": [ord(x["url"][-1]) % 2 == 0 for x in seen],
        "odd size": [x["size"] % 2 == 1 for x in seen],
        "order": [x["position"] % 2 == 0 for x in seen],
        "mdat share": [x["boxes"].get("mdat", 0) / max(1, x["size"]) > 0.5 for x in seen] if medium == "clip" else None,
        "png chunks": [x["png_chunks"] > 1 for x in seen] if medium == "frame" else None,
    }
    for name, guess in attacks.items():
        if guess is not None:  # balanced: a guess that is always "left" scores 0.5 however the sides fell
            assert _balanced(guess, truth_left) <= 0.6, (name, _balanced(guess, truth_left))
    # the attention checks: flagged by size, time or arrangement, balanced accuracy (they are few)
    top = sorted(sizes)[int(0.85 * n)]
    for name, guess in {
        "largest files": [x["size"] >= top for x in seen],
        "smallest files": [x["size"] <= sorted(sizes)[int(0.15 * n)] for x in seen],
        "slowest": [x["seconds"] >= sorted(s["seconds"] for s in seen)[int(0.85 * n)] for x in seen],
    }.items():
        assert _balanced(guess, truth_check) <= 0.6, (name, _balanced(guess, truth_check))
    # every response looks alike: the same headers but the length
    shapes = {tuple(sorted((k, v) for k, v in x["headers"].items() if k != "content-length")) for x in seen}
    assert len(shapes) == 1, shapes


@pytest.mark.parametrize("task", ["pairwise", "rating"])
def test_a_session_of_each_task(fx, tmp_path, task):
    info = fx.build(tmp_path)
    store = info["store"]
    store.create_campaign(
        "fixture", "c", task=task, session_items=2, practice_items=1, attention_share=0.0, display_s=0
    )
    (token,) = store.add_invites("fixture", "c")
    client = _client(create_app(store, tmp_path / "cache"))
    _join_plain(client, token)
    sid = _session_of(store, client)
    seed = _seed(store, sid)
    answered = []
    while (state := client.get("/api/state").json())["phase"] == "item":
        item = state["item"]
        body = {"rating": 4} if task == "rating" else {"side": "right"}
        out = client.post("/api/answer", json={"position": item["position"], **body}).json()
        if item["practice"]:
            assert out["feedback"] == "Thanks: practice answers are not counted."
        answered.append(item["position"])
    assert state["phase"] == "done" and answered == [0, 1, 2]
    if task == "rating":
        assert store.campaign_votes("fixture", "c")["rating"].tolist() == [4, 4]
    else:
        votes = store.pair_votes("fixture", "c")
        with store._read() as s:
            plan = list(s.get(RaterSessionRow, sid).plan)
        assert len(votes) == 2 and set(votes["choice"]) == {"right"}  # the side, for the position bias
        from study.ctt.trust import from_store

        bias = from_store(store, "fixture").agreement.set_index("task").loc["pairwise"]
        assert bias["answers"] == 2 and bias["left"] == 0
        trial_of = store.ctt_items("fixture").set_index("uid")["trial_id"]
        for entry in plan[1:]:  # "right" won: the second file on screen, a or b by the session's draw
            a, b = entry.split("|")
            row = votes[(votes["uid_a"] == a) & (votes["uid_b"] == b)]
            on_right = b if real_on_left(seed, entry) else a
            assert len(row) == 1 and row["winner"].iloc[0] == trial_of[on_right]


def _fresh_session(fx, tmp_path) -> tuple[dict, Store, TestClient]:
    info = fx.build(tmp_path)
    store = info["store"]
    store.create_campaign("fixture", "c", task="2afc", session_items=2, practice_items=1, attention_share=0.0)
    (token,) = store.add_invites("fixture", "c")
    client = _client(create_app(store, tmp_path / "cache"))
    _join_plain(client, token)
    assert client.get("/api/state").json()["phase"] == "item"
    return info, store, client


def _assert_plain(response, tmp_path) -> None:
    text = response.text
    assert response.status_code == 500 and "Something went wrong on our side" in text
    assert "Your answers so far are saved" in text
    for leak in ("Traceback", str(tmp_path), "vc_", "sqlite", "JSON", "Error"):
        assert leak not in text, leak


def test_a_damaged_session_row_shows_the_plain_notice_and_logs_it(fx, tmp_path, caplog):
    import sqlite3

    _, _, client = _fresh_session(fx, tmp_path)
    with sqlite3.connect(tmp_path / "results.db") as con:
        con.execute("UPDATE vc_ctt_sessions SET plan = '[\"x\",'")
    _assert_plain(client.get("/api/state"), tmp_path)
    assert "vc_ctt_sessions" in caplog.text  # the researcher finds it in the server's log


@pytest.mark.parametrize("when", ["reload", "answer"])
def test_the_database_gone_mid_session_shows_the_plain_notice(fx, tmp_path, when):
    """The SQLite file overwritten mid-session (a disk or a server gone)."""
    _, store, client = _fresh_session(fx, tmp_path)
    store.engine.dispose()
    for path in tmp_path.glob("results.db*"):  # the database and its write-ahead log
        path.unlink()
    (tmp_path / "results.db").write_bytes(b"not a database " * 4096)
    if when == "reload":
        _assert_plain(client.get("/rate"), tmp_path)
        _assert_plain(client.get("/api/state"), tmp_path)
    else:
        _assert_plain(client.post("/api/answer", json={"position": 0, "side": "left"}), tmp_path)


def test_malformed_api_calls_are_refused_plainly(served):
    _, _, app, token = served
    client = _client(app)
    assert client.post("/api/answer", json={"position": 0, "side": "left"}).status_code == 403  # no session
    _join(client, token, "pid-m")
    for body in ("not json", "[1, 2]", '"x"'):
        r = client.post("/api/answer", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "JSON object" in r.json()["error"]
    assert client.post("/api/answer", json={"position": "0", "side": "left"}).json() == {"stale": True}
    assert client.post("/api/shown", json={"position": None}).json() == {"ok": True}


def test_composites_made_at_once_by_many_threads_are_made_once_and_whole(fx, tmp_path):
    """Raters on the same item at the same moment: one encode, every caller gets the whole file."""
    import concurrent.futures

    from study.ctt.composite import CompositeCache

    info = fx.build(tmp_path, with_items=True)
    item = info["store"].ctt_items("fixture").query("medium == 'clip'").iloc[0]
    cache = CompositeCache(tmp_path / "cache")
    paths = [item["real_path"], item["fake_path"]]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda _: cache.get("k", paths, "clip"), range(16)))
    assert len(set(outs)) == 1 and outs[0].stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [outs[0].name]  # no leftovers


def test_a_browser_done_with_one_campaign_can_join_another(served):
    info, store, app, token = served
    rater = _client(app)
    _join(rater, token, "pid-x")
    first = _session_of(store, rater)
    store.create_campaign(info["study"], "second", session_items=2, practice_items=0, attention_share=0.0)
    (other,) = store.add_invites(info["study"], "second")
    page = rater.get(f"/i/{other}")
    assert page.status_code == 200 and "<form" in page.text  # its consent page, not the first one's session
    assert rater.post(f"/i/{other}", data={"agree": "yes"}).status_code == 303
    second = _session_of(store, rater)
    assert second and second != first and rater.get("/api/state").json()["phase"] == "item"
    assert rater.get(f"/i/{other}").headers["location"] == "/rate"  # and back to it on a reload


def test_the_consent_form_only_from_its_own_page(served):
    info, store, app, token = served
    client = _client(app)
    form = {"agree": "yes", "participant": "pid-c"}
    r = client.post(f"/i/{token}", data=form, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403 and COOKIE not in r.headers.get("set-cookie", "")
    r = client.post(f"/i/{token}", data=form, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    r = client.post(f"/i/{token}", data=form, headers={"Origin": "null"})  # a sandboxed or file: page
    assert r.status_code == 403
    r = client.post(f"/i/{token}", files={"participant": ("p.txt", b"x" * 100)}, data={"agree": "yes"})
    assert r.status_code == 415  # no multipart uploads spooled to disk
    r = client.post(
        f"/i/{token}",
        content=b"agree=yes&participant=" + b"x" * 20000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413
    r = client.post(f"/i/{token}", data={"agree": "yes"})  # a platform's campaign needs the participant's id
    assert r.status_code == 400 and "participant id" in r.text
    assert store.campaign_sessions(info["study"], "prolific").empty
    ok = client.post(f"/i/{token}", data=form, headers={"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1"})
    assert ok.status_code == 303


def test_the_screen_is_answered_once_and_only_in_its_phase(served):
    info, store, app, token = served
    rater = _client(app)
    _join(rater, token, "pid-q")
    seed = _seed(store, _session_of(store, rater))
    right = [chr(0xFF10 + d) for d in plates.digits(seed)]  # full-width digits, as an IME types them
    assert rater.post("/api/screen", json={"answers": right}).json() == {"ok": True}
    assert rater.get("/api/state").json()["phase"] == "item"
    r = rater.post("/api/screen", json={"answers": ["", "", "", ""]})  # no second go, no self-screening
    assert r.status_code == 409 and rater.get("/api/state").json()["phase"] == "item"


def test_a_screened_out_rater_is_never_sent_on_with_the_completion_code(fx, tmp_path):
    info = fx.build(tmp_path)
    store = info["store"]
    store.create_campaign(
        "fixture",
        "c",
        session_items=2,
        practice_items=0,
        attention_share=0.0,
        screen=True,
        completion_code="DONE1",
        screened_code="OUT1",
        completion_url="https://p.example/complete?cc=DONE1",
    )
    (token,) = store.add_invites("fixture", "c")
    client = _client(create_app(store, tmp_path / "cache"))
    _join_plain(client, token)
    client.post("/api/screen", json={"answers": []})
    state = client.get("/api/state").json()
    assert state["phase"] == "screened" and state["code"] == "OUT1" and "redirect" not in state
