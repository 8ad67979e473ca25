"""Pairwise votes of Color Turing Test campaigns, and the Bradley-Terry ranking of trials from them.

In a pairwise campaign a rater picks which of two trials' colorizations of the same source looks
more natural (`study.store.rater_sessions` stores the pick). `pair_votes` reads them back as
winner and loser trials, `trial_ranking` fits the ranking (`study.ranking`) to them.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import aliased

from study.store.campaigns import campaign_row
from study.store.engine import StoreEngine
from study.store.schema import CttItemRow, CttPairVoteRow, RaterSessionRow, TrialRow

PAIR_VOTES_COLUMNS = [
    "rater_id",
    "uid_a",
    "uid_b",
    "winner",
    "loser",
    "video_id",
    "clip",
    "is_attention",
    "choice",
    "response_ms",
    "created",
]


class PairVotesMixin(StoreEngine):
    """`pair_votes`, `trial_ranking` (which reads the items through `CttMixin.ctt_items`)."""

    def pair_votes(self, study: str, campaign: str | None = None) -> pd.DataFrame:
        """One row per pairwise vote (PAIR_VOTES_COLUMNS): the winner's and loser's trial ids (None
        for an attention check's wrongly recolored side), the source, whether it was an attention pair."""
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
                row = campaign_row(s, st, campaign)
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
                        "choice": v.choice,
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
