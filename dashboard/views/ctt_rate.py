"""Color Turing Test for raters: real vs colorized side by side (or a 1-5 naturalness rating).

Items are mp4 clips or PNG stills (`vidcolor ctt build --medium frame`), shown the same way. The
"which is real" task draws only items whose original is in color; the rating task shows the
colorized side alone and draws every item (legacy black-and-white footage is rated only).

The displayed order is drawn per view on the server. The session keeps only the item's random uid
and the two shown files as "left"/"right" (randomly named copies, study/ctt/clips.py): no key or value
says which side is real or which trial made it; that is looked up in the store when the vote is
recorded. The page shows the sides as "A" and "B"; clips play muted and looped with no controls
(dashboard.rater_ui), and the pair and the answer buttons fit a 1366x768 screen.

The link fixes the task and the display time: ``task=rating`` (default 2afc) and ``limit=SECONDS``
(default the campaigns' `DEFAULT_DISPLAY_S`, 1 s as in Zhang et al. 2016; 0 = until answered).
With ``?mode=rater`` (a colleague's link: no researcher pages, no study picker; ``study=NAME``,
default the newest) the rater chooses neither; a researcher on /ctt without it can.
"""

from __future__ import annotations

import random
import secrets
import time

import streamlit as st

from dashboard import data, rater_ui
from study.store.campaigns import DEFAULT_DISPLAY_S

ss = st.session_state
_rng = random.SystemRandom()
LABELS = {1: "1 · clearly artificial", 2: "2", 3: "3", 4: "4", 5: "5 · fully natural"}

RATER_MODE = st.query_params.get("mode") == "rater"
rater_ui.compact_layout()
name = data.page_study("Color Turing Test")
store = data.store()


def _load_next() -> None:
    item = store.next_ctt_item(name, ss["ctt_rater"], mode=ss["ctt_task"], rng=_rng)
    if item is None:
        ss["ctt_uid"], ss["ctt_medium"], ss["ctt_shown"] = None, None, {}
    elif ss["ctt_task"] == "rating":
        ss["ctt_uid"], ss["ctt_medium"], ss["ctt_shown"] = item["uid"], item["medium"], {"single": item["fake_path"]}
    else:
        pair = [item["real_path"], item["fake_path"]]
        if secrets.randbelow(2):
            pair.reverse()
        shown = dict(zip(("left", "right"), pair))
        ss["ctt_uid"], ss["ctt_medium"], ss["ctt_shown"] = item["uid"], item["medium"], shown
    ss["ctt_shown_at"] = time.monotonic()


def _vote(side: str | None = None, rating: int | None = None) -> None:
    uid = ss.get("ctt_uid")
    if not uid:
        return
    response_ms = (time.monotonic() - ss["ctt_shown_at"]) * 1000
    if ss["ctt_task"] == "rating":
        ok = data.record_vote(ss["ctt_rater"], uid, rating=rating, response_ms=response_ms, mode="rating")
    else:
        item = store.get_ctt_item(uid) or {}
        ok = data.record_vote(
            ss["ctt_rater"],
            uid,
            choice=side,
            picked_real=(ss["ctt_shown"].get(side) == item.get("real_path")),
            response_ms=response_ms,
            mode="2afc",
        )
    ss["ctt_cast"] = ss.get("ctt_cast", 0) + int(ok)
    ss["ctt_flash"] = "Vote recorded." if ok else "You already voted on that pair; it was not counted twice."
    _load_next()


def _start(rater_name: str, task: str, limit: float) -> None:
    ss["ctt_rater"] = store.add_rater(rater_name or None)
    ss["ctt_rater_name"] = rater_name.strip() or f"anonymous {ss['ctt_rater'][:6]}"
    ss["ctt_task"], ss["ctt_limit"], ss["ctt_cast"] = task, float(limit), 0
    _load_next()


