"""The rater server (`vidcolor ctt serve`): a campaign's rating flow for strangers, and nothing else.

A small ASGI app (Starlette, run by uvicorn) that answers its page, its health check and its media,
and 404 to anything else. The flow:

1. ``/i/TOKEN`` (an invite link, with a recruiting platform's URL parameters: Prolific's
   ``PROLIFIC_PID``, ``STUDY_ID``, ``SESSION_ID``, MTurk's ``workerId`` ... as the campaign names
   them): the consent page with the researcher's text. An expired or withdrawn link, or one that
   is used up, shows a plain notice instead.
2. Consent opens a session (`Store.open_session`) bound to this browser: an HTTP-only, SameSite
   cookie holds a random secret whose hash is the session's key (the secret is never in a URL, a
   page or the database). A reload continues; the same link in another browser is another use of
   the invite (and, for a participant who already has a session, a notice).
3. ``/rate``: the page (static HTML and script, no outside requests) asks ``/api/state`` what to
   show: the colour-vision screen (`study.ctt.plates`) when the campaign has one, then the
   practice items with feedback, the counted items, and the end: the completion code, or a
   redirect to the campaign's completion URL (a rater screened out gets the screened-out code).
4. Media: each item is one composite file with both sides drawn in (`study.ctt.composite`), the
   side of each drawn per session; its URL ``/m/<random>`` is made for this session and this item,
   is refused to any other browser, and dies once answered or when the session ends. Responses
   carry no validators or dates (``Cache-Control: no-store``, no ETag or Last-Modified). The page
   loads the next item's file while the rater answers, and an item's clock starts when its file is
   on screen (``/api/shown``).

Votes go through `Store.answer`, the one write path. A rater never sees a traceback: an error
shows a plain page, and the event is logged with its traceback for the researcher.
"""

from __future__ import annotations

import html
import inspect
import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from study.ctt import plates
from study.ctt.composite import CompositeCache, png_bytes, real_on_left
from study.store.campaigns import INVALID_INVITE
from study.store.rater_sessions import RaterFacingError

