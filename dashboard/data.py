"""The dashboard's access to the results store: one cached Store per URL, short-lived table caches.

Pages read only through here (and study.ctt.stats). Tables are cached for a few seconds so live
studies refresh without hammering the database; CTT votes are never cached (counts must be fresh).
The store is opened read-only (`create=False`): the dashboard never creates a database.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import streamlit as st

from study.store import Store

REFRESH_S = 5


def db_url() -> str | None:
    return os.environ.get("VIDCOLOR_DB") or None


@st.cache_resource(show_spinner=False)
def _store(url: str | None) -> Store:
    return Store(url, create=False)


def store() -> Store:
    return _store(db_url())


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def studies(url: str | None) -> pd.DataFrame:
    return _store(url).studies()


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def study_info(url: str | None, name: str) -> dict | None:
    return _store(url).get_study(name)


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def trials(url: str | None, study: str) -> pd.DataFrame:
    df = _store(url).trials(study)
    df["config"] = df["config"].map(lambda c: c if isinstance(c, dict) else {})
    # the training loop reports its running best (`best_<objective>`) among its metrics; the store's
    # best_/last_ prefixes make that best_best_<m> and last_best_<m>: copies of best_<m> and of the
    # objective, under a name with the prefix twice. One column each, under its own name.
    return df.drop(columns=[c for c in df.columns if c.startswith(("best_best_", "last_best_"))])


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def epochs(url: str | None, study: str, trial_ids: tuple[str, ...] | None = None) -> pd.DataFrame:
    return _store(url).epochs(study, trial_ids)


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def media(url: str | None, study: str, trial_id: str | None = None, epochs: bool = False) -> pd.DataFrame:
    """A trial's (or the study's) final media, or with `epochs` the frames rendered while it trained."""
    return _store(url).media(study, trial_id, epochs=epochs)


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def ctt_item_count(url: str | None, study: str) -> int:
    """How many CTT items the study has (0: nothing to rate)."""
    return len(_store(url).ctt_items(study))


def record_vote(rater_id: str, item_uid: str, **kwargs) -> bool:
    """Store a vote (Store.record_vote; on SQLite the server's writers queue on the store's own lock)."""
    return store().record_vote(rater_id, item_uid, **kwargs)


def votes(study: str) -> pd.DataFrame:
    return store().votes(study)


@st.cache_data(max_entries=64, show_spinner=False)
def video_frames(path: str, mtime: float) -> list[np.ndarray]:
    """Decoded RGB frames of a (small) sample mp4; `mtime` keys the cache on the file's version."""
    import av

    with av.open(path) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]


def frames_of(path: str) -> list[np.ndarray]:
    p = Path(path)
    if not p.is_file():
        return []
    return video_frames(str(p), p.stat().st_mtime)


def file_bytes(path: str) -> bytes | None:
    p = Path(path)
    return p.read_bytes() if p.is_file() else None


def selected_study() -> str | None:
    return st.session_state.get("study")


class StudyPage(NamedTuple):
    url: str | None
    name: str
    info: dict
    trials: pd.DataFrame


def page_study(title: str) -> str:
    """Title a page and return the selected study's name; stops the page when none is selected."""
    st.title(title)
    name = selected_study()
    if not name:
        st.info("No study selected.")
        st.stop()
    return name


#: session-state key of the sidebar's "hide pruned / failed trials" toggle (app.py)
HIDE_KEY = "hide_pruned"
#: the statuses it hides: stopped early by the scheduler (pruned) and failed
HIDDEN_STATUSES = ("STOPPED", "ERROR")


def hiding() -> bool:
    return bool(st.session_state.get(HIDE_KEY, False))


def shown(df: pd.DataFrame) -> pd.DataFrame:
    """The trials the pages show: without the pruned and failed ones while the toggle is on."""
    return df[~df["status"].isin(HIDDEN_STATUSES)] if hiding() and "status" in df else df


def page_trials(title: str) -> StudyPage:
    """`page_study` plus the study's info and trials table (less the pruned / failed trials while the
    sidebar toggle hides them); stops the page when it has no trials."""
    name = page_study(title)
    url = db_url()
    df = trials(url, name)
    if df.empty:
        st.info(f"Study {name} has no trials yet.")
        st.stop()
    df = shown(df)
    if df.empty:
        st.info(f"Every trial of study {name} was pruned or failed (turn off the sidebar's filter to see them).")
        st.stop()
    return StudyPage(url, name, study_info(url, name) or {}, df)


#: session-state key of the trials chosen on one page (the trials table's rows, points selected in a
#: chart) for the others: the Trial, Learning curves and Compare pages start from them
CHOSEN_KEY = "chosen_trials"
#: the compare page's widget of its own choice, and how many trials it shows at most
COMPARE_KEY, COMPARE_MAX = "compare_trials", 4


