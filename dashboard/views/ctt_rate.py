"""Color Turing Test for raters: real vs colorized side by side (or a 1-5 naturalness rating).

The side of the real clip is drawn per view on the server and is stored with the vote (as the
chosen side and whether it was the real one); the page shows the two clips as "A" and "B" and
serves their bytes, whose names and URLs are content hashes of randomly named, individually
remuxed copies (study/ctt.py), so nothing reveals the real side or the trial. Operators can
preset the task with query parameters: ?mode=rater (hides the researcher pages), task=rating,
limit=SECONDS (display time limit).
"""

from __future__ import annotations

import random
import secrets
import time

import streamlit as st

from dashboard import data

ss = st.session_state
_rng = random.SystemRandom()
LABELS = {1: "1 · clearly artificial", 2: "2", 3: "3", 4: "4", 5: "5 · fully natural"}

st.title("Color Turing Test")
name = data.selected_study()
if not name:
    st.info("No study selected.")
    st.stop()
store = data.store()


def _load_next() -> None:
    ss["ctt_item"] = store.next_ctt_item(name, ss["ctt_rater"], rng=_rng)
    ss["ctt_real_side"] = secrets.choice(("left", "right"))
    ss["ctt_shown_at"] = time.monotonic()


def _vote(side: str | None = None, rating: int | None = None) -> None:
    item = ss.get("ctt_item")
    if not item:
        return
    response_ms = (time.monotonic() - ss["ctt_shown_at"]) * 1000
    if ss["ctt_task"] == "rating":
        ok = data.record_vote(ss["ctt_rater"], item["uid"], rating=rating, response_ms=response_ms, mode="rating")
    else:
        ok = data.record_vote(ss["ctt_rater"], item["uid"], choice=side, picked_real=(side == ss["ctt_real_side"]),
                               response_ms=response_ms, mode="2afc")
    ss["ctt_cast"] = ss.get("ctt_cast", 0) + int(ok)
    ss["ctt_flash"] = "Vote recorded." if ok else "You already voted on that pair; it was not counted twice."
    _load_next()


def _start(rater_name: str, task: str, limit: float) -> None:
    ss["ctt_rater"] = store.add_rater(rater_name or None)
    ss["ctt_rater_name"] = rater_name.strip() or f"anonymous {ss['ctt_rater'][:6]}"
    ss["ctt_task"], ss["ctt_limit"], ss["ctt_cast"] = task, float(limit), 0
    _load_next()


if "ctt_rater" not in ss:
    qp = st.query_params
    preset_task = qp.get("task") if qp.get("task") in ("2afc", "rating") else None
    try:
        preset_limit = float(qp.get("limit")) if qp.get("limit") else None
    except ValueError:
        preset_limit = None
    st.markdown("You will see pairs of short clips. **One is the real footage, the other was colorized by a "
                "computer.** Pick the one you think is real. Some pairs are easy checks.")
    with st.form("ctt_start"):
        rater_name = st.text_input("Your name (optional; leave empty to stay anonymous)", key="ctt_name")
        task = preset_task or st.radio(
            "Task", ("2afc", "rating"), horizontal=True,
            format_func=lambda t: "Which clip is real?" if t == "2afc" else "Rate naturalness 1-5")
        limit = preset_limit if preset_limit is not None else st.number_input(
            "Display time limit in seconds (0 = none)", min_value=0.0, max_value=60.0, value=0.0, step=0.5)
        if st.form_submit_button("Start", type="primary"):
            _start(rater_name, task, limit)
            st.rerun()
    st.stop()

st.caption(f"Rater: {ss['ctt_rater_name']} · votes this session: {ss.get('ctt_cast', 0)}")
if ss.pop("ctt_flash", None) == "Vote recorded.":
    st.toast("Vote recorded.")
item = ss.get("ctt_item")
if item is None:
    st.success("Thank you! You have judged every item of this study.")
    st.stop()

task, limit = ss["ctt_task"], ss["ctt_limit"]
if task == "rating":
    shown = {"single": item["fake_path"]}
else:
    real_left = ss["ctt_real_side"] == "left"
    shown = {"left": item["real_path"] if real_left else item["fake_path"],
             "right": item["fake_path"] if real_left else item["real_path"]}
blobs = {side: data.file_bytes(path) for side, path in shown.items()}
if any(b is None for b in blobs.values()):
    st.error("A clip of this item is missing on the server; skipping it.")
    st.button("Next pair", on_click=_load_next)
    st.stop()


@st.fragment(run_every=0.5 if limit > 0 else None)
def clips() -> None:
    left = limit - (time.monotonic() - ss["ctt_shown_at"])
    if limit > 0 and left <= 0:
        st.info("Time is up: answer from memory.")
        return
    if task == "rating":
        _, mid, _ = st.columns([1, 2, 1])
        mid.video(blobs["single"], format="video/mp4", autoplay=True, loop=True, muted=True)
    else:
        cols = st.columns(2)
        for col, (side, label) in zip(cols, (("left", "A"), ("right", "B"))):
            col.markdown(f"#### {label}")
            col.video(blobs[side], format="video/mp4", autoplay=True, loop=True, muted=True)
    if limit > 0:
        st.caption(f"{max(0.0, left):.0f} s left")


clips()
if task == "rating":
    st.markdown("**How natural do the colors of this clip look?**")
    cols = st.columns(5)
    for col, r in zip(cols, range(1, 6)):
        col.button(LABELS[r], key=f"rate_{r}", on_click=_vote, kwargs={"rating": r}, width="stretch")
else:
    st.markdown("**Which clip is the real one?**")
    a, b = st.columns(2)
    a.button("A is real", key="pick_a", on_click=_vote, kwargs={"side": "left"}, width="stretch", type="primary")
    b.button("B is real", key="pick_b", on_click=_vote, kwargs={"side": "right"}, width="stretch", type="primary")
