"""Color Turing Test campaigns: a fixed protocol, and the invite tokens raters join it by.

A campaign fixes what raters do (Zhang et al. 2016's protocol by default: 10 practice pairs with
feedback, then 40 counted pairs, each shown 1 s): the task (2afc "which is real" or a 1-5
rating, or pairwise between trials), the display time, the session length, the practice items,
the share of attention checks and which trials' items to draw. Raters join only through an invite
token (one use, or as many as the researcher allows); the sessions they open are
`study.store.rater_sessions`, their pairwise votes and the ranking `study.store.pair_votes`.
Results are per campaign: the votes of its sessions' raters.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.errors import VidcolorError
from study.store.engine import StoreEngine
from study.store.schema import VOTE_MODES, CampaignRow, InviteRow, RaterSessionRow, StudyRow, TrialRow
from study.store.session_plans import attention_count, eligible_items, source_pairs

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


class CampaignsMixin(StoreEngine):
    """`create_campaign`, `add_invites`, `campaigns`, `close_campaign`, `campaign_votes` (which reads
    the votes through `CttMixin.votes`)."""

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

    def campaign_votes(self, study: str, campaign: str) -> pd.DataFrame:
        """The votes of a campaign's sessions (columns of `votes`), practice never among them."""
        with self._read() as s:
            row = self._campaign(s, study, campaign)
            raters = set(s.scalars(select(RaterSessionRow.rater_id).where(RaterSessionRow.campaign_id == row.id)))
        votes = self.votes(study)
        return votes[votes["rater_id"].isin(raters)].reset_index(drop=True)

    def _campaign(self, s: Session, study: str, name: str) -> CampaignRow:
        return campaign_row(s, self._study(s, study), name)


def campaign_row(s: Session, study: StudyRow, name: str) -> CampaignRow:
    """The campaign ``name`` of ``study``; an error naming both when there is none."""
    row = s.scalar(select(CampaignRow).where(CampaignRow.study_id == study.id, CampaignRow.name == name))
    if row is None:
        raise VidcolorError(f"study {study.name!r} has no campaign named {name!r}")
    return row


def check_invites(count: int, max_uses: int | None) -> None:
    """`add_invites`' ``--links`` and ``--uses`` checked (the CLI checks them before anything is written)."""
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
