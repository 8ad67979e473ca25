"""Rater sessions of a Color Turing Test campaign: opened through an invite, answered item by item.

A session is opened through an invite token (`open_session`: one use of it, refused with one
message that tells nothing more when the token is unknown, used up or its campaign closed) and
gets a rater id of its own, so a display name is never an identity and nobody votes as someone
else. Its items are drawn once, when it opens (`study.store.session_plans`). The rater page
shows the current item (`session_state`) and sends the answer (`answer`): practice items are only
checked, counted ones stored as votes (2afc or rating in the CTT votes, pairwise in the pair
votes), and the session steps forward in the same transaction.
"""

from __future__ import annotations

import random
import secrets
from typing import Any

import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models.errors import VidcolorError
from study.store.campaigns import campaign_row
from study.store.engine import StoreEngine
from study.store.schema import (
    CampaignRow,
    CttItemRow,
    CttPairVoteRow,
    CttVoteRow,
    InviteRow,
    RaterRow,
    RaterSessionRow,
    utcnow,
)
from study.store.session_plans import PAIR_SEP, draw_plan, pairwise_plan


class RaterFacingError(VidcolorError):
    """An error whose message is written for the rater (an invalid invite, an unknown session, an
    item gone from the server): the rater page shows it. Anything else it shows as a plain notice."""


SESSION_COLUMNS = ["session_id", "rater_id", "display_name", "position", "items", "practice", "started", "finished"]
INVALID_INVITE = "this invite link is not valid (unknown, used up, or its campaign is closed)"


