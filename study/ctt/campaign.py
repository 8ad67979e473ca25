"""`vidcolor ctt campaign create | invite | list | close` and `vidcolor ctt invite revoke`: CTT
campaigns and their invite links.

A link is ``BASE_URL/i/TOKEN`` on the rater server (`vidcolor ctt serve`, study.ctt.rater_app);
the token lets a browser in, for one session or as many as ``--uses`` allows, until ``--expires``
or ``ctt invite revoke``. For a recruiting platform (``--platform prolific|mturk`` or
``--id-param``) the link carries the participant's ids as URL parameters; the printed study URL
has the platform's placeholders in them. See `study.store.campaigns`.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from urllib.parse import urlsplit

from models.errors import VidcolorError
from study.report import format_table
from study.store.campaigns import (
    DEFAULT_PRACTICE_ITEMS,
    DEFAULT_SESSION_ITEMS,
    PLATFORM_PARAMS,
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
    return f"{base_url.rstrip('/')}/i/{token}"


#: how each platform fills its ids into a study URL (Prolific's placeholders; MTurk's external
#: questions add workerId, assignmentId and hitId themselves)
PLACEHOLDERS = {"prolific": "{{{{%{name}%}}}}"}  # str.format: {{%PROLIFIC_PID%}}


def platform_url(link: str, id_params: dict[str, str] | None, platform: str | None) -> str | None:
    """The URL to give the platform: the link with its id parameters as the platform's placeholders
    (Prolific), or None when the platform adds them itself (MTurk) or there are none."""
    if not id_params or platform == "mturk":
        return None
    form = PLACEHOLDERS.get(platform or "", "<{name}>")
    return link + "?" + "&".join(f"{name}={form.format(name=name)}" for name in id_params.values())


UNITS = {"d": "days", "h": "hours", "m": "minutes"}
DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([dhm])$")


def parse_expires(text: str | None, now: dt.datetime | None = None) -> dt.datetime | None:
    """``--expires``: a duration from now (``7d``, ``36h``, ``90m``) or a UTC date / time
    (``2027-01-31``, ``2027-01-31T18:00``); a time in the past or anything else is an error."""
    if not text:
        return None
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    m = DURATION.match(text.strip())
    if m:
        value, unit = float(m.group(1)), m.group(2)
        when = now + dt.timedelta(**{UNITS[unit]: value})
    else:
        try:
            when = dt.datetime.fromisoformat(text.strip())
        except ValueError:
            raise VidcolorError(
                f"--expires must be a duration (7d, 36h, 90m) or a UTC date or time (2027-01-31T18:00), got {text!r}"
            ) from None
        if when.tzinfo is not None:
            when = when.astimezone(dt.UTC).replace(tzinfo=None)
    if when <= now:
        raise VidcolorError(f"--expires {text!r} is in the past ({when:%Y-%m-%d %H:%M} UTC)")
    return when


def id_params_of(args) -> dict[str, str] | None:
    """The URL parameters carrying a participant's ids: the platform's, then each --id-param KEY=NAME."""
    params = dict(PLATFORM_PARAMS[args.platform]) if getattr(args, "platform", None) else {}
    for item in getattr(args, "id_param", None) or []:
        key, sep, name = item.partition("=")
        if not sep:
            raise VidcolorError(f"--id-param must be KEY=NAME (KEY participant, study or session), got {item!r}")
        params[key.strip()] = name.strip()
    return params or None


def consent_of(path: str | None) -> str | None:
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise VidcolorError(f"--consent {path}: cannot read it as UTF-8 text ({exc})") from None
    if not text.strip():
        raise VidcolorError(f"--consent {path}: the file is empty")
    return text


def _trials(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _print_links(
    base_url: str,
    tokens: list[str],
    uses: int | None,
    expires: dt.datetime | None = None,
    id_params: dict[str, str] | None = None,
    platform: str | None = None,
) -> None:
    each = "any number of sessions" if uses is None else f"{uses} session{'s' if uses != 1 else ''}"
    until = f" until {expires:%Y-%m-%d %H:%M} UTC" if expires else ""
    print(f"{len(tokens)} invite link(s), each good for {each}{until}:")
    for token in tokens:
        link = invite_url(base_url, token)
        print(f"  {link}")
        study_url = platform_url(link, id_params, platform)
        if study_url:
            print(f"    study URL for {platform or 'the platform'}: {study_url}")


def main_create(args) -> int:
    from study.store import Store

    store = Store(args.db, create=False)
    study = store.resolve_study(args.study)
    uses = None if args.uses == 0 else args.uses
    check_invites(args.links, uses)  # before anything is written
    check_base_url(args.base_url)
    expires, id_params, consent = parse_expires(args.expires), id_params_of(args), consent_of(args.consent)
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
        consent_text=consent,
        completion_code=args.completion_code,
        screened_code=args.screened_code,
        completion_url=args.completion_url,
        id_params=id_params,
        screen=args.screen,
    )
    shown = f"{camp['display_s']:g} s" if camp["display_s"] else "until answered"
    print(
        f"campaign {camp['name']!r} of study {study}: task {camp['task']}, {camp['practice_items']} practice + "
        f"{camp['session_items']} counted items per session, each shown {shown}, "
        f"{camp['attention_share']:.0%} attention checks"
    )
    extras = [
        "a consent page" if consent else "the default consent page",
        "the colour-vision screen" if args.screen else None,
        f"completion code {args.completion_code}" if args.completion_code else None,
        f"screened-out code {args.screened_code}" if args.screened_code else None,
        f"then to {args.completion_url}" if args.completion_url else None,
        f"participant ids from {', '.join(id_params.values())}" if id_params else None,
    ]
    print("raters get " + ", ".join(e for e in extras if e))
    tokens = store.add_invites(study, args.name, args.links, uses, expires=expires)
    _print_links(args.base_url, tokens, uses, expires, id_params, args.platform)
    print("serve them with: vidcolor ctt serve" + (f" --db {store.display_url}" if args.db else ""))
    return 0


def main_invite(args) -> int:
    from study.store import Store

    store = Store(args.db, create=False)
    study = store.resolve_study(args.study)
    uses = None if args.uses == 0 else args.uses
    check_base_url(args.base_url)
    expires = parse_expires(args.expires)
    id_params = store.campaign_id_params(study, args.name)  # an unknown campaign: an error naming it
    tokens = store.add_invites(study, args.name, args.links, uses, expires=expires)
    _print_links(args.base_url, tokens, uses, expires, id_params, _platform_of(id_params))
    return 0


def _platform_of(id_params: dict[str, str] | None) -> str | None:
    return next((name for name, params in PLATFORM_PARAMS.items() if params == id_params), None)


def main_close(args) -> int:
    from study.store import Store

    store = Store(args.db, create=False)
    study = store.resolve_study(args.study)
    store.close_campaign(study, args.name)
    print(f"campaign {args.name!r} of study {study} is closed: its links open no new session (open ones can finish)")
    return 0


def main_revoke(args) -> int:
    from study.store import Store

    token = args.token.rstrip("/").rsplit("/i/", 1)[-1].split("?", 1)[0]  # a token, or the whole link
    store = Store(args.db, create=False)
    name = store.revoke_invite(token)
    print(f"invite {token[:8]}... of campaign {name!r} is withdrawn: it opens no new session")
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