if "ctt_rater" not in ss:
    if data.ctt_item_count(data.db_url(), name) == 0:  # nothing to rate: no rater is made
        st.info(
            f"Study {name} has no Color Turing Test items yet, so there is nothing to rate here. "
            "Its researcher makes them with `vidcolor ctt build`."
        )
        st.stop()
    qp = st.query_params
    preset_task = qp.get("task") if qp.get("task") in ("2afc", "rating") else None
    try:
        preset_limit = float(qp.get("limit")) if qp.get("limit") else None
    except ValueError:
        preset_limit = None
    if RATER_MODE:  # the link fixes the protocol: a rater chooses neither the task nor the time
        preset_task = preset_task or "2afc"
        preset_limit = DEFAULT_DISPLAY_S if preset_limit is None else preset_limit
    about = {
        "2afc": "**Which is real?** You see two short clips (or pictures) side by side: one is the real footage, "
        "the other was colorized by a computer. Pick the one you think is real.",
        "rating": "**Rate naturalness:** you see one colorized clip (or picture) and rate how natural its colors "
        "look, from 1 (clearly artificial) to 5 (fully natural).",
    }
    shown_for = (
        ""
        if not preset_limit
        else f"  \nEach one is shown for {preset_limit:g} second{'s' if preset_limit != 1 else ''}; "
        "answer from memory after that."
    )
    st.markdown(("  \n".join(about.values()) if preset_task is None else about[preset_task]) + shown_for)
    with st.form("ctt_start"):
        rater_name = st.text_input("Your name (optional; leave empty to stay anonymous)", key="ctt_name")
        task = preset_task or st.radio(
            "Task",
            ("2afc", "rating"),
            horizontal=True,
            format_func=lambda t: "Which clip is real?" if t == "2afc" else "Rate naturalness 1-5",
        )
        limit = (
            preset_limit
            if preset_limit is not None
            else st.number_input(
                "Display time limit in seconds (0 = none)",
                min_value=0.0,
                max_value=60.0,
                value=DEFAULT_DISPLAY_S,
                step=0.5,
                help="how long each item is shown; the default is the campaigns' (Zhang et al. 2016 showed "
                "pairs for 1 s)",
            )
        )
        if st.form_submit_button("Start", type="primary"):
            _start(rater_name, task, limit)
            st.rerun()
    st.stop()

st.caption(f"Rater: {ss['ctt_rater_name']} · votes this session: {ss.get('ctt_cast', 0)}")
if ss.pop("ctt_flash", None) == "Vote recorded.":
    st.toast("Vote recorded.")
if not ss.get("ctt_uid"):
    cast = ss.get("ctt_cast", 0)
    st.success(
        "Thank you! You have judged every item of this study."
        if cast
        else "There is nothing left for you to judge in this study (you have rated its items before)."
    )
    st.stop()

task, limit, medium = ss["ctt_task"], ss["ctt_limit"], ss["ctt_medium"]
blobs = {side: data.file_bytes(path) for side, path in ss["ctt_shown"].items()}
if any(b is None for b in blobs.values()):
    st.error("A file of this item is missing on the server; skipping it.")
    st.button("Next pair", on_click=_load_next)
    st.stop()


def _show(container, blob: bytes) -> None:
    rater_ui.show(container, blob, medium)


_left = limit - (time.monotonic() - ss["ctt_shown_at"])


# with a display limit the clips rerun once it is up (not every moment: a rerun sends them again)
@st.fragment(run_every=max(0.1, _left + 0.05) if limit > 0 and _left > 0 else None)
def clips() -> None:
    left = limit - (time.monotonic() - ss["ctt_shown_at"])
    if limit > 0 and left <= 0:
        st.info("Time is up: answer from memory.")
        return
    if task == "rating":
        _, mid, _ = st.columns([1, 2, 1])
        _show(mid, blobs["single"])
    else:
        cols = st.columns(2)
        for col, (side, label) in zip(cols, (("left", "A"), ("right", "B"))):
            col.markdown(f"#### {label}")
            _show(col, blobs[side])


clips()
if task == "rating":
    st.markdown(f"**How natural do the colors of this {'picture' if medium == 'frame' else 'clip'} look?**")
    cols = st.columns(5)
    for col, r in zip(cols, range(1, 6)):
        col.button(LABELS[r], key=f"rate_{r}", on_click=_vote, kwargs={"rating": r}, width="stretch")
else:
    st.markdown(f"**Which {'picture' if medium == 'frame' else 'clip'} is the real one?**")
    a, b = st.columns(2)
    a.button("A is real", key="pick_a", on_click=_vote, kwargs={"side": "left"}, width="stretch", type="primary")
    b.button("B is real", key="pick_b", on_click=_vote, kwargs={"side": "right"}, width="stretch", type="primary")
