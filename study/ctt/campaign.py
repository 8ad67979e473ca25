"""`vidcolor ctt campaign create | invite | list`: CTT campaigns and their invite links.

A link is ``BASE_URL/?invite=TOKEN`` on the rater server (`vidcolor ctt serve`); the token alone
lets a rater in, for one session or as many as ``--uses`` allows. See `study.store.campaigns`.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from models.errors import VidcolorError
from study.report import format_table
from study.store.campaigns import (
    DEFAULT_PRACTICE_ITEMS,
    DEFAULT_SESSION_ITEMS,
    check_invites,
    checks,
    fit_protocol,
    supply_noun,
)


def check_base_url(base_url: str) -> str:
    """``base_url`` when it is an http(s) URL with a host and no whitespace, else a VidcolorError naming it."""
    try:
        parts = urlsplit(base_url)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host or any(c.isspace() for c in base_url):
        raise VidcolorError(
            f"--base-url must be an http:// or https:// URL with a host and no spaces, got {base_url!r}"
        )
    return base_url


def invite_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/?{urlencode({'invite': token})}"


def _trials(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _print_links(base_url: str, tokens: list[str], uses: int | None) -> None:
    each = "any number of sessions" if uses is None else f"{uses} session{'s' if uses != 1 else ''}"
    print(f"{len(tokens)} invite link(s), each good for {each}:")
    for token in tokens:
        print(f"  {invite_url(base_url, token)}")


def main_create(args) -> int:
    from study.store import Store

    store = Store(args.db, create=False)
    study = store.resolve_study(args.study)
    uses = None if args.uses == 0 else args.uses
    check_invites(args.links, uses)  # before anything is written
    check_base_url(args.base_url)
    pairs, practice = args.pairs, args.practice
    if pairs is None or practice is None:  # the defaults, or what the study's items have room for
        regular, attention = store.campaign_supply(study, args.task, _trials(args.trials))
        pairs, practice = fit_protocol(regular, attention, args.attention_share, pairs, practice)
        asked = (
            DEFAULT_SESSION_ITEMS if args.pairs is None else args.pairs,
            DEFAULT_PRACTICE_ITEMS if args.practice is None else args.practice,
        )
        if (pairs, practice) != asked:
            print(
                f"study {study} has {regular} {supply_noun(args.task)} and {checks(attention)} for task "
                f"{args.task}, too few for sessions of {asked[1]} practice + {asked[0]} counted items: "
                f"sessions of {practice} practice + {pairs} counted items instead (build more items with "
                "`vidcolor ctt build`, or set --pairs / --practice)"
            )
    camp = store.create_campaign(
        study,
        args.name,
        task=args.task,
        display_s=args.display_s,
        session_items=pairs,
        practice_items=practice,
        attention_share=args.attention_share,
        trial_ids=_trials(args.trials),
    )
    shown = f"{camp['display_s']:g} s" if camp["display_s"] else "until answered"
    print(
        f"campaign {camp['name']!r} of study {study}: task {camp['task']}, {camp['practice_items']} practice + "
        f"{camp['session_items']} counted items per session, each shown {shown}, "
        f"{camp['attention_share']:.0%} attention checks"
    )
    _print_links(args.base_url, store.add_invites(study, args.name, args.links, uses), uses)
    print("serve them with: vidcolor ctt serve" + (f" --db {store.display_url}" if args.db else ""))
    return 0


def main_invite(args) -> int:
    from study.store import Store

    store = Store(args.db, create=False)
    study = store.resolve_study(args.study)
    uses = None if args.uses == 0 else args.uses
    check_base_url(args.base_url)
    _print_links(args.base_url, store.add_invites(study, args.name, args.links, uses), uses)
    return 0


def main_list(args) -> int:
    from study.store import Store

    store = Store(args.db, create=False)
    study = store.resolve_study(args.study)
    df = store.campaigns(study)
    if df.empty:
        print(f"study {study} has no campaigns (vidcolor ctt campaign create --name NAME)")
        return 0
    rows = []
    for _, c in df.iterrows():
        votes = store.campaign_votes(study, c["name"])
        rows.append(
            (
                c["name"],
                c["task"],
                c["display_s"],
                c["practice_items"],
                c["session_items"],
                "open" if c["is_open"] else "closed",
                c["invites"],
                c["sessions"],
                c["finished_sessions"],
                len(votes),
            )
        )
    print(
        format_table(
            ("campaign", "task", "display s", "practice", "pairs", "state", "links", "sessions", "finished", "votes"),
            rows,
        )
    )
    return 0