class RaterSessionsMixin(StoreEngine):
    """`open_session`, `session_state`, `answer`, `campaign_sessions`."""

    def open_session(self, token: str, display_name: str | None = None, rng: random.Random | None = None) -> str:
        """A new rater session through an invite token; returns the session id. An unknown or used-up
        token, or a closed campaign, is refused with one message that tells nothing more."""
        rng = rng or random.SystemRandom()
        planned = None
        if token:  # a pairwise plan fits the ranking so far (a bootstrap): done before the write
            # transaction, which would hold every other rater's vote behind it; votes that land in
            # between only make the plan a moment older
            with self._read() as s:
                invite = s.get(InviteRow, str(token))
                row = None if invite is None else s.get(CampaignRow, invite.campaign_id)
                if row is not None and row.is_open and row.task == "pairwise":
                    planned = pairwise_plan(s, row, rng)
        with self._write() as s:
            invite = s.get(InviteRow, str(token)) if token else None
            row = None if invite is None else s.get(CampaignRow, invite.campaign_id)
            if row is None or not row.is_open:
                raise RaterFacingError(INVALID_INVITE)
            # one UPDATE that only succeeds while uses are left: two raters racing for a one-use link
            # cannot both get in
            taken = s.execute(
                update(InviteRow)
                .where(
                    InviteRow.token == invite.token,
                    (InviteRow.max_uses.is_(None)) | (InviteRow.uses < InviteRow.max_uses),
                )
                .values(uses=InviteRow.uses + 1)
            ).rowcount
            if not taken:
                raise RaterFacingError(INVALID_INVITE)
            if row.task == "pairwise":
                practice, counted = planned if planned is not None else pairwise_plan(s, row, rng)
            else:
                practice, counted = draw_plan(s, row, rng)
            rater = RaterRow(id=secrets.token_hex(16), name=None)
            s.add(rater)
            session = RaterSessionRow(
                id=secrets.token_hex(16),
                campaign_id=row.id,
                token=invite.token,
                rater_id=rater.id,
                display_name=(display_name or "").strip()[:200] or None,
                plan=practice + counted,
                practice=len(practice),
            )
            s.add(session)
            return session.id

    def session_state(self, session_id: str) -> dict[str, Any]:
        """What a rater page needs: task, display_s, position, practice and counted totals, done,
        the current item (uid, medium, real_path, fake_path, practice) or None when done, and
        `shown_s`: seconds since the current item was first shown (its clock starts on the first
        call, and a reload does not restart it). No trial, no side: the page must not know them."""
        with self._write() as s:
            sess, row = self._session(s, session_id)
            if sess.shown_at is None:
                sess.shown_at = utcnow()
            shown_s = max(0.0, (utcnow() - sess.shown_at).total_seconds())
            plan, pos = list(sess.plan), sess.position
            item = None
            uids = plan[pos].split(PAIR_SEP) if pos < len(plan) else []
            found = {r.uid: r for r in s.scalars(select(CttItemRow).where(CttItemRow.uid.in_(uids)))}
            if len(found) < len(uids):
                raise RaterFacingError(
                    "an item of this session is no longer on the server; please tell the person running the test"
                )
            if pos < len(plan) and PAIR_SEP in plan[pos]:
                a, b = (found[u] for u in uids)
                item = {
                    "uid": plan[pos],
                    "medium": a.medium,
                    "paths": (a.fake_path, b.fake_path),
                    "practice": pos < sess.practice,
                }
            elif pos < len(plan):
                it = found[plan[pos]]
                item = {
                    "uid": it.uid,
                    "medium": it.medium,
                    "real_path": it.real_path,
                    "fake_path": it.fake_path,
                    "practice": pos < sess.practice,
                }
            return {
                "task": row.task,
                "display_s": row.display_s,
                "position": pos,
                "practice": sess.practice,
                "shown_s": shown_s,
                "counted": len(plan) - sess.practice,
                "done": pos >= len(plan),
                "item": item,
                "display_name": sess.display_name,
            }

    def answer(
        self,
        session_id: str,
        item_uid: str,
        *,
        picked_real: bool | None = None,
        choice: str | None = None,
        rating: int | None = None,
        winner: str | None = None,
        response_ms: float | None = None,
    ) -> dict[str, Any]:
        """The rater's answer to the session's current item: a practice one is only checked
        (``{"practice": True, "correct": ...}``), a counted one is stored as a vote (pairwise: `winner`
        is "a" or "b", the first or the second of the pair's uids). An answer to
        any other item (a resubmitted form, a stale page) changes nothing: ``{"stale": True}``."""
        from sqlalchemy.exc import IntegrityError

        from study.store.ctt import _check_vote

        try:
            # one write transaction: the position read, the vote and the step forward commit together,
            # so two tabs of one session cannot both answer the same item
            with self._write() as s:
                sess, row = self._session(s, session_id)
                plan, pos, task = list(sess.plan), sess.position, row.task
                if pos >= len(plan) or plan[pos] != item_uid:
                    return {"stale": True}
                if task == "pairwise" and winner not in ("a", "b"):
                    raise VidcolorError(f"a pairwise answer names the winner 'a' or 'b', got {winner!r}")
                out: dict[str, Any] = {"practice": pos < sess.practice, "stale": False}
                if pos < sess.practice:
                    out["correct"] = bool(picked_real) if task == "2afc" else None
                elif task == "pairwise":
                    uid_a, uid_b = item_uid.split(PAIR_SEP)
                    ids = dict(
                        s.execute(select(CttItemRow.uid, CttItemRow.id).where(CttItemRow.uid.in_([uid_a, uid_b]))).all()
                    )
                    s.add(
                        CttPairVoteRow(
                            rater_id=sess.rater_id,
                            item_a_id=ids[uid_a],
                            item_b_id=ids[uid_b],
                            winner_id=ids[uid_a if winner == "a" else uid_b],
                            response_ms=None if response_ms is None else float(response_ms),
                        )
                    )
                    out["recorded"] = True
                else:
                    _check_vote(choice, picked_real, rating, task)
                    item_id = s.scalar(select(CttItemRow.id).where(CttItemRow.uid == item_uid))
                    s.add(
                        CttVoteRow(
                            rater_id=sess.rater_id,
                            item_id=item_id,
                            choice=choice,
                            picked_real=None if picked_real is None else bool(picked_real),
                            response_ms=None if response_ms is None else float(response_ms),
                            rating=None if rating is None else int(rating),
                            mode=task,
                        )
                    )
                    out["recorded"] = True
                sess.position, sess.shown_at = pos + 1, None
                if pos + 1 >= len(plan):
                    sess.finished = utcnow()
                return out
        except IntegrityError:  # the same vote already stored (cannot happen through the position check)
            return {"stale": True}

    def campaign_sessions(self, study: str, campaign: str) -> pd.DataFrame:
        """One row per session of a campaign (SESSION_COLUMNS): its id, rater id, display name, how far
        it got of its items (practice included) and when it started and finished."""
        with self._read() as s:
            row = campaign_row(s, self._study(s, study), campaign)
            rows = s.scalars(
                select(RaterSessionRow).where(RaterSessionRow.campaign_id == row.id).order_by(RaterSessionRow.started)
            ).all()
            out = [
                (r.id, r.rater_id, r.display_name, r.position, len(r.plan), r.practice, r.started, r.finished)
                for r in rows
            ]
        return pd.DataFrame(out, columns=SESSION_COLUMNS)

    def _session(self, s: Session, session_id: str) -> tuple[RaterSessionRow, CampaignRow]:
        sess = s.get(RaterSessionRow, str(session_id)) if session_id else None
        if sess is None:
            raise RaterFacingError("unknown rater session (open the invite link again)")
        return sess, s.get(CampaignRow, sess.campaign_id)
