"""How the dashboard's rating page (dashboard/views/ctt_rate.py, also its ``?mode=rater`` link)
shows media. (Strangers rate on the rater server, study.ctt.rater_app, which has its own page.)

A clip plays as a plain video: autoplay, muted, looped, with no ``controls`` attribute (no seek
bar, no menu with Download or picture in picture) and no pointer events (no context menu with
"Save video as"), so a rater sees the clip and nothing to act on. Its bytes ride in the page as a
``data:`` URI: no file name or URL of the store. Clips and stills are drawn at most
`MEDIA_HEIGHT` tall and the page's top spacing is tightened (`compact_layout`), so that the
title, the pair and the answer buttons fit a 1366x768 laptop screen without scrolling.
"""

from __future__ import annotations

import base64

import streamlit as st

#: how tall a clip or still is drawn (letterboxed to its aspect): with the title, the progress line,
#: the A / B labels, the question and the answer buttons, a pair fits 768 px of screen height
MEDIA_HEIGHT = "48vh"

_CSS = f"""<style>
.stMainBlockContainer {{ padding-top: 3.5rem; padding-bottom: 1rem; }}
.stMainBlockContainer h1 {{ font-size: 1.75rem; padding: 0 0 0.25rem 0; }}
.stMainBlockContainer h4 {{ padding: 0.25rem 0 0 0; }}
[data-testid="stImage"] img {{ width: 100%; height: {MEDIA_HEIGHT}; object-fit: contain; }}
</style>"""


def compact_layout() -> None:
    """Tighter top spacing and a smaller title on a rating page, and stills drawn `MEDIA_HEIGHT` tall."""
    st.html(_CSS)


def video_html(blob: bytes) -> str:
    """A ``<video>`` of the mp4 ``blob`` that plays by itself, muted and looped, with no controls."""
    src = "data:video/mp4;base64," + base64.b64encode(blob).decode("ascii")
    return (
        f'<video src="{src}" autoplay muted loop playsinline disablepictureinpicture disableremoteplayback '
        'controlslist="nodownload nofullscreen noremoteplayback noplaybackrate" '
        f'style="display:block;width:100%;height:{MEDIA_HEIGHT};object-fit:contain;pointer-events:none"></video>'
    )


def show(container, blob: bytes, medium: str) -> None:
    """A still (``medium == "frame"``) or a clip of an item in ``container``."""
    if medium == "frame":
        container.image(blob, width="stretch")
    else:
        container.html(video_html(blob))
