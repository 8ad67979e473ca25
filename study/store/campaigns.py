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
from collections.abc import Mapping
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.errors import VidcolorError
from study.store.engine import StoreEngine
from study.store.schema import VOTE_MODES, CampaignRow, InviteRow, RaterSessionRow, StudyRow, TrialRow, utcnow
from study.store.session_plans import attention_count, eligible_items, fix_practice, source_pairs

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
#: Zhang et al. (2016)'s protocol, a campaign's defaults: each item shown 1 s, 10 practice items
#: with feedback, then 40 counted, 10% of them attention checks
DEFAULT_DISPLAY_S = 1.0
DEFAULT_SESSION_ITEMS = 40
DEFAULT_PRACTICE_ITEMS = 10
DEFAULT_ATTENTION_SHARE = 0.1


class CampaignsMixin(StoreEngine):
    """`create_campaign`, `add_invites`, `campaigns`, `close_campaign`, `campaign_votes` (which reads
    the votes through `CttMixin.votes`)."""

    def create_campaign(
        self,
        study: str,
        name: str,
        *,
        task: str = "2afc",
        display_s: float = DEFAULT_DISPLAY_S,
        session_items: int = DEFAULT_SESSION_ITEMS,
        practice_items: int = DEFAULT_PRACTICE_ITEMS,
        attention_share: float = DEFAULT_ATTENTION_SHARE,
        trial_ids: list[str] | None = None,
        consent_text: str | None = None,
        completion_code: str | None = None,
        screened_code: str | None = None,
        completion_url: str | None = None,
        id_params: Mapping[str, str] | None = None,
        screen: bool = False,
    ) -> dict[str, Any]:
        """Record a campaign; refused when the study has too few items for one session. The rest
        is for recruiting platforms (study.ctt.rater_app): the consent page's text, the codes a
        rater who finished / was screened out ends with, the URL they are sent to (``{code}`` in
        it becomes the code), the URL parameters carrying their ids (keys participant, study,
        session), and whether raters take the colour-vision screen first."""
        _check_protocol(name, task, display_s, session_items, practice_items, attention_share)
        id_params = _check_recruiting(completion_code, screened_code, completion_url, id_params)
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
                consent_text=(consent_text or "").strip() or None,
                completion_code=completion_code or None,
                screened_code=screened_code or None,
                completion_url=completion_url or None,
                id_params=id_params,
                screen=bool(screen),
            )
            s.add(row)
            s.flush()
            fix_practice(s, row)
            regular, attention = _supply(s, row)
            need_att = attention_count(row)
            need_reg = row.session_items - need_att + row.practice_items
            if regular < need_reg or attention < need_att:
                what = supply_noun(row.task)
                raise VidcolorError(
                    f"campaign {name!r}: a session needs {need_reg} {what} ({row.practice_items} practice + "
                    f"{row.session_items - need_att} counted) and {need_att} attention checks; study {study!r} has "
                    f"{regular} {what} and {checks(attention)} for task {task} (make more with "
                    "`vidcolor ctt build`, "
                    "or ask for fewer with --pairs / --practice)"
                )
            return _campaign_dict(row)

    def campaign_supply(self, study: str, task: str = "2afc", trial_ids: list[str] | None = None) -> tuple[int, int]:
        """(regular, attention): how many regular items (pairwise: pairs of two trials' items of one
        source) and attention checks a session of such a campaign could draw from."""
        if task not in CAMPAIGN_TASKS:
            raise VidcolorError(f"--task must be one of {', '.join(CAMPAIGN_TASKS)}, got {task!r}")
        with self._read() as s:
            st = self._study(s, study)
            # a campaign not stored: only what the item queries read
            row = CampaignRow(study_id=st.id, task=task, trial_ids=list(trial_ids) if trial_ids else None)
            return _supply(s, row)

    def add_invites(
        self,
        study: str,
        campaign: str,
        count: int = 1,
        max_uses: int | None = 1,
        expires: dt.datetime | None = None,
    ) -> list[str]:
        """`count` new invite tokens of a campaign, each good for `max_uses` sessions (None: any
        number) until `expires` (UTC; None: no end)."""
        check_invites(count, max_uses)
        tokens = [secrets.token_urlsafe(24) for _ in range(count)]
        with self._write() as s:
            row = self._campaign(s, study, campaign)
            s.add_all(InviteRow(token=t, campaign_id=row.id, max_uses=max_uses, expires=expires) for t in tokens)
        return tokens

    def campaign_settings(self, token: str) -> dict[str, Any] | None:
        """What the rater server's first page needs of the campaign behind an invite token: its
        consent text, the URL parameters carrying the participant's ids, whether it screens, and
        the problem with the invite (`rater_sessions.invite_problem`, None when it can open a
        session). None for an unknown token."""
        with self._read() as s:
            invite = s.get(InviteRow, str(token)) if token else None
            row = None if invite is None else s.get(CampaignRow, invite.campaign_id)
            if row is None:
                return None
            return {
                "campaign_id": row.id,
                "problem": invite_problem(invite, row),
                "consent_text": row.consent_text,
                "id_params": dict(row.id_params or {}),
                "screen": bool(row.screen),
                "task": row.task,
            }

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

    def campaign_id_params(self, study: str, campaign: str) -> dict[str, str] | None:
        """The URL parameters carrying a campaign's participant ids (None: none)."""
        with self._read() as s:
            row = self._campaign(s, study, campaign)
            return dict(row.id_params) if row.id_params else None

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


