"""Color Turing Test campaigns: a fixed protocol, invite tokens, and rater sessions bound to them.

A campaign fixes what raters do (Zhang et al. 2016's protocol by default: 10 practice pairs with
feedback, then 40 counted pairs, each shown 1 s): the task (2afc "which is real" or a 1-5
rating), the display time, the session length, the practice items, the share of attention
checks and which trials' items to draw. Raters join only through an invite token (one use, or as
many as the researcher allows); each session gets a rater id of its own, so a display name is
never an identity and nobody votes as someone else. A session's items are drawn once, when it
opens (`study.store.session_plans`). Results are per campaign: the votes of its sessions' raters.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
from typing import Any

import pandas as pd
from sqlalchemy import select, update

from models.errors import VidcolorError
from study.store.engine import StoreEngine
from study.store.schema import (
    VOTE_MODES,
    CampaignRow,
    CttItemRow,
    CttPairVoteRow,
    CttVoteRow,
    InviteRow,
    RaterRow,
    RaterSessionRow,
    TrialRow,
    utcnow,
)
from study.store.session_plans import PAIR_SEP, attention_count, draw_plan, eligible_items, pairwise_plan, source_pairs

CAMPAIGN_COLUMNS = [
    "name",
    "task",
    "display_s",
    "session_items",
    "practice_items",
    "attention_share",
    "trial_ids",
    "is_open",
    "created",
    "invites",
    "sessions",
    "finished_sessions",
]
#: 2afc: which of two is real; rating: 1-5 naturalness of one; pairwise: which of two trials'
#: colorizations of the same source looks more natural (a Bradley-Terry ranking of trials)
CAMPAIGN_TASKS = (*VOTE_MODES, "pairwise")
SESSION_COLUMNS = ["session_id", "rater_id", "display_name", "position", "items", "practice", "started", "finished"]
PAIR_VOTES_COLUMNS = [
    "rater_id",
    "uid_a",
    "uid_b",
    "winner",
    "loser",
    "video_id",
    "clip",
    "is_attention",
    "response_ms",
    "created",
]
INVALID_INVITE = "this invite link is not valid (unknown, used up, or its campaign is closed)"


class CampaignsMixin(StoreEngine):
    """`create_campaign`, `add_invites`, `campaigns`, `close_campaign`, `open_session`,
    `session_state`, `answer`, `campaign_votes`, `campaign_sessions`, `pair_votes`, `trial_ranking`."""

    def create_campaign(
        self,
        study: str,
        name: str,
        *,
        task: str = "2afc",
        display_s: float = 1.0,
        session_items: int = 40,
        practice_items: int = 10,
        attention_share: float = 0.1,
        trial_ids: list[str] | None = None,
    ) -> dict[str, Any]:
        """Record a campaign; refused when the study has too few items for one session."""
        _check_protocol(name, task, display_s, session_items, practice_items, attention_share)
        with self._write() as s:
            st = self._study(s, study)
            if s.scalar(select(CampaignRow.id).where(CampaignRow.study_id == st.id, CampaignRow.name == name)):
                raise VidcolorError(f"study {study!r} already has a campaign named {name!r}")
            known = set(s.scalars(select(TrialRow.trial_id).where(TrialRow.study_id == st.id)))
            unknown = sorted(set(trial_ids or ()) - known)
            if unknown:
                raise VidcolorError(f"--trials: study {study!r} has no trial {', '.join(map(repr, unknown))}")
            row = CampaignRow(
                study_id=st.id,
                name=name,
                task=task,
                display_s=float(display_s),
                session_items=int(session_items),
                practice_items=int(practice_items),
                attention_share=float(attention_share),
                trial_ids=list(trial_ids) if trial_ids else None,
            )
            s.add(row)
            s.flush()
            regular, attention = eligible_items(s, row)
            if row.task == "pairwise":
                regular = source_pairs(s, row)
            need_att = attention_count(row)
            need_reg = row.session_items - need_att + row.practice_items
            if len(regular) < need_reg or len(attention) < need_att:
                what = "pairs of two trials' clips of one source" if row.task == "pairwise" else "regular items"
                raise VidcolorError(
                    f"campaign {name!r}: a session needs {need_reg} {what} ({row.practice_items} practice + "
                    f"{row.session_items - need_att} counted) and {need_att} attention checks; study {study!r} has "
                    f"{len(regular)} and {len(attention)} for task {task} (make more with `vidcolor ctt build`, "
                    "or ask for fewer with --pairs / --practice)"
                )
            return _campaign_dict(row)

    def add_invites(self, study: str, campaign: str, count: int = 1, max_uses: int | None = 1) -> list[str]:
        """`count` new invite tokens of a campaign, each good for `max_uses` sessions (None: any number)."""
        check_invites(count, max_uses)
        tokens = [secrets.token_urlsafe(24) for _ in range(count)]
        with self._write() as s:
            row = self._campaign(s, study, campaign)
            s.add_all(InviteRow(token=t, campaign_id=row.id, max_uses=max_uses) for t in tokens)
        return tokens

    def campaigns(self, study: str) -> pd.DataFrame:
        """One row per campaign of the study (CAMPAIGN_COLUMNS), oldest first."""
        with self._read() as s:
            st = self._study(s, study)
            rows = s.scalars(select(CampaignRow).where(CampaignRow.study_id == st.id).order_by(CampaignRow.id)).all()
            out = []
            for r in rows:
                sessions = s.scalars(select(RaterSessionRow).where(RaterSessionRow.campaign_id == r.id)).all()
                invites = s.scalars(select(InviteRow.token).where(InviteRow.campaign_id == r.id)).all()
                out.append(
                    {
                        **_campaign_dict(r),
                        "invites": len(invites),
                        "sessions": len(sessions),
                        "finished_sessions": sum(x.finished is not None for x in sessions),
                    }
                )
        return pd.DataFrame(out, columns=CAMPAIGN_COLUMNS)

    def close_campaign(self, study: str, campaign: str) -> None:
        """No new sessions (open ones can finish)."""
        with self._write() as s:
            self._campaign(s, study, campaign).is_open = False

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
                raise VidcolorError(INVALID_INVITE)
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
                raise VidcolorError(INVALID_INVITE)
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
                raise VidcolorError(
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

    def campaign_votes(self, study: str, campaign: str) -> pd.DataFrame:
        """The votes of a campaign's sessions (columns of `votes`), practice never among them."""
        with self._read() as s:
            row = self._campaign(s, study, campaign)
            raters = set(s.scalars(select(RaterSessionRow.rater_id).where(RaterSessionRow.campaign_id == row.id)))
        votes = self.votes(study)
        return votes[votes["rater_id"].isin(raters)].reset_index(drop=True)

    def campaign_sessions(self, study: str, campaign: str) -> pd.DataFrame:
        """One row per session of a campaign (SESSION_COLUMNS): its id, rater id, display name, how far
        it got of its items (practice included) and when it started and finished."""
        with self._read() as s:
            row = self._campaign(s, study, campaign)
            rows = s.scalars(
                select(RaterSessionRow).where(RaterSessionRow.campaign_id == row.id).order_by(RaterSessionRow.started)
            ).all()
            out = [
                (r.id, r.rater_id, r.display_name, r.position, len(r.plan), r.practice, r.started, r.finished)
                for r in rows
            ]
        return pd.DataFrame(out, columns=SESSION_COLUMNS)

    def pair_votes(self, study: str, campaign: str | None = None) -> pd.DataFrame:
        """One row per pairwise vote (PAIR_VOTES_COLUMNS): the winner's and loser's trial ids (None
        for an attention check's wrongly recolored side), the source, whether it was an attention pair."""
        from sqlalchemy.orm import aliased

        a, b = aliased(CttItemRow), aliased(CttItemRow)
        ta, tb = aliased(TrialRow), aliased(TrialRow)
        with self._read() as s:
            st = self._study(s, study)
            q = (
                select(
                    CttPairVoteRow,
                    a.uid,
                    b.uid,
                    ta.trial_id,
                    tb.trial_id,
                    a.video_id,
                    a.clip,
                    a.is_attention,
                    b.is_attention,
                    b.video_id,
                    b.clip,
                )
                .join(a, CttPairVoteRow.item_a_id == a.id)
                .join(b, CttPairVoteRow.item_b_id == b.id)
                .outerjoin(ta, a.trial_pk == ta.id)
                .outerjoin(tb, b.trial_pk == tb.id)
                .where(a.study_id == st.id)
                .order_by(CttPairVoteRow.id)
            )
            if campaign is not None:
                row = self._campaign(s, study, campaign)
                q = q.where(
                    CttPairVoteRow.rater_id.in_(
                        select(RaterSessionRow.rater_id).where(RaterSessionRow.campaign_id == row.id)
                    )
                )
            out = []
            for v, ua, ub, tra, trb, vid_a, clip_a, att_a, att_b, vid_b, clip_b in s.execute(q).all():
                a_won = v.winner_id == v.item_a_id
                out.append(
                    {
                        "rater_id": v.rater_id,
                        "uid_a": ua,
                        "uid_b": ub,
                        "winner": tra if a_won else trb,
                        "loser": trb if a_won else tra,
                        "video_id": vid_a if not att_a else vid_b,
                        "clip": clip_a if not att_a else clip_b,
                        "is_attention": bool(att_a or att_b),
                        "response_ms": v.response_ms,
                        "created": v.created,
                    }
                )
        return pd.DataFrame(out, columns=PAIR_VOTES_COLUMNS)

    def trial_ranking(self, study: str, campaign: str | None = None, n_boot: int = 500) -> pd.DataFrame:
        """The Bradley-Terry ranking of trials (study.ranking) from the pairwise votes of the
        study (or of one campaign), attention pairs left out; every trial with items is listed."""
        from study.ranking import fit_bradley_terry  # choix and scipy: ~1.5 s to import, only here

        votes = self.pair_votes(study, campaign)
        votes = votes[~votes["is_attention"]]
        items = self.ctt_items(study)
        trials = sorted(
            set(items.loc[~items["is_attention"], "trial_id"].dropna()) | set(votes["winner"]) | set(votes["loser"])
        )
        return fit_bradley_terry(votes, items=trials, n_boot=n_boot)

    # -- lookups ------------------------------------------------------------------------------------

    def _campaign(self, s, study: str, name: str) -> CampaignRow:
        st = self._study(s, study)
        row = s.scalar(select(CampaignRow).where(CampaignRow.study_id == st.id, CampaignRow.name == name))
        if row is None:
            raise VidcolorError(f"study {study!r} has no campaign named {name!r}")
        return row

    def _session(self, s, session_id: str) -> tuple[RaterSessionRow, CampaignRow]:
        sess = s.get(RaterSessionRow, str(session_id)) if session_id else None
        if sess is None:
            raise VidcolorError("unknown rater session (open the invite link again)")
        return sess, s.get(CampaignRow, sess.campaign_id)