def choose_trials(ids: list[str]) -> None:
    """Make `ids` the chosen trials (and the first of them the Trial page's)."""
    if ids:
        st.session_state[CHOSEN_KEY] = list(ids)
        st.session_state["trial"] = ids[0]


def compare_selected(url: str | None, name: str, ids: list[str]) -> None:
    """Under a table or chart where trials `ids` were selected: make them the chosen trials, say which
    of them the compare page can show (those with rendered sample media, the first COMPARE_MAX) and
    link to it ("Compare selected"), where they are the trials compared."""
    choose_trials(ids)
    with_media = set(media(url, name)["trial_id"])
    usable = [t for t in ids if t in with_media]
    to_compare = usable[:COMPARE_MAX]
    notes = []
    if len(usable) < len(ids):
        notes.append(f"no rendered media: {', '.join(t for t in ids if t not in with_media)}")
    if len(usable) > COMPARE_MAX:
        notes.append(f"the compare page shows {COMPARE_MAX} at a time: {', '.join(to_compare)}")
    if len(to_compare) < 2:
        notes.append("comparing needs at least two trials with rendered media")
    st.caption(
        f"Selected ({len(ids)}): {', '.join(ids)}, chosen for the Trial, Learning curves and Compare pages"
        + (f" ({'; '.join(notes)})" if notes else "")
    )
    st.session_state.pop(COMPARE_KEY, None)  # the compare page starts from the new choice
    # a link, not a button with st.switch_page: a switch from the script reruns without the browser's
    # widget values, and the compare page opened on the sidebar's default study, not the chosen one
    st.page_link(
        "views/compare.py",
        label=f"Compare selected ({len(to_compare)})",
        icon=":material/compare:",
        disabled=len(to_compare) < 2,
    )


def objective_column(df: pd.DataFrame, info: dict | None) -> str:
    """The column that holds a trial's objective: `best_<objective metric>` when the table has it
    (the `objective` column is a copy of it), else `objective`."""
    col = f"best_{(info or {}).get('objective')}"
    return col if col in df.columns else "objective"


def params_of(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith("param_")]


def metrics_of(df: pd.DataFrame, prefix: str = "best_") -> list[str]:
    """Metric columns (`best_<metric>` or `last_<metric>`; not the trial's best_epoch)."""
    return [c for c in df.columns if c.startswith(prefix) and c != "best_epoch"]


#: What a trial is judged on first: RMSE over the gray input's, the flicker the color adds to the
#: input's own (warp error, CDC), and the colorfulness gap |pred / truth - 1| (never "more is better").
HEADLINE_METRICS = ("val_rmse_ratio", "val_added_warp", "val_added_cdc", "val_colorfulness_gap", "val_rmse_rgb")


def headline_first(names: list[str]) -> list[str]:
    """Metric names (bare or with a `best_`/`last_` prefix) with the HEADLINE_METRICS first, in
    that order, then the others in their order."""

    def rank(name: str) -> int:
        bare = name.removeprefix("best_").removeprefix("last_")
        return HEADLINE_METRICS.index(bare) if bare in HEADLINE_METRICS else len(HEADLINE_METRICS)

    return sorted(names, key=rank)  # stable: the others keep their order


def search_ranges(info: dict | None) -> tuple[dict[str, tuple[float, float]], set[str], set[str]]:
    """From the study spec: searched [low, high] per `param_<name>`, the log-scaled ones, and the
    choice ones. The spec's `search` is a list of {name, type, low, high, log, choices} (as the
    tune driver records it) or a {name: {...}} table (as in the TOML file)."""
    search = ((info or {}).get("spec") or {}).get("search") or []
    entries = (
        search.items() if isinstance(search, dict) else [(e.get("name"), e) for e in search if isinstance(e, dict)]
    )
    ranges, logs, choices = {}, set(), set()
    for name, space in entries:
        if not name or not isinstance(space, dict):
            continue
        if space.get("type") == "choice" or space.get("choices") or space.get("values"):
            choices.add(f"param_{name}")
        elif space.get("low") is not None and space.get("high") is not None:
            try:
                ranges[f"param_{name}"] = (float(space["low"]), float(space["high"]))
            except (TypeError, ValueError):
                continue
            if space.get("log"):
                logs.add(f"param_{name}")
    return ranges, logs, choices


def trial_colours(trials: pd.DataFrame) -> dict[str, str]:
    """One colour per trial of the study, by start order, the same on every page and whatever
    trials are chosen (plotly's D3 palette, then Dark24 for the 11th trial on, then around again)."""
    import plotly.express as px

    palette = px.colors.qualitative.D3 + px.colors.qualitative.Dark24
    order = trials.sort_values("started", na_position="last") if "started" in trials else trials
    return {str(t): palette[i % len(palette)] for i, t in enumerate(order["trial_id"])}
