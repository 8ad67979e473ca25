"""The vidcolor dashboard (Streamlit): compare a study's trials and run the Color Turing Test.

Start it with `vidcolor dashboard [--db URL]` (study/serve.py), which passes the database URL in
$VIDCOLOR_DB. Multipage through `st.navigation`; the pages live in dashboard/views/ and read the
results store through dashboard/data.py. Start-up imports neither torch nor Ray.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# `streamlit run dashboard/app.py` puts dashboard/ on sys.path, not the project root.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from dashboard import data  # noqa: E402
from models.errors import VidcolorError  # noqa: E402

VIEWS = Path(__file__).resolve().parent / "views"

st.set_page_config(page_title="vidcolor", page_icon=":material/palette:", layout="wide")

PAGES = {
    "Study": [
        st.Page(VIEWS / "overview.py", title="Overview", icon=":material/dashboard:", url_path="overview"),
        st.Page(VIEWS / "trials.py", title="Trials", icon=":material/table_rows:", url_path="trials"),
        st.Page(VIEWS / "explore.py", title="Hyperparameters", icon=":material/tune:", url_path="hyperparameters"),
        st.Page(VIEWS / "curves.py", title="Learning curves", icon=":material/show_chart:", url_path="curves"),
        st.Page(VIEWS / "trial.py", title="Trial", icon=":material/search:", url_path="trial"),
        st.Page(VIEWS / "compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
    ],
    "Color Turing Test": [
        st.Page(VIEWS / "ctt_rate.py", title="Rate clips", icon=":material/visibility:", url_path="ctt"),
        st.Page(VIEWS / "ctt_results.py", title="CTT results", icon=":material/leaderboard:", url_path="ctt-results"),
    ],
}

# Raters get a link with ?mode=rater: only the rating page, no sidebar or study picker, no way to
# the trials' media; the link fixes the study (study=NAME), the task and the display time (ctt_rate).
RATER_MODE = st.query_params.get("mode") == "rater"
if RATER_MODE:
    # the rating page as the default ("/?mode=rater") and under its own path ("/ctt?mode=rater")
    page = st.navigation(
        [st.Page(VIEWS / "ctt_rate.py", title="Color Turing Test", default=True), PAGES["Color Turing Test"][0]],
        position="hidden",
    )
else:
    # Streamlit serves a default page at "/" only, whatever its url_path: "/" is a hidden page that
    # opens /overview (query string kept), so the Overview entry and the /overview URL are one page.
    def _to_overview() -> None:
        st.switch_page(PAGES["Study"][0], query_params=st.query_params.to_dict())

    home = st.Page(_to_overview, title="Overview", url_path="home", default=True, visibility="hidden")
    page = st.navigation({**PAGES, "Study": [home, *PAGES["Study"]]})

try:
    studies = data.studies(data.db_url())
except VidcolorError as exc:  # no database there, or a damaged one: say which, no traceback
    st.error(str(exc))
    st.stop()
names = list(studies["name"])[::-1]  # newest first
wanted = st.query_params.get("study")
if RATER_MODE:
    # a rating link: no sidebar, no study picker; the study is the link's (study=NAME) or the newest
    st.session_state["study"] = wanted if wanted in names else (names[0] if names else None)
else:
    with st.sidebar:
        if not names:
            st.session_state["study"] = None
            st.caption(f"No study in {data.store().display_url}")
        else:
            if wanted in names and "study_select" not in st.session_state:
                st.session_state["study_select"] = wanted
            st.selectbox("Study", names, key="study_select")
            st.session_state["study"] = st.session_state["study_select"]
            # one filter for every study page (data.page_trials applies it), kept across pages
            st.toggle(
                "Hide pruned / failed trials",
                key=data.HIDE_KEY,
                help="leave out the trials ASHA stopped (STOPPED) and the failed ones (ERROR) "
                "from the tables and plots",
            )
            st.caption(f"Database: {data.store().display_url}")

try:
    page.run()
except VidcolorError as exc:  # e.g. a damaged row (malformed JSON): the store names it; no traceback
    st.error(str(exc))
