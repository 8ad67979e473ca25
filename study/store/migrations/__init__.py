"""The results store's schema history as Alembic revisions, and bringing a database up to the newest.

Each change of the `vc_` tables is one revision in `versions/` (0001 is the first release's
schema); a database records its revision in `vc_alembic_version`, not in Alembic's default
`alembic_version`, which Optuna's own tables in the same database use. `current_revision` and
`bring_to_head` run inside the caller's transaction, so an upgrade is all done or not at all:

- a database without any `vc_` table gets today's tables (`Base.metadata`) and is stamped with the
  head revision;
- a database made before revisions were recorded (no `vc_alembic_version`) is recognised by its
  tables and columns (`detect_revision`), stamped with that revision, then upgraded;
- any other database is upgraded from the revision it records to the head.

Revisions are written against SQLAlchemy and Alembic only, never against today's `schema` module,
so each stays the change it was. Column renames are plain `ALTER TABLE ... RENAME COLUMN` on SQLite
and PostgreSQL alike, not Alembic's batch mode: batch mode copies a SQLite table and drops the old
one, and with foreign keys on, dropping `vc_ctt_items` deletes every vote on it (ON DELETE CASCADE).

A new schema change: add a revision with `alembic.command.revision(config(), "message",
rev_id="0007")` (it fills `script.py.mako`), write its `upgrade()`, change `schema.py` to match, and
extend `tests/study/store/test_upgrade.py` with a database of the version before it.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, MetaData, column, inspect, select, table

from models.errors import VidcolorError

# Alembic logs a "setup plugin ..." line per built-in plugin when it is imported: noise in every
# command that opens the store with INFO logging (its lines about running revisions stay)
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

from alembic import command  # noqa: E402  (after the logger's level is set)
from alembic.config import Config  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402

VERSION_TABLE = "vc_alembic_version"
SCRIPTS = Path(__file__).resolve().parent

# the first release's tables: a database without revisions holds all of them, or it is not ours
FIRST_TABLES = ("vc_studies", "vc_trials", "vc_epochs", "vc_media", "vc_raters", "vc_ctt_items", "vc_ctt_votes")
# what tells the schema of a database made before revisions were recorded, newest first:
# (revision, table, column that revision added or None for the table itself); none of these: 0001
PRE_REVISION_MARKS = (
    ("0006", "vc_ctt_sessions", "shown_at"),
    ("0005", "vc_ctt_pair_votes", None),
    ("0004", "vc_ctt_campaigns", None),
    ("0003", "vc_media", "media_type"),
    ("0002", "vc_ctt_items", "real_is_color"),
)
FIRST_REVISION = "0001"


class SchemaError(VidcolorError):
    """A database whose `vc_` tables this version cannot bring to its schema (the caller names it)."""


@dataclass(frozen=True)
class Change:
    """What `bring_to_head` did: from `start` (None: a new database) to `end`; `detected` when the
    start was read from the tables (no revision recorded); `steps` the message of each revision run."""

    start: str | None
    end: str
    detected: bool
    steps: tuple[str, ...]

    def describe(self) -> str:
        """The change for the log: from which revision to which, and each revision's message."""
        if self.start is None:
            return f"new database, schema revision {self.end}"
        found = " (found by its tables: made before revisions were recorded)" if self.detected else ""
        if self.start == self.end:
            return f"schema revision {self.end}{found}, now recorded"
        return f"upgraded from schema revision {self.start}{found} to {self.end}" + "".join(
            f"; {step}" for step in self.steps
        )


def config(connection: Connection | None = None) -> Config:
    """An Alembic config of the revisions shipped in this package, running on `connection`."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS).replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def scripts() -> ScriptDirectory:
    """The revisions (read once per process)."""
    return ScriptDirectory.from_config(config())


def head() -> str:
    """The newest revision (the history is one line: more than one head is an error)."""
    return scripts().get_current_head()


def recorded_revision(conn: Connection) -> str | None:
    """The revision `vc_alembic_version` records; None when the table is not there or empty."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(select(column("version_num")).select_from(table(VERSION_TABLE))).scalar()


def detect_revision(conn: Connection) -> str | None:
    """The revision of a database made before revisions were recorded, read from its tables and
    columns; None when it holds no `vc_` table at all (a new database)."""
    insp = inspect(conn)
    ours = {t for t in insp.get_table_names() if t.startswith("vc_") and t != VERSION_TABLE}
    if not ours:
        return None
    missing = [t for t in FIRST_TABLES if t not in ours]
    if missing:
        raise SchemaError(
            f"it holds vidcolor tables ({', '.join(sorted(ours))}) but not {', '.join(missing)}, "
            "so no version of vidcolor made it"
        )
    for revision, tbl, col in PRE_REVISION_MARKS:
        if tbl in ours and (col is None or col in {c["name"] for c in insp.get_columns(tbl)}):
            return revision
    return FIRST_REVISION


def steps_between(start: str, end: str) -> tuple[str, ...]:
    """`"REV message"` of each revision after `start` up to `end`, oldest first."""
    revs = scripts().iterate_revisions(end, start)  # newest first
    return tuple(f"{r.revision} {r.doc}" for r in reversed(list(revs)))


def current_revision(conn: Connection) -> tuple[str | None, bool]:
    """(revision, detected): the recorded revision, else the one its tables show (detected True);
    (None, True) for a database without any `vc_` table."""
    recorded = recorded_revision(conn)
    return (recorded, False) if recorded is not None else (detect_revision(conn), True)


def bring_to_head(conn: Connection, metadata: MetaData, start: str | None, detected: bool) -> Change | None:
    """Bring the database on `conn`, at `start` (from `current_revision`), to the head revision
    inside the caller's transaction (see the module's docstring); None when it is there already.
    `metadata`: today's tables, for a new database. A revision this version does not know is a
    SchemaError."""
    end = head()
    if start == end and not detected:
        return None
    cfg = config(conn)
    if start is None:
        metadata.create_all(conn)
        command.stamp(cfg, end)
        return Change(None, end, False, ())
    known = {r.revision for r in scripts().walk_revisions()}
    if start not in known:
        raise SchemaError(
            f"it is at schema revision {start!r}, which this version of vidcolor does not know "
            f"(its newest is {end!r}): a newer version made it; upgrade vidcolor"
        )
    if detected:
        command.stamp(cfg, start)  # the revision its tables show, then on from there
    if start != end:
        command.upgrade(cfg, end)
    return Change(start, end, detected, steps_between(start, end))