def check_invites(count: int, max_uses: int | None) -> None:
    if count < 1:
        raise VidcolorError(f"--links must be >= 1, got {count}")
    if max_uses is not None and max_uses < 1:
        raise VidcolorError(f"--uses must be >= 1 (or 0 for unlimited), got {max_uses}")


def _check_protocol(
    name: str, task: str, display_s: float, session_items: int, practice_items: int, attention_share: float
) -> None:
    if not name or not name.strip() or len(name) > 200:
        raise VidcolorError(f"--name: a campaign needs a name of 1 to 200 characters, got {name!r}")
    if task not in CAMPAIGN_TASKS:
        raise VidcolorError(f"--task must be one of {', '.join(CAMPAIGN_TASKS)}, got {task!r}")
    if not 0 <= display_s <= 600:
        raise VidcolorError(f"--display-s must be in [0, 600] seconds (0 = until answered), got {display_s}")
    if session_items < 1:
        raise VidcolorError(f"--pairs must be >= 1, got {session_items}")
    if practice_items < 0:
        raise VidcolorError(f"--practice must be >= 0, got {practice_items}")
    if not 0 <= attention_share < 1:
        raise VidcolorError(f"--attention-share must be in [0, 1), got {attention_share}")


def _campaign_dict(row: CampaignRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "task": row.task,
        "display_s": row.display_s,
        "session_items": row.session_items,
        "practice_items": row.practice_items,
        "attention_share": row.attention_share,
        "trial_ids": row.trial_ids,
        "is_open": row.is_open,
        "created": row.created if isinstance(row.created, dt.datetime) else None,
    }
