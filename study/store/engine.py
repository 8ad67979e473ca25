"""The results store's connection: URL handling, the SQLAlchemy engine, sessions and schema upgrade.

`StoreEngine` is the base every part of `study.store.Store` builds on. It normalizes the URL
(`$VIDCOLOR_DB` or `sqlite:///vidcolor.db` by default; SQLite paths made absolute, plain
`postgresql://` run through psycopg 3), brings the database to the newest schema revision
(`study.store.migrations`: creates the tables of a new database, upgrades one made by an older
version through its Alembic revisions, in one transaction, and logs from which revision to which),
and hands out sessions: `_write()` is one transaction, opened on SQLite with `BEGIN IMMEDIATE` so
concurrent writers queue on the busy timeout instead of failing, and WAL mode lets readers never
block the writer. It also holds the name lookups (`_study`, `_trial`) every part shares. A store
pickles as its URL, so it can ride along in a Ray Tune callback.

`StoreEngine(url, create=False)` is how read-only commands open a store: a SQLite file that is not
there is an error naming it (no folder or file is made), and so is a database without our tables.
A file that is not a SQLite database is an error naming it too. `mask_url` is the URL with its
passwords (userinfo and query string) replaced by `***`: the only form of a URL that may be
printed or logged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Connection, Engine, String, cast, create_engine, event, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from models.errors import VidcolorError
from study.store import migrations
from study.store.schema import Base, StudyRow, TrialRow

log = logging.getLogger(__name__)

#: JSON columns that hold an object (a dict) in every row that is not NULL; a damaged file may hold
#: any JSON there (``NaN``, a list), which the readers would trip over. Checked as rows load.
OBJECT_COLUMNS = {
    "vc_studies": ("spec",),
    "vc_trials": ("config", "params", "best_metrics", "last_metrics"),
    "vc_epochs": ("metrics",),
}


class StoredValueError(ValueError):
    """A stored value of the wrong kind, found as its row loads (`_read` and `_write` turn it into a
    VidcolorError naming the database)."""


@event.listens_for(Base, "load", propagate=True)
def _check_loaded_row(row, _context) -> None:
    table = row.__table__.name
    for column in OBJECT_COLUMNS.get(table, ()):
        value = row.__dict__.get(column)
        if value is not None and not isinstance(value, dict):
            raise StoredValueError(
                f"table {table}, row id {row.__dict__.get('id')}, column {column} holds "
                f"{type(value).__name__} {str(value)[:40]!r}, not a JSON object"
            )


def _from_conversion(exc: BaseException) -> bool:
    """Whether ``exc`` was raised converting a stored value (SQLAlchemy's result processors: a
    DATETIME that is no date, a JSON blob that is no text), not by the code reading the rows."""
    tb, last = exc.__traceback__, None
    while tb is not None:
        last, tb = tb, tb.tb_next
    name = last.tb_frame.f_code.co_filename if last is not None else ""
    return "sqlalchemy" in name or name.endswith(("json/__init__.py", "json/decoder.py", "_strptime.py"))


DEFAULT_URL = "sqlite:///vidcolor.db"
BUSY_TIMEOUT_MS = 30_000
# PostgreSQL: the transaction-scoped advisory lock under which one process at a time upgrades (or
# creates) the schema; a second process opening the database waits, then finds it at the head
SCHEMA_LOCK_KEY = 0x76635F73  # "vc_s"

# One lock per SQLite database per process: its writers (the threads of a dashboard or rater server)
# queue here in order, instead of on SQLite's busy handler, whose sleeping back-off (up to 100 ms
# a try) gave votes a p99 above 1 s with 50 raters on one server (bench/votes.py). Writers in other
# processes still meet on the busy timeout.
_WRITE_LOCKS: dict[str, threading.RLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(key: str) -> threading.RLock:
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, threading.RLock())


# The password of a URL's userinfo (``scheme://user:PASSWORD@host``; the user has no ':', '/', '?'
# or '#'): from the first '@', where SQLAlchemy ends it, on to the last '@' before the host's '/',
# so that an unescaped '@' in it is hidden whole.
_PASSWORD = re.compile(r"(://[^:/?#\s]*:)[^@\s]*@(?:[^/@?#\s]*@)*")
# Query parameters that carry a password (libpq reads ``password`` and the client key's
# ``sslpassword`` from the query string, MySQL drivers ``passwd``), any case; the value runs to the
# next parameter, fragment, space or quote.
_PASSWORD_KEYS = ("password", "passwd", "sslpassword")
_QUERY_PASSWORD = re.compile(r"([?&](?:password|passwd|sslpassword)=)[^&#\s'\"]*", re.IGNORECASE)
_MASK = "***"


def mask_url(url: str) -> str:
    """The URL (or a message that holds one) with every password shown as ``***``: the userinfo's
    (``user:***@host``) and any ``password=``, ``passwd=`` or ``sslpassword=`` query parameter, any
    case. The form to print, log or write into any output; the rest of the text is kept as it is.
    Never for connecting: ``***`` is not the password."""
    masked = _PASSWORD.sub(rf"\1{_MASK}@", str(url))
    return _QUERY_PASSWORD.sub(rf"\1{_MASK}", masked)


def has_password(url: str) -> bool:
    """Whether the URL carries a password, in its userinfo or its query (which then must not be
    printed or stored)."""
    try:
        u = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        text = str(url)
        return bool(_PASSWORD.search(text) or _QUERY_PASSWORD.search(text))
    return u.password is not None or any(str(k).lower() in _PASSWORD_KEYS for k in u.query)


def _normalize_url(url: str, create: bool = True) -> str:
    """Absolute SQLite paths (Ray workers and the dashboard run elsewhere); psycopg 3 for PostgreSQL.

    With ``create`` the folder of a new SQLite file is made; without, a missing file is an error."""
    try:
        u = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise VidcolorError(
            f"results database URL {mask_url(url)!r} is not a valid SQLAlchemy URL: {mask_url(str(exc))}"
        ) from None
    if u.drivername in ("postgres", "postgresql"):
        u = u.set(drivername="postgresql+psycopg")
    path = sqlite_path(u)
    if path is not None:
        if path.is_dir():
            raise VidcolorError(f"results database {mask_url(url)!r} names the folder {path}, not a file")
        if not create and not path.is_file():
            raise VidcolorError(f"no results database at {path}; run `vidcolor tune` first or check --db")
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        u = u.set(database=str(path))
    return u.render_as_string(hide_password=False)


def sqlite_path(url) -> Path | None:
    """The absolute file of an on-disk SQLite URL (str or URL); None for other databases, ``:memory:``
    and ``file:`` URIs."""
    u = make_url(url) if isinstance(url, str) else url
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:") or u.database.startswith("file:"):
        return None
    path = Path(u.database).expanduser()
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13), a name too long
        return path.absolute()


def _first_line(error: object) -> str:
    """The first line of a database error, any password in it masked."""
    return (mask_url(str(error)).strip().splitlines() or ["unknown error"])[0]


def _configure_sqlite(engine: Engine) -> None:
    """WAL + busy timeout + foreign keys on each connection; explicit BEGIN (IMMEDIATE for writes).

    pysqlite's own transaction handling is turned off (SQLAlchemy's documented recipe) so that a
    write transaction takes the write lock up front: a deferred one that reads first can fail with
    SQLITE_BUSY without waiting when another writer commits in between.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        immediate = conn.get_execution_options().get("vidcolor_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class StoreEngine:
    """The database behind a store: `StoreEngine(url, create=True)`; `url` defaults to
    `$VIDCOLOR_DB` or `sqlite:///vidcolor.db`. Brings the schema to the newest revision on open
    (creating the tables of a new database); with `create=False` (read-only commands) a database
    that is not there, or holds none of our tables, is an error."""

    def __init__(self, url: str | None = None, *, echo: bool = False, create: bool = True):
        raw = url or os.environ.get("VIDCOLOR_DB") or DEFAULT_URL
        self.url: str = _normalize_url(raw, create)
        self._echo, self._create = echo, create
        self.engine: Engine = self._make_engine()
        try:
            if not create:
                self._check_exists()
            self._bring_schema_to_head()
        except DatabaseError as exc:  # OperationalError too: locked, unreachable, not a database
            self.engine.dispose()
            raise VidcolorError(self._open_error(str(exc.orig if exc.orig is not None else exc))) from None
        except VidcolorError:
            self.engine.dispose()
            raise
        log.debug("results store at %s", self.display_url)

    @property
    def display_url(self) -> str:
        """The URL with any password masked (for logs and tables)."""
        return mask_url(self.url)

    def _open_error(self, reason: str) -> str:
        """The message of a database that cannot be opened, naming its file (SQLite) or masked URL."""
        reason = mask_url(reason).splitlines()[0] if reason.strip() else "unknown error"
        path = sqlite_path(self.url)
        if path is not None and "not a database" in reason:
            return (
                f"results database {path} is damaged or not a SQLite database ({reason}); "
                "give another --db, or restore the file from a copy"
            )
        return f"cannot open the results database {path or self.display_url}: {reason}"

    def _check_exists(self) -> None:
        """For a read-only open: the database holds our tables (else there is nothing to read). A
        SQLite file is looked at through a read-only connection, so not even its header is written."""
        table = StudyRow.__tablename__
        path = sqlite_path(self.url)
        if path is None:
            found = inspect(self.engine).has_table(table)
        else:
            try:
                con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
                try:
                    found = (
                        con.execute(
                            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
                        ).fetchone()
                        is not None
                    )
                finally:
                    con.close()
            except sqlite3.DatabaseError as exc:
                raise VidcolorError(self._open_error(str(exc))) from None
        if not found:
            raise VidcolorError(
                f"no vidcolor results in {path or self.display_url} (no {table} table); "
                "run `vidcolor tune` first or check --db"
            )

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is SQLite."""
        return self.engine.dialect.name == "sqlite"

    @property
    def optuna_storage_url(self) -> str:
        """The URL for `optuna.storages.RDBStorage`: the same database (Optuna's tables don't clash)."""
        return self.url

    def _make_engine(self) -> Engine:
        u = make_url(self.url)
        kwargs: dict[str, Any] = {"echo": self._echo, "future": True}
        if u.get_backend_name() == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}
            if u.database in (None, "", ":memory:"):
                kwargs["poolclass"] = StaticPool  # one shared in-memory database
        else:
            kwargs["pool_pre_ping"] = True
        try:
            engine = create_engine(u, **kwargs)
        except (NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
            raise VidcolorError(
                f"results database {self.display_url}: driver missing ({exc}); "
                "for PostgreSQL install the extra: pip install 'vidcolor[postgres]'"
            ) from None
        except ArgumentError as exc:  # e.g. a SQLite URL with a user or host
            raise VidcolorError(
                f"results database URL {self.display_url!r} is not usable: {mask_url(str(exc)).splitlines()[0]}"
            ) from None
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine)
        return engine

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "echo": self._echo, "create": self._create}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], echo=state.get("echo", False), create=state.get("create", True))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display_url!r})"

    def _bring_schema_to_head(self) -> None:
        """Bring the database to the newest schema revision (`study.store.migrations`) in one write
        transaction: a new database gets the tables, an older one is upgraded, everything or nothing.
        A database already there is only read (the usual open)."""
        with self.engine.connect() as conn:
            if migrations.recorded_revision(conn) == migrations.head():
                return
        start = None
        try:
            with self._schema_transaction() as conn:  # read again under the lock: another process may be done
                start, detected = migrations.current_revision(conn)
                change = migrations.bring_to_head(conn, Base.metadata, start, detected)
        except migrations.SchemaError as exc:
            raise VidcolorError(f"cannot open the results database {self._where()}: {exc}") from None
        except DBAPIError as exc:
            if start is None:
                raise  # a new database: reported as one that cannot be opened
            raise VidcolorError(
                f"cannot upgrade the results database {self._where()} from schema revision "
                f"{start} to {migrations.head()} ({_first_line(exc.orig)}); "
                "it is left as it was"
            ) from None
        if change is not None:
            log.info("results store %s: %s", self.display_url, change.describe())

    @contextmanager
    def _schema_transaction(self) -> Iterator[Connection]:
        """The one transaction of a schema change, taken so that concurrent openers queue: on SQLite
        after this process's write lock with BEGIN IMMEDIATE, on PostgreSQL under an advisory lock."""
        if self.is_sqlite:
            engine, lock = self.engine.execution_options(vidcolor_immediate=True), _write_lock(self.url)
        else:
            engine, lock = self.engine, nullcontext()
        with lock, engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})")
            yield conn

    def _where(self) -> str:
        """The database as errors name it: its file (SQLite) or its masked URL."""
        return str(sqlite_path(self.url) or self.display_url)

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One write transaction (SQLite: BEGIN IMMEDIATE, taken after this process's write lock for
        the file, so the process's writers queue in order and other processes' on the busy timeout)."""
        with self._stored_values():
            if not self.is_sqlite:
                with Session(self.engine, expire_on_commit=False) as session, session.begin():
                    yield session
                return
            engine = self.engine.execution_options(vidcolor_immediate=True)
            with _write_lock(self.url), Session(engine, expire_on_commit=False) as session, session.begin():
                yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        """A session for reading (its rows stay usable after it closes). A JSON column that does not
        decode is a VidcolorError naming the table, row id and column (`_bad_json_error`)."""
        with self._stored_values(), Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def _stored_values(self) -> Iterator[None]:
        """A stored value that does not decode (malformed JSON, a value of the wrong kind, one that
        does not convert) becomes a VidcolorError naming the database and, for JSON, the table, row
        id and column; other errors pass through."""
        try:
            yield
        except json.JSONDecodeError as exc:
            raise self._bad_json_error(exc) from None
        except StoredValueError as exc:
            raise self._bad_value_error(str(exc)) from None
        except (UnicodeDecodeError, ValueError, TypeError) as exc:
            if not _from_conversion(exc):
                raise
            raise self._bad_value_error(f"a stored value does not convert ({exc})") from None

    def _bad_value_error(self, what: str) -> VidcolorError:
        """The error for a stored value of the wrong kind: ``results database FILE: WHAT; restore ...``."""
        return VidcolorError(
            f"results database {self._where()}: {what}; restore the file from a copy or correct that value"
        )

    def _bad_json_error(self, exc: json.JSONDecodeError) -> VidcolorError:
        """The error for a stored JSON value that does not decode: the first such value of any table,
        found by reading every JSON column as text: ``results database FILE: table T, row id N,
        column C holds malformed JSON (...)``."""
        where = self._where()
        try:
            with self.engine.connect() as conn:
                for table in Base.metadata.sorted_tables:
                    columns = [c for c in table.columns if isinstance(c.type, JSON)]
                    if not columns or "id" not in table.columns:
                        continue
                    for col in columns:
                        rows = conn.execute(
                            select(table.c.id, cast(col, String)).where(col.isnot(None)).order_by(table.c.id)
                        )
                        for row_id, text in rows:
                            try:
                                json.loads(text)
                            except (TypeError, ValueError) as bad:
                                reason = bad.msg if isinstance(bad, json.JSONDecodeError) else str(bad)
                                return VidcolorError(
                                    f"results database {where}: table {table.name}, row id {row_id}, column "
                                    f"{col.name} holds malformed JSON ({reason}); restore the file from a copy "
                                    "or correct that value"
                                )
        except DBAPIError:
            pass
        return VidcolorError(f"results database {where}: a stored JSON value is malformed ({exc.msg})")

    def journal_mode(self) -> str | None:
        """SQLite's journal mode ('wal' when the store opened it); None on other databases."""
        if not self.is_sqlite:
            return None
        with self.engine.connect() as conn:
            return str(conn.exec_driver_sql("PRAGMA journal_mode").scalar()).lower()

    # -- name lookups shared by every part of the store ------------------------------------------

    def _study(self, s: Session, name: str) -> StudyRow:
        row = s.scalar(select(StudyRow).where(StudyRow.name == name))
        if row is None:
            raise VidcolorError(f"no study named {name!r} in {self.display_url}")
        return row

    def _trial(self, s: Session, study: str, trial_id: str) -> TrialRow:
        st = self._study(s, study)
        row = s.scalar(select(TrialRow).where(TrialRow.study_id == st.id, TrialRow.trial_id == str(trial_id)))
        if row is None:
            raise VidcolorError(f"study {study!r} has no trial {trial_id!r}")
        return row