INVALID_INVITE = "this invite link is not valid (unknown, used up, or its campaign is closed)"
EXPIRED_INVITE = "this invite link has expired"
REVOKED_INVITE = "this invite link has been withdrawn by the person running the test"
TAKEN_PART = "you have already taken part in this test (one session per participant)"


def invite_problem(invite: InviteRow | None, row: CampaignRow | None) -> str | None:
    """Why an invite cannot open a session (a message for the rater), or None. Expired and revoked
    links say so; unknown ones, used-up ones and closed campaigns share one message."""
    if invite is None or row is None:
        return INVALID_INVITE
    if invite.revoked:
        return REVOKED_INVITE
    if invite.expires is not None and utcnow() >= invite.expires:
        return EXPIRED_INVITE
    if not row.is_open or (invite.max_uses is not None and invite.uses >= invite.max_uses):
        return INVALID_INVITE
    return None


#: the URL parameters recruiting platforms add to a study link, by platform (Prolific's
#: PROLIFIC_PID / STUDY_ID / SESSION_ID; Amazon MTurk's workerId / hitId / assignmentId)
PLATFORM_PARAMS = {
    "prolific": {"participant": "PROLIFIC_PID", "study": "STUDY_ID", "session": "SESSION_ID"},
    "mturk": {"participant": "workerId", "study": "hitId", "session": "assignmentId"},
}
ID_KEYS = ("participant", "study", "session")


def _check_recruiting(
    completion_code: str | None,
    screened_code: str | None,
    completion_url: str | None,
    id_params: Mapping[str, str] | None,
) -> dict[str, str] | None:
    for label, code in (("--completion-code", completion_code), ("--screened-code", screened_code)):
        if code is not None and not (0 < len(code) <= 100 and code.isprintable() and code.strip() == code):
            raise VidcolorError(f"{label} must be 1 to 100 printable characters without spaces around, got {code!r}")
    if completion_url is not None and not completion_url.startswith(("https://", "http://")):
        raise VidcolorError(f"--completion-url must be an http(s) URL, got {completion_url!r}")
    if not id_params:
        return None
    unknown = sorted(set(id_params) - set(ID_KEYS))
    if unknown:
        raise VidcolorError(f"--id-param: unknown id {', '.join(unknown)}; one of {', '.join(ID_KEYS)}")
    for key, name in id_params.items():
        if not name or not all(c.isalnum() or c in "_-." for c in name):
            raise VidcolorError(f"--id-param {key}: a URL parameter name (letters, digits, _ - .), got {name!r}")
    if "participant" not in id_params:
        raise VidcolorError("--id-param: the participant's id parameter is needed (participant=NAME)")
    return dict(id_params)


def check_invites(count: int, max_uses: int | None) -> None:
    """`add_invites`' ``--links`` and ``--uses`` checked (the CLI checks them before anything is written)."""
    if count < 1:
        raise VidcolorError(f"--links must be >= 1, got {count}")
    if max_uses is not None and max_uses < 1:
        raise VidcolorError(f"--uses must be >= 1 (or 0 for unlimited), got {max_uses}")


def checks(n: int) -> str:
    """A count of attention checks in words: 1 attention check, 2 attention checks."""
    return f"{n} attention check{'' if n == 1 else 's'}"


def supply_noun(task: str) -> str:
    """What a campaign of ``task`` draws its regular items from, for messages."""
    return "pairs of two trials' clips of one source" if task == "pairwise" else "regular items"


def _supply(s: Session, row: CampaignRow) -> tuple[int, int]:
    regular, attention = eligible_items(s, row)
    return (len(source_pairs(s, row)) if row.task == "pairwise" else len(regular)), len(attention)


def fit_protocol(
    regular: int,
    attention: int,
    attention_share: float = DEFAULT_ATTENTION_SHARE,
    session_items: int | None = None,
    practice_items: int | None = None,
) -> tuple[int, int]:
    """(session_items, practice_items) for a campaign on a study with ``regular`` items and
    ``attention`` checks: a value given is kept; one not given is the default (40 counted, 10
    practice), or, when the study has too few items for that, what it has room for: practice a
    fifth of the regular items (at least 1, at most 10), the counted items as many as the rest
    and the attention checks allow (at most 40). When nothing fits, the values asked for (the
    defaults in place of those not given), which `create_campaign` refuses naming what a session
    needs and what the study has."""

    def att(p: int) -> int:  # as session_plans.attention_count
        return int(round(attention_share * p))

    def fits(p: int, q: int) -> bool:
        return p >= 1 and q >= 0 and p - att(p) + q <= regular and att(p) <= attention

    p0 = DEFAULT_SESSION_ITEMS if session_items is None else session_items
    q0 = DEFAULT_PRACTICE_ITEMS if practice_items is None else practice_items
    if fits(p0, q0) or (session_items is not None and practice_items is not None):
        return p0, q0
    q = q0
    if practice_items is None:
        q = min(q0, max(1, regular // 5)) if session_items is None else min(q0, regular - (p0 - att(p0)))
    p = p0 if session_items is not None else next((n for n in range(p0, 0, -1) if fits(n, q)), p0)
    return (p, q) if fits(p, q) else (p0, q0)


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
