"""The results store's Color Turing Test: raters, CTT items, the next item to show, and votes.

An item pairs a real clip (or frame) with a colorized one; its uid is random so the page reveals
neither the side nor the trial. Votes are 2afc ("which is real": the displayed side picked and
whether it was the real one) or 1-5 naturalness ratings; items whose original is black and white
take ratings only. Each rater votes at most once per item, enforced by a unique constraint, so
concurrent duplicate votes are refused rather than double-counted.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from models.errors import VidcolorError
from study.store.engine import StoreEngine
from study.store.schema import CTT_MEDIA, SIDES, VOTE_MODES, CttItemRow, CttVoteRow, RaterRow, TrialRow

log = logging.getLogger(__name__)

CTT_ITEMS_COLUMNS = [
    "uid",
    "trial_id",
    "experiment",
    "medium",
    "is_attention",
    "video_id",
    "clip",
    "real_path",
    "fake_path",
    "created",
    "votes",
    "frame",
    "split",
    "source",
    "real_is_color",
]
VOTES_COLUMNS = [
    "rater_id",
    "rater",
    "uid",
    "trial_id",
    "experiment",
    "medium",
    "is_attention",
    "video_id",
    "clip",
    "choice",
    "picked_real",
    "response_ms",
    "rating",
    "mode",
    "created",
]


class CttMixin(StoreEngine):
    """Raters, CTT items and votes: `add_rater`, `raters`, `add_ctt_items`, `ctt_items`,
    `get_ctt_item`, `next_ctt_item`, `record_vote`, `votes`."""

    def add_rater(self, name: str | None = None) -> str:
        """The rater id for `name` (created on first use), or a new anonymous rater without a name."""
        name = (name or "").strip() or None
        for _ in range(3):
            try:
                with self._write() as s:
                    if name is not None:
                        existing = s.scalar(select(RaterRow.id).where(RaterRow.name == name))
                        if existing is not None:
                            return existing
                    rater_id = secrets.token_hex(8)
                    s.add(RaterRow(id=rater_id, name=name))
                return rater_id
            except IntegrityError:  # the same name registered at the same moment: read it back
                continue
        raise VidcolorError(f"could not register rater {name!r}")

    def raters(self) -> pd.DataFrame:
        """One row per rater: rater_id, name (None for anonymous raters), created."""
        with self._read() as s:
            rows = s.execute(select(RaterRow.id, RaterRow.name, RaterRow.created).order_by(RaterRow.created)).all()
        return pd.DataFrame([tuple(r) for r in rows], columns=["rater_id", "name", "created"])

    def add_ctt_items(self, study: str, items: Iterable[Mapping[str, Any]]) -> list[str]:
        """Add CTT items; each a mapping with real_path, fake_path and optionally trial_id (None for
        attention checks), medium ('clip'|'frame'), is_attention, video_id, clip, frame, split,
        source, real_is_color (default True; False for a black-and-white original, whose item only
        the rating mode shows), uid. Returns the item uids (random hex unless given), in order.
        All or nothing."""
        uids = []
        with self._write() as s:
            st = self._study(s, study)
            for i, item in enumerate(items):
                _check_item(i, item)
                trial_pk = None if item.get("trial_id") is None else self._trial(s, study, item["trial_id"]).id
                row = _item_row(item, study_id=st.id, trial_pk=trial_pk)
                s.add(row)
                uids.append(row.uid)
        return uids

    def ctt_items(self, study: str) -> pd.DataFrame:
        """One row per CTT item: uid, trial_id, experiment, medium, is_attention, video_id, clip,
        real_path, fake_path, created, votes, frame, split, source, real_is_color."""
        with self._read() as s:
            st = self._study(s, study)
            votes = _vote_counts()
            rows = s.execute(
                select(
                    CttItemRow.uid,
                    TrialRow.trial_id,
                    TrialRow.experiment,
                    CttItemRow.medium,
                    CttItemRow.is_attention,
                    CttItemRow.video_id,
                    CttItemRow.clip,
                    CttItemRow.real_path,
                    CttItemRow.fake_path,
                    CttItemRow.created,
                    func.coalesce(votes.c.n, 0),
                    CttItemRow.frame,
                    CttItemRow.split,
                    CttItemRow.source,
                    CttItemRow.real_is_color,
                )
                .outerjoin(TrialRow, CttItemRow.trial_pk == TrialRow.id)
                .outerjoin(votes, votes.c.item_id == CttItemRow.id)
                .where(CttItemRow.study_id == st.id)
                .order_by(CttItemRow.id)
            ).all()
        return pd.DataFrame([tuple(r) for r in rows], columns=CTT_ITEMS_COLUMNS)

    def get_ctt_item(self, uid: str) -> dict[str, Any] | None:
        """The item with this uid as the dict `next_ctt_item` returns; None when there is none."""
        with self._read() as s:
            row = s.scalar(select(CttItemRow).where(CttItemRow.uid == uid))
            return None if row is None else _item_dict(row)

    def next_ctt_item(
        self,
        study: str,
        rater_id: str,
        *,
        medium: str | None = None,
        mode: str | None = None,
        rng: random.Random | None = None,
    ) -> dict[str, Any] | None:
        """An item of the study this rater has not voted on, drawn at random among the least-voted
        ones; None when the rater has seen them all. `medium` ('clip'|'frame') narrows the draw;
        `mode='2afc'` draws only items with a color original (a "which is real" pair), 'rating'
        (or None) any item. The dict has uid, real_path, fake_path, medium, is_attention, video_id,
        clip, frame, real_is_color (no trial: the page must not know it)."""
        if mode is not None and mode not in VOTE_MODES:
            raise VidcolorError(f"CTT mode must be one of {VOTE_MODES}, got {mode!r}")
        if medium is not None and medium not in CTT_MEDIA:
            raise VidcolorError(f"CTT medium must be one of {CTT_MEDIA}, got {medium!r}")
        with self._read() as s:
            st = self._study(s, study)
            seen = select(CttVoteRow.item_id).where(CttVoteRow.rater_id == rater_id)
            votes = _vote_counts()
            q = (
                select(CttItemRow, func.coalesce(votes.c.n, 0).label("n"))
                .outerjoin(votes, votes.c.item_id == CttItemRow.id)
                .where(CttItemRow.study_id == st.id, CttItemRow.id.not_in(seen))
            )
            if medium is not None:
                q = q.where(CttItemRow.medium == medium)
            if mode == "2afc":
                q = q.where(CttItemRow.real_is_color.is_(True))
            rows = s.execute(q).all()
            if not rows:
                return None
            least = min(n for _, n in rows)
            pick = (rng or random).choice([item for item, n in rows if n == least])
            return _item_dict(pick)

    def record_vote(
        self,
        rater_id: str,
        item_uid: str,
        *,
        choice: str | None = None,
        picked_real: bool | None = None,
        response_ms: float | None = None,
        rating: int | None = None,
        mode: str = "2afc",
    ) -> bool:
        """Store one vote in its own transaction. `choice` is the displayed side the rater picked
        ('left'|'right'), `picked_real` whether that side showed the real clip; in 'rating' mode
        `rating` (1-5) is required and the choice optional. Returns False (and stores nothing) when
        this rater already voted on this item; never raises for that."""
        try:
            with self._write() as s:
                if s.get(RaterRow, rater_id) is None:
                    _check_vote(choice, picked_real, rating, mode)
                    raise VidcolorError(f"unknown rater {rater_id!r}")
                add_vote(s, rater_id, item_uid, choice, picked_real, rating, mode, response_ms)
            return True
        except IntegrityError:
            log.info("duplicate vote of rater %s on item %s refused", rater_id, item_uid)
            return False

    def votes(self, study: str | None = None) -> pd.DataFrame:
        """One row per vote: rater_id, rater, item uid, trial_id, experiment, medium, is_attention,
        video_id, clip, choice, picked_real, fooled (picked the colorized side), response_ms,
        rating, mode, created."""
        with self._read() as s:
            q = (
                select(
                    CttVoteRow.rater_id,
                    RaterRow.name,
                    CttItemRow.uid,
                    TrialRow.trial_id,
                    TrialRow.experiment,
                    CttItemRow.medium,
                    CttItemRow.is_attention,
                    CttItemRow.video_id,
                    CttItemRow.clip,
                    CttVoteRow.choice,
                    CttVoteRow.picked_real,
                    CttVoteRow.response_ms,
                    CttVoteRow.rating,
                    CttVoteRow.mode,
                    CttVoteRow.created,
                )
                .join(CttItemRow, CttVoteRow.item_id == CttItemRow.id)
                .join(RaterRow, CttVoteRow.rater_id == RaterRow.id)
                .outerjoin(TrialRow, CttItemRow.trial_pk == TrialRow.id)
                .order_by(CttVoteRow.id)
            )
            if study is not None:
                q = q.where(CttItemRow.study_id == self._study(s, study).id)
            rows = s.execute(q).all()
        df = pd.DataFrame([tuple(r) for r in rows], columns=VOTES_COLUMNS)
        df.insert(
            VOTES_COLUMNS.index("picked_real") + 1,
            "fooled",
            df["picked_real"].map(lambda v: None if v is None or pd.isna(v) else not bool(v)),
        )
        return df


def _vote_counts() -> Any:
    """A subquery of (item_id, n): the number of votes per item."""
    return select(CttVoteRow.item_id, func.count().label("n")).group_by(CttVoteRow.item_id).subquery()


def _check_item(i: int, item: Mapping[str, Any]) -> None:
    """Refuse item number `i` when a path is missing or its medium is unknown."""
    for key in ("real_path", "fake_path"):
        if not item.get(key):
            raise VidcolorError(f"CTT item {i}: field {key!r} is missing")
    medium = item.get("medium", "clip")
    if medium not in CTT_MEDIA:
        raise VidcolorError(f"CTT item {i}: medium must be one of {CTT_MEDIA}, got {medium!r}")


def _item_row(item: Mapping[str, Any], *, study_id: int, trial_pk: int | None) -> CttItemRow:
    """The row for a checked item mapping (see `add_ctt_items`)."""
    return CttItemRow(
        uid=str(item.get("uid") or secrets.token_hex(8)),
        study_id=study_id,
        trial_pk=trial_pk,
        real_path=os.fspath(item["real_path"]),
        fake_path=os.fspath(item["fake_path"]),
        medium=item.get("medium", "clip"),
        is_attention=bool(item.get("is_attention", False)),
        video_id=item.get("video_id"),
        clip=None if item.get("clip") is None else int(item["clip"]),
        frame=None if item.get("frame") is None else int(item["frame"]),
        split=item.get("split"),
        source=None if item.get("source") is None else os.fspath(item["source"]),
        real_is_color=bool(item.get("real_is_color", True)),
    )


def add_vote(
    s,
    rater_id: str,
    item_uid: str,
    choice: str | None,
    picked_real: bool | None,
    rating: int | None,
    mode: str,
    response_ms: float | None,
) -> None:
    """The one place a CTT vote is written, inside the caller's transaction: checked (`_check_vote`,
    the item known, a 2afc vote only on a colour original) and added. `Store.record_vote` (the
    dashboard's rating page) and `Store.answer` (a campaign session's counted item) both call it."""
    _check_vote(choice, picked_real, rating, mode)
    row = s.execute(select(CttItemRow.id, CttItemRow.real_is_color).where(CttItemRow.uid == item_uid)).first()
    if row is None:
        raise VidcolorError(f"unknown CTT item {item_uid!r}")
    item_id, real_is_color = row
    if mode == "2afc" and not real_is_color:
        raise VidcolorError(
            f"CTT item {item_uid!r} has a black-and-white original: it takes rating votes only, not 2afc"
        )
    s.add(
        CttVoteRow(
            rater_id=rater_id,
            item_id=item_id,
            choice=choice,
            picked_real=None if picked_real is None else bool(picked_real),
            response_ms=None if response_ms is None else float(response_ms),
            rating=None if rating is None else int(rating),
            mode=mode,
        )
    )
    s.flush()  # a duplicate (rater, item) fails here, as IntegrityError


def _check_vote(choice: str | None, picked_real: bool | None, rating: int | None, mode: str) -> None:
    """Refuse a vote whose mode, side or rating is invalid, or that lacks what its mode needs."""
    if mode not in VOTE_MODES:
        raise VidcolorError(f"vote mode must be one of {VOTE_MODES}, got {mode!r}")
    if choice is not None and choice not in SIDES:
        raise VidcolorError(f"vote choice must be one of {SIDES}, got {choice!r}")
    if rating is not None and (int(rating) != rating or not 1 <= int(rating) <= 5):
        raise VidcolorError(f"rating must be an integer 1-5, got {rating!r}")
    if mode == "2afc" and (choice is None or picked_real is None):
        raise VidcolorError("a 2afc vote needs both choice and picked_real")
    if mode == "rating" and rating is None:
        raise VidcolorError("a rating vote needs rating 1-5")


def _item_dict(row: CttItemRow) -> dict[str, Any]:
    return {
        "uid": row.uid,
        "real_path": row.real_path,
        "fake_path": row.fake_path,
        "medium": row.medium,
        "is_attention": bool(row.is_attention),
        "video_id": row.video_id,
        "clip": row.clip,
        "frame": row.frame,
        "real_is_color": bool(row.real_is_color),
    }
