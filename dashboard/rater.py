"""The rater server's one page (`vidcolor ctt serve`): a campaign's rating flow and nothing else.

No study picker, no researcher page, no trial id, no study name: a rater arrives through an
invite link (``?invite=TOKEN``), gets a session of the campaign's protocol (study.store.campaigns),
does the practice items with feedback (each answer's on a screen of its own, gone when the next
item shows), then the counted ones, each shown for the campaign's display time, and sees the end.
Clips play muted and looped with no controls (dashboard.rater_ui), and the pair and the answer
buttons fit a 1366x768 screen. Any other path of this server shows the same page. The session id
rides in the URL (``?session=...``), so a reload continues where it was. Sides are shown as "A"
and "B" in an order drawn per item; the files are the campaign's items, written alike
(study.ctt.clips), and sent in the page as data: URIs (no file name or URL). A rater never sees a
traceback: messages written for raters (`RaterFacingError`) are shown as they are, anything else as
one plain notice, logged with its traceback for the researcher.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time
from pathlib import Path

import streamlit as st

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from dashboard import data, rater_ui  # noqa: E402
from study.store.rater_sessions import RaterFacingError  # noqa: E402

st.set_page_config(
    page_title="Color Turing Test", page_icon=":material/visibility:", layout="wide", initial_sidebar_state="collapsed"
)
rater_ui.compact_layout()
ss = st.session_state
log = logging.getLogger("vidcolor.rater")
LABELS = {1: "1 · clearly artificial", 2: "2", 3: "3", 4: "4", 5: "5 · fully natural"}
#: What a rater sees when anything else goes wrong (a damaged row, the database gone): never a
#: traceback, a path or an internal message; the event goes to the server's log for the researcher.
PLAIN_ERROR = (
    "Something went wrong on our side. Your answers so far are saved. Please reload this page in a "
    "minute; if it happens again, tell the person running the test."
)
TIMINGS = os.environ.get("VIDCOLOR_RATER_TIMINGS")  # a file to append each answer's store time (ms) to


def _failed(where: str) -> None:
    """Log what went wrong for the researcher; the rater gets `PLAIN_ERROR` on the next run."""
    log.exception("rater page: %s failed (session %s)", where, ss.get("sid"))
    ss["server_error"] = True


def _start(token: str, name: str) -> None:
    try:
        ss["sid"] = data.store().open_session(token, name or None)
    except RaterFacingError as exc:
        ss["start_error"] = str(exc)
        return
    except Exception:  # a rater never sees a traceback
        _failed("starting a session")
        return
    st.query_params.clear()
    st.query_params["session"] = ss["sid"]


def _answer(uid: str, *, side: str | None = None, rating: int | None = None) -> None:
    try:
        _record(uid, side, rating)
    except RaterFacingError as exc:  # e.g. the session is gone: its message is written for raters
        ss["rater_message"] = str(exc)
    except Exception:  # a rater never sees a traceback
        _failed("storing an answer")


def _record(uid: str, side: str | None, rating: int | None) -> None:
    store = data.store()
    shown = ss.get("shown", {})
    if shown.get("uid") != uid:
        return
    real = shown.get("real_side")
    ms = (time.monotonic() - shown["at"]) * 1000
    t0 = time.perf_counter()
    if shown["task"] == "pairwise":  # the sides show the pair's items a, b in a drawn order
        out = store.answer(ss["sid"], uid, winner=shown["order"][side], response_ms=ms)
    else:
        out = store.answer(
            ss["sid"],
            uid,
            choice=side,
            picked_real=None if side is None else side == real,
            rating=rating,
            response_ms=ms,
        )
    if TIMINGS:  # bench/rater_load.py: the store's time per answer, as the server saw it
        with open(TIMINGS, "a") as fh:
            fh.write(f"{(time.perf_counter() - t0) * 1000:.3f}\n")
    if out.get("practice"):
        label = {"left": "A", "right": "B"}.get(real, "")
        ss["feedback"] = (
            ("Correct" if out["correct"] else "Not this time") + f": {label} was the real one."
            if out.get("correct") is not None
            else "Thank you: practice answers are not counted."
        )


def _next() -> None:
    ss.pop("feedback", None)


def _page() -> None:
    """The page for the session in this browser (or the invite's start form)."""
    store = data.store()
    if "sid" not in ss and st.query_params.get("session"):
        ss["sid"] = st.query_params.get("session")

    if "sid" not in ss:
        token = st.query_params.get("invite")
        if not token:
            st.info("This page is reached through an invite link. Ask the person running the test for one.")
            st.stop()
        st.markdown(
            "You will see short clips (or pictures). In each pair one is real footage and the other was "
            "colorized by a computer: pick the one you think is real. Or, in a rating session, rate how "
            "natural the colors of one clip look, from 1 to 5, or pick which of two colorizations looks more "
            "natural. The first few are practice: you are told "
            "the answer. Each one is shown only briefly; answer from memory after that."
        )
        with st.form("start"):
            name = st.text_input("Your name (optional, shown to nobody but you)")
            if st.form_submit_button("Start", type="primary"):
                _start(token, name)
                if "sid" in ss:
                    st.rerun()
        if ss.get("start_error"):
            st.error(ss.pop("start_error"))
        st.stop()

    if ss.get("feedback"):
        # a practice answer's feedback on a screen of its own: the next item (and its display clock,
        # which session_state starts) waits for "Next", and shows without the feedback above it
        st.info(ss["feedback"])
        st.button("Next", type="primary", on_click=_next)
        st.stop()
    try:
        state = store.session_state(ss["sid"])
    except RaterFacingError as exc:
        st.error(str(exc))
        st.stop()
    if state["done"]:
        st.success("That was the last one. Thank you for taking part!")
        st.stop()

    item, task, limit = state["item"], state["task"], float(state["display_s"])
    pos, practice = state["position"], state["practice"]
    where = (
        f"Practice {pos + 1} of {practice}"
        if item["practice"]
        else f"{'Clip' if task == 'rating' else 'Pair'} {pos - practice + 1} of {state['counted']}"
    )
    st.caption(where)
    if ss.get("shown", {}).get("uid") != item["uid"]:  # a new item: draw its sides' order, start its clock
        flip = secrets.randbelow(2) == 1
        # the clock of the server's session: a reload does not give an item a second display time
        shown = {"uid": item["uid"], "at": time.monotonic() - state["shown_s"], "task": task}
        if task == "pairwise":
            a, b = item["paths"]
            shown["order"] = {"left": "b", "right": "a"} if flip else {"left": "a", "right": "b"}
            shown["sides"] = {"left": b, "right": a} if flip else {"left": a, "right": b}
        elif task == "2afc":
            shown["real_side"] = "right" if flip else "left"
            shown["sides"] = (
                {"left": item["fake_path"], "right": item["real_path"]}
                if flip
                else {"left": item["real_path"], "right": item["fake_path"]}
            )
        else:
            shown["sides"] = {"single": item["fake_path"]}
        ss["shown"] = shown
    shown = ss["shown"]
    blobs = {k: data.file_bytes(p) for k, p in shown["sides"].items()}
    if any(b is None for b in blobs.values()):
        st.error("A file of this item is missing on the server. Please tell the person running the test.")
        st.stop()

    def _show(container, blob: bytes) -> None:
        rater_ui.show(container, blob, item["medium"])

    left = limit - (time.monotonic() - shown["at"])

    # with a display limit the media rerun once it is up (not every moment: a rerun sends them again)
    @st.fragment(run_every=max(0.1, left + 0.05) if limit > 0 and left > 0 else None)
    def media() -> None:
        if limit > 0 and limit - (time.monotonic() - shown["at"]) <= 0:
            st.markdown("##### Time is up: answer from memory.")
            return
        if task == "rating":
            _, mid, _ = st.columns([1, 2, 1])
            _show(mid, blobs["single"])
        else:
            for col, (side, label) in zip(st.columns(2), (("left", "A"), ("right", "B"))):
                col.markdown(f"#### {label}")
                _show(col, blobs[side])

    media()
    uid = item["uid"]
    if task == "rating":
        st.markdown("**How natural do the colors look?**")
        for col, r in zip(st.columns(5), range(1, 6)):
            col.button(LABELS[r], key=f"rate_{r}", on_click=_answer, args=(uid,), kwargs={"rating": r}, width="stretch")
    else:
        pairwise = task == "pairwise"
        st.markdown("**Which one looks more natural?**" if pairwise else "**Which one is real?**")
        verb = "looks more natural" if pairwise else "is real"
        for col, (label, side) in zip(st.columns(2), (("A", "left"), ("B", "right"))):
            col.button(
                f"{label} {verb}",
                key=f"pick_{label.lower()}",
                on_click=_answer,
                args=(uid,),
                kwargs={"side": side},
                width="stretch",
                type="primary",
            )


st.title("Color Turing Test")
if ss.pop("server_error", False):
    st.error(PLAIN_ERROR)
    st.stop()
if message := ss.pop("rater_message", None):
    st.error(message)
try:
    _page()
except Exception:  # a damaged row or a lost database: a plain page, the event logged
    log.exception("rater page failed (session %s)", ss.get("sid"))
    st.error(PLAIN_ERROR)
