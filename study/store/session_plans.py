"""What a rater session of a campaign shows: its items, drawn once when the session opens.

A 2afc or rating session (`draw_plan`) shows the campaign's practice items first (answered with
feedback, never stored as votes; the same for every session, so never counted in any), then
counted ones drawn from the rest, with the campaign's share of attention checks among the counted.
A pairwise session (`pairwise_plan`) shows two trials' colorizations of the same source
(`source_pairs`), first the trial pairs whose votes are expected to settle the most of the
campaign's ranking so far (`study.ranking.informative_pairs`: a simulation,
bench/pair_selection.py, has it reach the right order in fewer votes than random pairs).
`eligible_items` and `attention_count` are also what `create_campaign` checks a session can be
filled from.
"""

from __future__ import annotations

import itertools
import random

from sqlalchemy import select

from study.store.schema import CampaignRow, CttItemRow, CttPairVoteRow, RaterSessionRow, TrialRow

PAIR_SEP = "|"  # a pairwise plan entry is "uid_a|uid_b"


def attention_count(row: CampaignRow) -> int:
    """How many of a session's counted items are attention checks (the campaign's share, rounded)."""
    return int(round(row.attention_share * row.session_items))


def eligible_items(s, row: CampaignRow) -> tuple[list[str], list[str]]:
    """(regular item uids, attention item uids) a session of this campaign draws from, sorted."""
    q = (
        select(CttItemRow.uid, CttItemRow.is_attention, TrialRow.trial_id)
        .outerjoin(TrialRow, CttItemRow.trial_pk == TrialRow.id)
        .where(CttItemRow.study_id == row.study_id)
    )
    if row.task == "2afc":
        q = q.where(CttItemRow.real_is_color.is_(True))
    wanted = set(row.trial_ids) if row.trial_ids else None
    regular, attention = [], []
    for uid, is_att, trial in s.execute(q.order_by(CttItemRow.id)).all():
        if is_att:
            attention.append(uid)
        elif wanted is None or trial in wanted:
            regular.append(uid)
    return regular, attention


def practice_pool(row: CampaignRow, candidates: list[str]) -> list[str]:
    """The campaign's practice items (or pairs), the same for every session, so an item whose answer
    a practice round reveals is never a counted item in any session of the campaign: those fixed
    when the campaign was made (`practice_uids`) that are still among `candidates`; for a campaign
    made before they were recorded, `practice_items` of `candidates` drawn by the campaign's seed."""
    if row.practice_uids is not None:
        have = set(candidates)
        return [u for u in row.practice_uids if u in have]
    pool = sorted(candidates)
    random.Random(f"practice:{row.id}:{row.name}").shuffle(pool)
    return pool[: row.practice_items]


def fix_practice(s, row: CampaignRow) -> None:
    """Record a new campaign's practice items (its `practice_pool` of today's items or pairs)."""
    candidates = source_pairs(s, row) if row.task == "pairwise" else eligible_items(s, row)[0]
    row.practice_uids = practice_pool(row, candidates)


def draw_plan(s, row: CampaignRow, rng: random.Random) -> tuple[list[str], list[str]]:
    """(practice uids, counted uids) of a 2afc or rating session: the campaign's practice items (in an
    order of the session's), and counted items drawn from the rest, attention checks counted only."""
    regular, attention = eligible_items(s, row)
    practice = practice_pool(row, regular)
    rng.shuffle(practice)
    taken = set(practice)
    rest = [u for u in regular if u not in taken]
    rng.shuffle(rest)
    counted = rest[: row.session_items - attention_count(row)]
    counted += rng.sample(attention, k=attention_count(row))
    rng.shuffle(counted)
    return practice, counted


def source_pairs(s, row: CampaignRow) -> list[str]:
    """Every "uid_a|uid_b" pair of two trials' regular items of the same source clip (and medium)."""
    q = (
        select(
            CttItemRow.uid, CttItemRow.video_id, CttItemRow.clip, CttItemRow.frame, CttItemRow.medium, TrialRow.trial_id
        )
        .join(TrialRow, CttItemRow.trial_pk == TrialRow.id)
        .where(CttItemRow.study_id == row.study_id, CttItemRow.is_attention.is_(False))
        .order_by(CttItemRow.id)
    )
    wanted = set(row.trial_ids) if row.trial_ids else None
    by_source: dict[tuple, list[tuple[str, str]]] = {}
    for uid, vid, clip, frame, medium, trial in s.execute(q).all():
        if wanted is None or trial in wanted:
            by_source.setdefault((vid, clip, frame, medium), []).append((trial, uid))
    pairs = []
    for members in by_source.values():
        for (ta, ua), (tb, ub) in itertools.combinations(members, 2):
            if ta != tb:
                pairs.append(f"{ua}{PAIR_SEP}{ub}")
    return pairs