log = logging.getLogger("vidcolor.rater")
COOKIE = "vc_rater"
PAGE = Path(__file__).with_name("rater_page.html")
PLAIN_ERROR = (
    "Something went wrong on our side. Your answers so far are saved. Please reload this page in a "
    "minute; if it happens again, tell the person running the test."
)
NO_STORE = {
    "Cache-Control": "no-store, private",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; form-action 'self' https: http:",
}
MEDIA_TYPES = {"frame": "image/png", "clip": "video/mp4"}
TOKEN_TTL_S = 3600.0
MAX_FORM_BYTES = 16 * 1024  # the consent form: a tick and the platform's ids


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    doc = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>body{{font:16px/1.5 system-ui,sans-serif;max-width:46em;"
        "margin:3em auto;padding:0 1em;color:#222}button{font-size:1.05em;padding:.5em 1.4em}"
        ".notice{padding:1em;background:#f4f4f4;border-radius:6px}</style></head>"
        f"<body>{body}</body></html>"
    )
    return HTMLResponse(doc, status_code=status, headers=NO_STORE)


def notice(text: str, status: int = 200) -> HTMLResponse:
    return _page("Color Turing Test", f"<h1>Color Turing Test</h1><p class='notice'>{html.escape(text)}</p>", status)


class MediaTokens:
    """Per-session media URLs: token -> (session, what, file or bytes, type), each made for one
    session and item, dropped when answered, when the session ends, or after an hour."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_token: dict[str, tuple[str, str, Any, str, float]] = {}
        self._by_key: dict[tuple[str, str], str] = {}
        self._next_purge = 0.0

    def mint(self, session: str, what: str, source: Any, media_type: str) -> str:
        with self._lock:
            now = time.monotonic()
            if len(self._by_token) > 1000 and now >= self._next_purge:  # abandoned sessions' URLs
                self._next_purge = now + 60.0
                for token in [t for t, e in self._by_token.items() if e[4] < now]:
                    entry = self._by_token.pop(token)
                    self._by_key.pop((entry[0], entry[1]), None)
            token = self._by_key.get((session, what))
            if token is None or token not in self._by_token:
                token = secrets.token_urlsafe(24)
                self._by_key[(session, what)] = token
            self._by_token[token] = (session, what, source, media_type, time.monotonic() + TOKEN_TTL_S)
            return token

    def take(self, token: str, session: str | None) -> tuple[Any, str] | None:
        with self._lock:
            entry = self._by_token.get(token)
            if entry is None or entry[0] != session or entry[4] < time.monotonic():
                return None
            return entry[2], entry[3]

    def drop(self, session: str, what: str | None = None) -> None:
        with self._lock:
            for key in [k for k in self._by_key if k[0] == session and (what is None or k[1] == what)]:
                self._by_token.pop(self._by_key.pop(key), None)


def create_app(store, cache_dir: str | Path) -> Starlette:
    """The rater server's app over a results store (`study.store.Store`); composites are made
    under `cache_dir`."""
    cache = CompositeCache(cache_dir)
    tokens = MediaTokens()
    page_html = PAGE.read_text(encoding="utf-8")

    def session_of(request: Request) -> str | None:
        return store.session_for_secret(request.cookies.get(COOKIE))

    def guarded(handler):
        """Errors as plain pages (or JSON for the page's API calls); a plain `def` handler runs in
        the thread pool, so the store and the composites' encoding never block the event loop (and
        with it every other rater)."""
        is_async = inspect.iscoroutinefunction(handler)

        async def run(request: Request):
            try:
                if is_async:
                    return await handler(request)
                return await run_in_threadpool(handler, request)
            except RaterFacingError as exc:
                if request.url.path.startswith("/api/"):
                    return JSONResponse({"error": str(exc)}, status_code=409, headers=NO_STORE)
                return notice(str(exc), 409)
            except Exception:
                log.exception("rater server: %s %s failed", request.method, request.url.path)
                if request.url.path.startswith("/api/"):
                    return JSONResponse({"error": PLAIN_ERROR}, status_code=500, headers=NO_STORE)
                return notice(PLAIN_ERROR, 500)

        return run

    def api(handler):
        """An API call of a session's page: the cookie's session (403 without one) and, for a POST,
        its JSON body (400 when it is not a JSON object) are passed on."""

        @guarded
        async def run(request: Request):
            sid = await run_in_threadpool(session_of, request)
            if not sid:
                return JSONResponse({"phase": "nosession", "error": "no session"}, status_code=403, headers=NO_STORE)
            body = {}
            if request.method == "POST":
                try:
                    body = await request.json()
                except ValueError:
                    body = None
                if not isinstance(body, dict):
                    return JSONResponse({"error": "the body must be a JSON object"}, status_code=400, headers=NO_STORE)
            return await run_in_threadpool(handler, request, sid, body)

        return run

    @guarded
    def health(request: Request):
        return PlainTextResponse("ok", headers=NO_STORE)

    @guarded
    def legacy_link(request: Request):  # the links of earlier versions: /?invite=TOKEN
        token = request.query_params.get("invite")
        if token:
            return RedirectResponse(f"/i/{quote(token)}", status_code=303, headers=NO_STORE)
        if session_of(request):
            return RedirectResponse("/rate", status_code=303, headers=NO_STORE)
        return notice("Open the invite link you were given to take part.", 404)

    @guarded
    def invite(request: Request):
        token = request.path_params["token"]
        settings = store.campaign_settings(token)
        if settings is None:
            return notice(INVALID_INVITE.capitalize() + ".", 410)
        if store.session_campaign(request.cookies.get(COOKIE)) == settings["campaign_id"]:
            return RedirectResponse("/rate", status_code=303, headers=NO_STORE)  # this browser's session of it
        if settings["problem"]:
            return notice(settings["problem"].capitalize() + ".", 410)
        ids = {key: request.query_params.get(name, "") for key, name in settings["id_params"].items()}
        if settings["id_params"] and not ids.get("participant"):
            return notice("This link is missing your participant id: open it from the recruiting platform.", 400)
        consent = settings["consent_text"] or (
            "You will see images or short clips of colour footage and answer a question about each. "
            "It takes a few minutes. Your answers are stored without your name."
        )
        paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in consent.split("\n\n") if p.strip())
        hidden = "".join(
            f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>" for k, v in ids.items()
        )
        body = (
            "<h1>Color Turing Test</h1><h2>Before you start</h2>"
            f"<div id='consent'>{paragraphs}</div>"
            f"<form method='post' action='/i/{quote(token)}'>{hidden}"
            "<p><label><input type='checkbox' name='agree' value='yes' required> "
            "I have read the above and agree to take part.</label></p>"
            "<p><button type='submit' id='start'>Start</button></p></form>"
        )
        return _page("Color Turing Test", body)

    @guarded
    async def start(request: Request):
        # a form of this page only: from this origin, urlencoded and small (no uploads to spool)
        site = request.headers.get("sec-fetch-site")
        origin = request.headers.get("origin")
        # (under Referrer-Policy no-referrer a browser sends "Origin: null" with its Sec-Fetch-Site)
        foreign = origin not in (None, "null") and urlsplit(origin).netloc != request.url.netloc
        if foreign or (site and site not in ("same-origin", "none")) or (origin == "null" and site != "same-origin"):
            return notice("Open the invite link you were given and start from its page.", 403)
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return notice("Open the invite link you were given and start from its page.", 415)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return notice("Open the invite link you were given and start from its page.", 413)
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        return await run_in_threadpool(_start, request, form)

    def _start(request: Request, form: dict):
        token = request.path_params["token"]
        if form.get("agree") != "yes":
            return notice("Taking part needs your consent: go back and tick the box.", 400)
        settings = store.campaign_settings(token)
        if settings is None:
            return notice(INVALID_INVITE.capitalize() + ".", 410)
        if store.session_campaign(request.cookies.get(COOKIE)) == settings["campaign_id"]:
            return RedirectResponse("/rate", status_code=303, headers=NO_STORE)
        if settings["id_params"] and not form.get("participant"):
            return notice("This link is missing your participant id: open it from the recruiting platform.", 400)
        secret = secrets.token_urlsafe(32)  # a session of another campaign in this browser is left as it is
        store.open_session(
            token,
            secret=secret,
            participant=form.get("participant") or None,
            external_study=form.get("study") or None,
            external_session=form.get("session") or None,
            consented=True,
        )
        response = RedirectResponse("/rate", status_code=303, headers=NO_STORE)
        https = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
        response.set_cookie(
            COOKIE, secret, httponly=True, samesite="strict", secure=https, path="/", max_age=7 * 24 * 3600
        )
        return response

    @guarded
    def rate(request: Request):
        if not session_of(request):
            return notice("Open the invite link you were given to take part (this browser has no session).", 403)
        return HTMLResponse(page_html, headers=NO_STORE)

    def _item_media(sid: str, state: dict, item: dict, position: int) -> dict:
        seed = state["seed"] or sid
        if "paths" in item:  # pairwise: two trials' colorizations
            first = real_on_left(seed, item["uid"])
            paths = list(item["paths"]) if first else list(item["paths"])[::-1]
        elif state["task"] == "rating":
            paths = [item["fake_path"]]
        else:
            left = real_on_left(seed, item["uid"])
            paths = [item["real_path"], item["fake_path"]] if left else [item["fake_path"], item["real_path"]]
        key = f"{item['uid']}|{'|'.join(paths)}"
        path = cache.get(key, paths, item["medium"])
        return {
            "position": position,
            "medium": item["medium"],
            "media": "/m/" + tokens.mint(sid, f"item:{position}", path, MEDIA_TYPES[item["medium"]]),
            "practice": bool(item["practice"]),
        }

    @api
    def state(request: Request, sid: str, body: dict):
        st = store.session_state(sid, start_clock=False)
        camp = st["campaign"]
        out: dict[str, Any] = {
            "task": st["task"],
            "display_s": st["display_s"],
            "position": st["position"],
            "practice": st["practice"],
            "counted": st["counted"],
        }
        if st["screened_out"] or st["done"]:
            tokens.drop(sid)
            code = camp["screened_code"] if st["screened_out"] else camp["completion_code"]
            url = camp["completion_url"]
            out.update(phase="screened" if st["screened_out"] else "done", code=code)
            # a screened-out rater goes there only with their own code in the URL: never with the
            # completion code a URL without {code} would carry
            if url and (not st["screened_out"] or ("{code}" in url and camp["screened_code"])):
                out["redirect"] = url.replace("{code}", quote(code or ""))
            return JSONResponse(out, headers=NO_STORE)
        if camp["screen"] and not st["screen_passed"]:
            seed = st["seed"] or sid
            out["phase"] = "screen"
            out["plates"] = [
                "/m/" + tokens.mint(sid, f"plate:{i}", ("plate", seed, i), "image/png") for i in range(plates.PLATES)
            ]
            return JSONResponse(out, headers=NO_STORE)
        out["phase"] = "item"
        out["item"] = _item_media(sid, st, st["item"], st["position"])
        nxt = store.peek_item(sid, st["position"] + 1)
        if nxt is not None:  # loaded while the rater answers this one
            out["next"] = _item_media(sid, st, nxt, st["position"] + 1)
        return JSONResponse(out, headers=NO_STORE)

    @api
    def shown(request: Request, sid: str, body: dict):
        position = body.get("position")
        if isinstance(position, int):
            store.mark_shown(sid, position)
        return JSONResponse({"ok": True}, headers=NO_STORE)

    @api
    def answer(request: Request, sid: str, body: dict):
        st = store.session_state(sid, start_clock=False)
        position, item = body.get("position"), st["item"]
        if item is None or not isinstance(position, int) or position != st["position"]:
            return JSONResponse({"stale": True}, headers=NO_STORE)
        seed, task = st["seed"] or sid, st["task"]
        ms = body.get("ms")
        ms = float(ms) if isinstance(ms, (int, float)) and 0 <= ms < 3.6e6 else None
        side = body.get("side")
        if task == "rating":
            rating = body.get("rating")
            if not isinstance(rating, int) or not 1 <= rating <= 5:
                return JSONResponse({"error": "a rating is 1 to 5"}, status_code=400, headers=NO_STORE)
            result = store.answer(sid, item["uid"], rating=rating, response_ms=ms)
        elif side not in ("left", "right"):
            return JSONResponse({"error": "side is left or right"}, status_code=400, headers=NO_STORE)
        elif task == "pairwise":
            first_left = real_on_left(seed, item["uid"])
            winner = "a" if (side == "left") == first_left else "b"
            result = store.answer(sid, item["uid"], winner=winner, choice=side, response_ms=ms)
        else:
            picked_real = (side == "left") == real_on_left(seed, item["uid"])
            result = store.answer(sid, item["uid"], picked_real=picked_real, choice=side, response_ms=ms)
        tokens.drop(sid, f"item:{position}")
        out = {"stale": bool(result.get("stale"))}
        if result.get("practice") and task == "2afc":
            out["feedback"] = (
                "Right: that one was the real footage."
                if result.get("correct")
                else ("Not this time: the other one was the real footage.")
            )
        elif result.get("practice"):
            out["feedback"] = "Thanks: practice answers are not counted."
        return JSONResponse(out, headers=NO_STORE)

    @api
    def screen(request: Request, sid: str, body: dict):
        st = store.session_state(sid, start_clock=False)
        if not st["campaign"]["screen"] or st["screen_passed"] or st["screened_out"]:
            return JSONResponse(
                {"error": "there is no colour-vision check to answer now"}, status_code=409, headers=NO_STORE
            )
        answers = body.get("answers")
        if not isinstance(answers, list):
            return JSONResponse({"error": "answers is a list"}, status_code=400, headers=NO_STORE)
        store.screen_result(sid, plates.check(st["seed"] or sid, answers[: plates.PLATES]))
        tokens.drop(sid)
        return JSONResponse({"ok": True}, headers=NO_STORE)

    @guarded
    def media(request: Request):
        found = tokens.take(request.path_params["token"], session_of(request))
        if found is None:
            return Response(b"", status_code=404, headers=NO_STORE)
        source, media_type = found
        if isinstance(source, tuple) and source[0] == "plate":
            blob = png_bytes(plates.plate(source[1], source[2]))
        else:
            blob = Path(source).read_bytes()
        return Response(blob, media_type=media_type, headers=NO_STORE)

    async def not_found(request: Request, exc):
        if request.url.path.startswith(("/api/", "/m/")):
            return Response(b"", status_code=404, headers=NO_STORE)
        return notice("There is nothing here. Open the invite link you were given.", 404)

    routes = [
        Route("/", legacy_link),
        Route("/health", health),
        Route("/i/{token}", invite, methods=["GET"]),
        Route("/i/{token}", start, methods=["POST"]),
        Route("/rate", rate),
        Route("/api/state", state),
        Route("/api/shown", shown, methods=["POST"]),
        Route("/api/answer", answer, methods=["POST"]),
        Route("/api/screen", screen, methods=["POST"]),
        Route("/m/{token}", media),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


def serve(store, host: str, port: int, cache_dir: str | Path) -> None:
    """Run the rater server until stopped (uvicorn; no Server header)."""
    import uvicorn

    uvicorn.run(
        create_app(store, cache_dir),
        host=host,
        port=port,
        log_level="warning",
        server_header=False,
        date_header=False,
        access_log=False,
    )
