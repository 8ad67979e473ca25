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
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.errors import VidcolorError
from study.store.campaigns import (
    INVALID_INVITE,
    TAKEN_PART,
    campaign_row,
    invite_problem,
)
from study.store.engine import StoreEngine
from study.store.schema import (
    CampaignRow,
    CttItemRow,
    CttPairVoteRow,
    InviteRow,
    RaterRow,
    RaterSessionRow,
    utcnow,
)
from study.store.session_plans import PAIR_SEP, draw_plan, pairwise_plan


class RaterFacingError(VidcolorError):
    """An error whose message is written for the rater (an invalid invite, an unknown session, an
    item gone from the server): the rater page shows it. Anything else it shows as a plain notice."""


SESSION_COLUMNS = [
    "session_id",
    "rater_id",
    "display_name",
    "participant_id",
    "external_study",
    "external_session",
    "position",
    "items",
    "practice",
    "screened_out",
    "started",
    "finished",
]


def secret_hash(secret: str) -> str:
    """What the store keeps of a browser's session secret: its SHA-256, hex."""
    import hashlib

    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class RaterSessionsMixin(StoreEngine):
    """`open_session`, `session_state`, `answer`, `campaign_sessions`."""

    def open_session(
        self,
        token: str,
        display_name: str | None = None,
        rng: random.Random | None = None,
        *,
        secret: str | None = None,
        participant: str | None = None,
        external_study: str | None = None,
        external_session: str | None = None,
        consented: bool = False,
    ) -> str:
        """A new rater session through an invite token; returns the session id. An unknown or used-up
        token, or a closed campaign, is refused with one message that tells nothing more; an expired
        or revoked one with its own (`invite_problem`). `secret`: the browser's session secret (its
        hash is kept: `session_for_secret` finds the session again). `participant` (a recruiting
        platform's id, with its study and session ids): one session per participant and campaign;
        the same participant again gets their session back when `secret` is that session's, and is
        refused otherwise."""
        rng = rng or random.SystemRandom()
        participant = (participant or "").strip()[:200] or None
        if participant is not None:
            with self._read() as s:
                invite = s.get(InviteRow, str(token)) if token else None
                if invite is not None:
                    mine = s.scalar(
                        select(RaterSessionRow).where(
                            RaterSessionRow.campaign_id == invite.campaign_id,
                            RaterSessionRow.participant_id == participant,
                        )
                    )
                    if mine is not None:
                        if secret is not None and mine.secret_hash == secret_hash(secret):
                            return mine.id
                        raise RaterFacingError(TAKEN_PART)
        planned = None
        if token:  # a pairwise plan fits the ranking so far (a bootstrap): done before the write
            # transaction, which would hold every other rater's vote behind it; votes that land in
            # between only make the plan a moment older
            with self._read() as s:
                invite = s.get(InviteRow, str(token))
                row = None if invite is None else s.get(CampaignRow, invite.campaign_id)
                problem = invite_problem(invite, row)
                if problem is not None:  # before any planning: a dead link costs nothing
                    raise RaterFacingError(problem)
                if row.task == "pairwise":
                    planned = pairwise_plan(s, row, rng)
        with self._write() as s:
            invite = s.get(InviteRow, str(token)) if token else None
            row = None if invite is None else s.get(CampaignRow, invite.campaign_id)
            problem = invite_problem(invite, row)
            if problem is not None:
                raise RaterFacingError(problem)
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
                secret_hash=None if secret is None else secret_hash(secret),
                participant_id=participant,
                external_study=(external_study or "").strip()[:200] or None,
                external_session=(external_session or "").strip()[:200] or None,
                seed=secrets.token_hex(8),
                consented=utcnow() if consented else None,
            )
            s.add(session)
            try:
                s.flush()  # a second session of the same participant racing this one fails here
            except IntegrityError:
                raise RaterFacingError(TAKEN_PART) from None
            return session.id

    def session_for_secret(self, secret: str | None) -> str | None:
        """The session whose browser holds `secret` (None: none)."""
        return self._by_secret(secret, RaterSessionRow.id)

    def session_campaign(self, secret: str | None) -> int | None:
        """The campaign (its row id) of the session whose browser holds `secret` (None: none)."""
        return self._by_secret(secret, RaterSessionRow.campaign_id)

    def _by_secret(self, secret: str | None, column) -> Any:
        if not secret:
            return None
        with self._read() as s:
            return s.scalar(select(column).where(RaterSessionRow.secret_hash == secret_hash(secret)))

    def revoke_invite(self, token: str) -> str:
        """Withdraw an invite link: it opens no new session (sessions it opened go on). Returns the
        campaign's name; an unknown token is an error naming it (shortened)."""
        with self._write() as s:
            invite = s.get(InviteRow, str(token))
            if invite is None:
                raise VidcolorError(f"no invite link with token {str(token)[:8]}...")
            invite.revoked = True
            return s.get(CampaignRow, invite.campaign_id).name

    def screen_result(self, session_id: str, passed: bool) -> None:
        """The colour-vision screen's outcome: passed, the session goes on to its items; failed, it
        ends with no items (the campaign's screened-out code)."""
        with self._write() as s:
            sess, _ = self._session(s, session_id)
            if sess.screen_passed is not None or sess.screened_out:
                return  # decided once
            if passed:
                sess.screen_passed = utcnow()
            else:
                sess.screened_out, sess.finished = True, sess.finished or utcnow()

    def session_state(self, session_id: str, start_clock: bool = True) -> dict[str, Any]:
        """What a rater page needs: task, display_s, position, practice and counted totals, done,
        the current item (uid, medium, real_path, fake_path, practice) or None when done, and
        `shown_s`: seconds since the current item was first shown (with `start_clock` its clock
        starts on the first call, else on `mark_shown`; a reload does not restart it). No trial, no
        side: the page must not know them."""
        with self._write() as s:
            sess, row = self._session(s, session_id)
            if sess.shown_at is None and start_clock:
                sess.shown_at = utcnow()
            shown_s = 0.0 if sess.shown_at is None else max(0.0, (utcnow() - sess.shown_at).total_seconds())
            plan, pos = list(sess.plan), sess.position
            item = _plan_item(s, sess, pos)
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
                "screened_out": bool(sess.screened_out),
                "screen_passed": sess.screen_passed is not None,
                "seed": sess.seed,  # draws each item's sides (study.ctt.composite.real_on_left)
                "campaign": {
                    "screen": bool(row.screen),
                    "completion_code": row.completion_code,
                    "screened_code": row.screened_code,
                    "completion_url": row.completion_url,
                },
            }

    def peek_item(self, session_id: str, position: int) -> dict[str, Any] | None:
        """The item at `position` of a session's plan, as `session_state` gives the current one (so a
        page can load it ahead), or None past the end. Starts no clock."""
        with self._read() as s:
            sess, _ = self._session(s, session_id)
            return _plan_item(s, sess, int(position))

    def mark_shown(self, session_id: str, position: int) -> None:
        """The current item is on the rater's screen: its display clock starts (once)."""
        with self._write() as s:
            sess, _ = self._session(s, session_id)
            if sess.position == int(position) and sess.shown_at is None:
                sess.shown_at = utcnow()

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
        from study.store.ctt import add_vote

        try:
            # one write transaction: the position read, the vote and the step forward commit together,
            # so two tabs of one session cannot both answer the same item
            with self._write() as s:
                sess, row = self._session(s, session_id)
                plan, pos, task = list(sess.plan), sess.position, row.task
                unscreened = row.screen and sess.screen_passed is None
                if sess.screened_out or unscreened or pos >= len(plan) or plan[pos] != item_uid:
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
                            choice=choice if choice in ("left", "right") else None,
                            response_ms=None if response_ms is None else float(response_ms),
                        )
                    )
                    out["recorded"] = True
                else:
                    add_vote(s, sess.rater_id, item_uid, choice, picked_real, rating, task, response_ms)
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
                (
                    r.id,
                    r.rater_id,
                    r.display_name,
                    r.participant_id,
                    r.external_study,
                    r.external_session,
                    r.position,
                    len(r.plan),
                    r.practice,
                    bool(r.screened_out),
                    r.started,
                    r.finished,
                )
                for r in rows
            ]
        return pd.DataFrame(out, columns=SESSION_COLUMNS)

    def _session(self, s: Session, session_id: str) -> tuple[RaterSessionRow, CampaignRow]:
        sess = s.get(RaterSessionRow, str(session_id)) if session_id else None
        if sess is None:
            raise RaterFacingError("unknown rater session (open the invite link again)")
        return sess, s.get(CampaignRow, sess.campaign_id)


def _plan_item(s: Session, sess: RaterSessionRow, pos: int) -> dict[str, Any] | None:
    """Item `pos` of a session's plan: uid, medium, the paths of its sides, practice; None past the end."""
    plan = list(sess.plan)
    if not 0 <= pos < len(plan):
        return None
    uids = plan[pos].split(PAIR_SEP)
    found = {r.uid: r for r in s.scalars(select(CttItemRow).where(CttItemRow.uid.in_(uids)))}
    if len(found) < len(uids):
        raise RaterFacingError(
            "an item of this session is no longer on the server; please tell the person running the test"
        )
    if PAIR_SEP in plan[pos]:
        a, b = (found[u] for u in uids)
        return {
            "uid": plan[pos],
            "medium": a.medium,
            "paths": (a.fake_path, b.fake_path),
            "practice": pos < sess.practice,
        }
    it = found[plan[pos]]
    return {
        "uid": it.uid,
        "medium": it.medium,
        "real_path": it.real_path,
        "fake_path": it.fake_path,
        "practice": pos < sess.practice,
    }