def _campaign_pair_votes(s, row: CampaignRow) -> list[tuple[str, str]]:
    """(winner trial, loser trial) of the campaign's pairwise votes so far, attention pairs left out."""
    from sqlalchemy.orm import aliased

    a, b, w = aliased(CttItemRow), aliased(CttItemRow), aliased(CttItemRow)
    ta, tb = aliased(TrialRow), aliased(TrialRow)
    q = (
        select(ta.trial_id, tb.trial_id, w.id == a.id)
        .select_from(CttPairVoteRow)
        .join(a, CttPairVoteRow.item_a_id == a.id)
        .join(b, CttPairVoteRow.item_b_id == b.id)
        .join(w, CttPairVoteRow.winner_id == w.id)
        .join(ta, a.trial_pk == ta.id)
        .join(tb, b.trial_pk == tb.id)
        .where(
            CttPairVoteRow.rater_id.in_(select(RaterSessionRow.rater_id).where(RaterSessionRow.campaign_id == row.id))
        )
    )
    return [(x, y) if a_won else (y, x) for x, y, a_won in s.execute(q).all()]


def pairwise_plan(s, row: CampaignRow, rng: random.Random) -> tuple[list[str], list[str]]:
    """(practice, counted) pairs of a pairwise session. Counted pairs go first to the trial pairs
    whose votes are expected to settle the most of the campaign's ranking so far
    (study.ranking.informative_pairs), each on a source both trials colorized; attention pairs set
    an attention item's wrong recoloring against a regular colorization. Practice pairs are the
    campaign's (`practice_pool`)."""
    from study.ranking import informative_pairs  # scipy: ~1 s to import, only here

    pairs = source_pairs(s, row)
    practice = practice_pool(row, pairs)  # the campaign's, never counted in any of its sessions
    rng.shuffle(practice)
    taken = set(practice)
    pairs = [p for p in pairs if p not in taken]
    trial_of = dict(
        s.execute(
            select(CttItemRow.uid, TrialRow.trial_id)
            .join(TrialRow, CttItemRow.trial_pk == TrialRow.id)
            .where(CttItemRow.study_id == row.study_id)
        ).all()
    )
    by_trials: dict[frozenset, list[str]] = {}
    for p in pairs:
        by_trials.setdefault(frozenset(trial_of[u] for u in p.split(PAIR_SEP)), []).append(p)
    for options in by_trials.values():
        rng.shuffle(options)
    votes = _campaign_pair_votes(s, row)
    items = sorted({t for k in by_trials for t in k})
    n_regular = row.session_items - attention_count(row)
    n_trials = len(items)
    every = max(1, n_trials * (n_trials - 1) // 2)
    wanted = min(every, max(1, n_regular))  # the session takes the first ones; the rest follow in any order
    order = [frozenset(p) for p in informative_pairs(votes, items, k=wanted, rng=rng.randrange(2**31))]
    order = [k for k in order if k in by_trials] + [k for k in by_trials if k not in order]
    counted: list[str] = []
    while len(counted) < n_regular:
        taken = 0
        for key in order:
            if by_trials[key] and len(counted) < n_regular:
                counted.append(by_trials[key].pop())
                taken += 1
        if not taken:  # every pair used (create_campaign checked there are enough)
            break
    rest = [p for options in by_trials.values() for p in options]
    _, attention = eligible_items(s, row)
    medium = dict(s.execute(select(CttItemRow.uid, CttItemRow.medium).where(CttItemRow.study_id == row.study_id)).all())
    regular_uids = [u for p in counted + rest for u in p.split(PAIR_SEP)]
    for att in rng.sample(attention, k=attention_count(row)):
        alike = [u for u in regular_uids if medium[u] == medium[att]]  # a clip beside a clip, a still beside a still
        if not alike:
            continue
        other = rng.choice(alike)
        counted.append(PAIR_SEP.join((att, other) if rng.random() < 0.5 else (other, att)))
    rng.shuffle(counted)
    return practice, counted
