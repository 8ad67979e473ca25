"""The results store: studies, trials, per-epoch metrics, sample media and Color Turing Test votes.

One SQLAlchemy 2 database holds everything a study produces, so the Tune driver writes it live, the
dashboard reads it, and raters' votes land beside the trials they judge. SQLite is the default
(`$VIDCOLOR_DB` or `sqlite:///vidcolor.db`, WAL mode so readers never block the writer, a busy
timeout, write transactions opened with `BEGIN IMMEDIATE` so concurrent writers queue instead of
failing); PostgreSQL works by URL through psycopg (`pip install vidcolor[postgres]`).

Every table name starts with `vc_`: the Optuna study lives in the same database (pass `Store.url`
to `optuna.storages.RDBStorage`) and Optuna owns plain `studies`, `trials`, ... tables.

Each write method is one transaction; read methods return pandas DataFrames. This module imports
neither torch nor Ray (the dashboard imports it at start-up).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import random
import secrets
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import StaticPool

from models.errors import VidcolorError

log = logging.getLogger(__name__)

DEFAULT_URL = "sqlite:///vidcolor.db"
TRIAL_STATUSES = ("PENDING", "RUNNING", "TERMINATED", "STOPPED", "ERROR")
STUDY_STATUSES = ("RUNNING", "FINISHED", "INTERRUPTED", "ERROR")
MODES = ("min", "max")
CTT_KINDS = ("clip", "frame")
VOTE_MODES = ("2afc", "rating")
SIDES = ("left", "right")
BUSY_TIMEOUT_MS = 30_000


def utcnow() -> dt.datetime:
    """Naive UTC now (SQLite keeps no time zone; every timestamp in the store is UTC)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)



# keys a training loop reports beside its metrics; never flattened into metric columns
_BOOKKEEPING = frozenset({"epoch", "trial_id", "experiment", "time"})

class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class StudyRow(Base):
    __tablename__ = "vc_studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    objective: Mapped[str] = mapped_column(String(100))
    mode: Mapped[str] = mapped_column(String(3))
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(20), default="RUNNING")
    storage_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    shards: Mapped[str | None] = mapped_column(Text, nullable=True)


class TrialRow(Base):
    __tablename__ = "vc_trials"
    __table_args__ = (UniqueConstraint("study_id", "trial_id", name="uq_vc_trial_study_trial"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("vc_studies.id", ondelete="CASCADE"), index=True)
    trial_id: Mapped[str] = mapped_column(String(100))  # Ray Tune's trial id
    experiment: Mapped[str | None] = mapped_column(String(100), nullable=True)  # preset name, e.g. exp2
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the full configuration
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # searched hyperparameters only
    status: Mapped[str] = mapped_column(String(20), default="RUNNING")
    started: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    ended: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    best_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    last_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    best_epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    checkpoint: Mapped[str | None] = mapped_column(Text, nullable=True)  # best checkpoint folder
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class EpochRow(Base):
    __tablename__ = "vc_epochs"
    __table_args__ = (UniqueConstraint("trial_pk", "epoch", name="uq_vc_epoch_trial_epoch"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    trial_pk: Mapped[int] = mapped_column(ForeignKey("vc_trials.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    time: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class MediaRow(Base):
    __tablename__ = "vc_media"
    __table_args__ = (UniqueConstraint("trial_pk", "path", name="uq_vc_media_trial_path"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    trial_pk: Mapped[int] = mapped_column(ForeignKey("vc_trials.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))  # gray_png, pred_png, gt_png, gray_mp4, pred_mp4, gt_mp4
    path: Mapped[str] = mapped_column(Text)
    video_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    clip: Mapped[int | None] = mapped_column(Integer, nullable=True)
    frame: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class RaterRow(Base):
    __tablename__ = "vc_raters"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class CttItemRow(Base):
    __tablename__ = "vc_ctt_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(64), unique=True)  # random: reveals neither side nor trial
    study_id: Mapped[int] = mapped_column(ForeignKey("vc_studies.id", ondelete="CASCADE"), index=True)
    trial_pk: Mapped[int | None] = mapped_column(ForeignKey("vc_trials.id", ondelete="CASCADE"), nullable=True)
    real_path: Mapped[str] = mapped_column(Text)
    fake_path: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(10), default="clip")
    is_attention: Mapped[bool] = mapped_column(Boolean, default=False)
    video_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    clip: Mapped[int | None] = mapped_column(Integer, nullable=True)
    frame: Mapped[int | None] = mapped_column(Integer, nullable=True)  # frame index for kind "frame"
    split: Mapped[str | None] = mapped_column(String(40), nullable=True)  # test | val | legacy
    source: Mapped[str | None] = mapped_column(Text, nullable=True)  # the original video (manifest source)
    # False when the original is black and white (legacy footage): no "which is real" pair, the item
    # is only shown in the 1-5 rating mode (the colorized clip alone)
    real_is_color: Mapped[bool] = mapped_column(Boolean, default=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


# columns added to vc_ctt_items after its first release: added to older databases on open
_CTT_ITEM_ADDED = {"frame": "INTEGER", "split": "VARCHAR(40)", "source": "TEXT",
                   "real_is_color": "BOOLEAN NOT NULL DEFAULT TRUE"}


class CttVoteRow(Base):
    __tablename__ = "vc_ctt_votes"
    __table_args__ = (
        UniqueConstraint("rater_id", "item_id", name="uq_vc_vote_rater_item"),
        CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="ck_vc_vote_rating"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    rater_id: Mapped[str] = mapped_column(ForeignKey("vc_raters.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("vc_ctt_items.id", ondelete="CASCADE"), index=True)
    choice: Mapped[str | None] = mapped_column(String(5), nullable=True)  # displayed side picked: left|right
    picked_real: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # False = fooled
    response_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 1-5 naturalness
    mode: Mapped[str] = mapped_column(String(10), default="2afc")
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy/torch scalars -> Python numbers, NaN/inf -> None (PostgreSQL's JSON
    has no NaN), tuples -> lists, paths -> strings."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        try:
            return _jsonable(value.item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def _finite(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _normalize_url(url: str) -> str:
    """Absolute SQLite paths (Ray workers and the dashboard run elsewhere); psycopg 3 for PostgreSQL."""
    try:
        u = make_url(url)
    except ArgumentError as exc:
        raise VidcolorError(f"results database URL {url!r} is not a valid SQLAlchemy URL: {exc}") from None
    if u.drivername in ("postgres", "postgresql"):
        u = u.set(drivername="postgresql+psycopg")
    if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:") and not u.database.startswith("file:"):
        path = Path(u.database).expanduser().resolve()
        if path.is_dir():
            raise VidcolorError(f"results database {url!r} names the folder {path}, not a file")
        path.parent.mkdir(parents=True, exist_ok=True)
        u = u.set(database=str(path))
    return u.render_as_string(hide_password=False)


class Store:
    """The results database. `Store(url)`; `url` defaults to `$VIDCOLOR_DB` or `sqlite:///vidcolor.db`.

    Studies and trials are addressed by name: `study` is the study's unique name and `trial_id`
    Ray Tune's trial id (unique within the study). Pickles as its URL, so it can ride along in a
    Tune callback.
    """

    def __init__(self, url: str | None = None, *, echo: bool = False):
        raw = url or os.environ.get("VIDCOLOR_DB") or DEFAULT_URL
        self.url: str = _normalize_url(raw)
        self._echo = echo
        self.engine: Engine = self._make_engine()
        try:
            Base.metadata.create_all(self.engine)
            self._upgrade_schema()
        except OperationalError as exc:
            raise VidcolorError(f"cannot open the results database {self.display_url}: {exc.orig}") from None
        log.debug("results store at %s", self.display_url)

    # -- plumbing ---------------------------------------------------------------------------------

    @property
    def display_url(self) -> str:
        """The URL with any password masked (for logs and tables)."""
        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def is_sqlite(self) -> bool:
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
                "for PostgreSQL install the extra: pip install 'vidcolor[postgres]'") from None
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine)
        return engine

    def close(self) -> None:
        self.engine.dispose()

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "echo": self._echo}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], echo=state.get("echo", False))

    def __repr__(self) -> str:
        return f"Store({self.display_url!r})"

    def _upgrade_schema(self) -> None:
        """Add the CTT item columns a database made by an older version lacks (nothing is lost)."""
        from sqlalchemy import inspect

        have = {c["name"] for c in inspect(self.engine).get_columns(CttItemRow.__tablename__)}
        missing = {k: v for k, v in _CTT_ITEM_ADDED.items() if k not in have}
        if not missing:
            return
        with self.engine.begin() as conn:
            for name, ddl in missing.items():
                conn.exec_driver_sql(f"ALTER TABLE {CttItemRow.__tablename__} ADD COLUMN {name} {ddl}")
        log.info("results store %s: added column(s) %s to %s", self.display_url, sorted(missing),
                 CttItemRow.__tablename__)

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One write transaction (SQLite: BEGIN IMMEDIATE, so writers queue on the busy timeout)."""
        engine = self.engine.execution_options(vidcolor_immediate=True) if self.is_sqlite else self.engine
        with Session(engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def journal_mode(self) -> str | None:
        """SQLite's journal mode ('wal' when the store opened it); None on other databases."""
        if not self.is_sqlite:
            return None
        with self.engine.connect() as conn:
            return str(conn.exec_driver_sql("PRAGMA journal_mode").scalar()).lower()

    # -- studies ----------------------------------------------------------------------------------

    def create_study(self, name: str, *, objective: str, mode: str = "min", spec: Mapping[str, Any] | None = None,
                     storage_path: str | None = None, shards: str | None = None,
                     exist_ok: bool = False) -> dict[str, Any]:
        """Create a study; with `exist_ok` return the existing one (a resumed study), else refuse."""
        if not name or not isinstance(name, str):
            raise VidcolorError(f"study name must be a non-empty string, got {name!r}")
        if mode not in MODES:
            raise VidcolorError(f"study {name!r}: mode must be one of {MODES}, got {mode!r}")
        if not objective:
            raise VidcolorError(f"study {name!r}: objective metric is empty")
        with self._write() as s:
            row = s.scalar(select(StudyRow).where(StudyRow.name == name))
            if row is not None:
                if not exist_ok:
                    raise VidcolorError(f"study {name!r} already exists in {self.display_url} (resume it or pick another name)")
                if row.objective != objective or row.mode != mode:
                    raise VidcolorError(
                        f"study {name!r} exists with objective {row.objective} ({row.mode}), "
                        f"not {objective} ({mode})")
                row.status = "RUNNING"
                if storage_path is not None:
                    row.storage_path = str(storage_path)
                if shards is not None:
                    row.shards = str(shards)
            else:
                row = StudyRow(name=name, spec=_jsonable(dict(spec or {})), objective=objective, mode=mode,
                               storage_path=None if storage_path is None else str(storage_path),
                               shards=None if shards is None else str(shards), status="RUNNING")
                s.add(row)
                s.flush()
            return _study_dict(row)

    def get_study(self, name: str) -> dict[str, Any] | None:
        """The study as a dict (id, name, spec, objective, mode, created, status, storage_path, shards)."""
        with self._read() as s:
            row = s.scalar(select(StudyRow).where(StudyRow.name == name))
            return None if row is None else _study_dict(row)

    def latest_study(self) -> dict[str, Any] | None:
        with self._read() as s:
            row = s.scalar(select(StudyRow).order_by(StudyRow.created.desc(), StudyRow.id.desc()).limit(1))
            return None if row is None else _study_dict(row)

    def set_study_status(self, name: str, status: str) -> None:
        if status not in STUDY_STATUSES:
            raise VidcolorError(f"study status must be one of {STUDY_STATUSES}, got {status!r}")
        with self._write() as s:
            self._study(s, name).status = status

    def studies(self) -> pd.DataFrame:
        """One row per study: name, objective, mode, status, created, shards, storage_path, trials,
        finished, running, failed, best (the best objective value over trials)."""
        with self._read() as s:
            rows = s.scalars(select(StudyRow).order_by(StudyRow.created, StudyRow.id)).all()
            trials = s.execute(select(TrialRow.study_id, TrialRow.status, TrialRow.best_metrics)).all()
        out = []
        for st in rows:
            mine = [t for t in trials if t.study_id == st.id]
            values = [v for t in mine if (v := _finite((t.best_metrics or {}).get(st.objective))) is not None]
            best = (min(values) if st.mode == "min" else max(values)) if values else None
            out.append({
                "name": st.name, "objective": st.objective, "mode": st.mode, "status": st.status,
                "created": st.created, "shards": st.shards, "storage_path": st.storage_path,
                "trials": len(mine),
                "finished": sum(t.status in ("TERMINATED", "STOPPED") for t in mine),
                "running": sum(t.status == "RUNNING" for t in mine),
                "failed": sum(t.status == "ERROR" for t in mine),
                "best": best,
            })
        cols = ["name", "objective", "mode", "status", "created", "shards", "storage_path", "trials",
                "finished", "running", "failed", "best"]
        return pd.DataFrame(out, columns=cols)

    # -- trials -----------------------------------------------------------------------------------

    def upsert_trial(self, study: str, trial_id: str, *, experiment: str | None = None,
                     config: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None,
                     status: str | None = None, started: dt.datetime | None = None,
                     checkpoint: str | None = None) -> None:
        """Insert the trial or update the given fields (None leaves a field as it is). A new trial
        starts RUNNING, started now."""
        if status is not None and status not in TRIAL_STATUSES:
            raise VidcolorError(f"trial {trial_id}: status must be one of {TRIAL_STATUSES}, got {status!r}")
        with self._write() as s:
            st = self._study(s, study)
            row = s.scalar(select(TrialRow).where(TrialRow.study_id == st.id, TrialRow.trial_id == str(trial_id)))
            if row is None:
                row = TrialRow(study_id=st.id, trial_id=str(trial_id), status=status or "RUNNING",
                               started=started or utcnow(), config={}, params={})
                s.add(row)
            elif status is not None:
                row.status = status
                if status in ("RUNNING", "PENDING"):
                    row.ended = None
                    row.error = None
            if started is not None:
                row.started = started
            if experiment is not None:
                row.experiment = experiment
            if config is not None:
                row.config = _jsonable(dict(config))
            if params is not None:
                row.params = _jsonable(dict(params))
            if checkpoint is not None:
                row.checkpoint = str(checkpoint)

    def log_epoch(self, study: str, trial_id: str, epoch: int, metrics: Mapping[str, Any], *,
                  checkpoint: str | None = None, time: dt.datetime | None = None) -> bool:
        """Upsert one epoch's metrics, update the trial's last metrics and, when the study's objective
        improved (NaN never does), its best metrics, best epoch and (if given) best checkpoint.
        Creates the trial if needed. Returns whether this epoch is now the trial's best."""
        epoch = int(epoch)
        clean = _jsonable(dict(metrics))
        with self._write() as s:
            st = self._study(s, study)
            trial = s.scalar(select(TrialRow).where(TrialRow.study_id == st.id, TrialRow.trial_id == str(trial_id)))
            if trial is None:
                trial = TrialRow(study_id=st.id, trial_id=str(trial_id), status="RUNNING", started=utcnow(),
                                 config={}, params={})
                s.add(trial)
                s.flush()
            row = s.scalar(select(EpochRow).where(EpochRow.trial_pk == trial.id, EpochRow.epoch == epoch))
            if row is None:
                s.add(EpochRow(trial_pk=trial.id, epoch=epoch, metrics=clean, time=time or utcnow()))
            else:
                row.metrics = clean
                row.time = time or utcnow()
            latest = s.scalar(select(func.max(EpochRow.epoch)).where(EpochRow.trial_pk == trial.id))
            if latest is None or epoch >= latest:
                trial.last_metrics = clean
            value = _finite(clean.get(st.objective))
            best = _finite((trial.best_metrics or {}).get(st.objective))
            improved = value is not None and (
                best is None or trial.best_epoch == epoch
                or (value < best if st.mode == "min" else value > best))
            if improved:
                trial.best_metrics = clean
                trial.best_epoch = epoch
                if checkpoint is not None:
                    trial.checkpoint = str(checkpoint)
            return improved

    def finish_trial(self, study: str, trial_id: str, status: str = "TERMINATED", *, error: str | None = None,
                     checkpoint: str | None = None, ended: dt.datetime | None = None) -> None:
        """Mark a trial TERMINATED (ran to the end), STOPPED (early-stopped by ASHA) or ERROR."""
        if status not in ("TERMINATED", "STOPPED", "ERROR"):
            raise VidcolorError(f"trial {trial_id}: a finished status is TERMINATED, STOPPED or ERROR, not {status!r}")
        with self._write() as s:
            trial = self._trial(s, study, trial_id)
            trial.status = status
            trial.ended = ended or utcnow()
            if error is not None:
                trial.error = str(error)
            if checkpoint is not None:
                trial.checkpoint = str(checkpoint)

    def get_trial(self, study: str, trial_id: str) -> dict[str, Any] | None:
        """One trial as a dict (the stored fields, with `epochs` = number of logged epochs)."""
        with self._read() as s:
            st = s.scalar(select(StudyRow).where(StudyRow.name == study))
            if st is None:
                return None
            row = s.scalar(select(TrialRow).where(TrialRow.study_id == st.id, TrialRow.trial_id == str(trial_id)))
            if row is None:
                return None
            n = s.scalar(select(func.count()).select_from(EpochRow).where(EpochRow.trial_pk == row.id))
            return {**_trial_dict(row), "study": st.name, "epochs": int(n or 0)}

    def trials(self, study: str) -> pd.DataFrame:
        """One row per trial: trial_id, experiment, status, started, ended, duration_s, epochs,
        best_epoch, checkpoint, error, objective (best value of the study's objective), then
        `param_<name>` for searched hyperparameters, `best_<metric>`, `last_<metric>`, and `config`
        (dict). Ordered by start time."""
        with self._read() as s:
            st = self._study(s, study)
            rows = s.scalars(select(TrialRow).where(TrialRow.study_id == st.id)
                             .order_by(TrialRow.started, TrialRow.id)).all()
            counts = dict(s.execute(select(EpochRow.trial_pk, func.count()).join(TrialRow)
                                    .where(TrialRow.study_id == st.id).group_by(EpochRow.trial_pk)).all())
        base = ["trial_id", "experiment", "status", "started", "ended", "duration_s", "epochs", "best_epoch",
                "checkpoint", "error", "objective"]
        out, extra = [], {}
        for r in rows:
            rec: dict[str, Any] = {
                "trial_id": r.trial_id, "experiment": r.experiment, "status": r.status, "started": r.started,
                "ended": r.ended,
                "duration_s": (r.ended - r.started).total_seconds() if r.ended and r.started else None,
                "epochs": int(counts.get(r.id, 0)), "best_epoch": r.best_epoch, "checkpoint": r.checkpoint,
                "error": r.error, "objective": _finite((r.best_metrics or {}).get(st.objective)),
            }
            for prefix, values in (("param_", r.params), ("best_", r.best_metrics), ("last_", r.last_metrics)):
                for k, v in (values or {}).items():
                    if prefix != "param_" and k in _BOOKKEEPING:
                        continue  # `epoch` is a column of its own (best_epoch), not a metric
                    rec[prefix + k] = v if not isinstance(v, (dict, list)) else str(v)
                    extra.setdefault(prefix + k, None)
            rec["config"] = r.config or {}
            out.append(rec)
        ordered = base + sorted(c for c in extra if c.startswith("param_")) + sorted(
            c for c in extra if c.startswith("best_")) + sorted(c for c in extra if c.startswith("last_")) + ["config"]
        return pd.DataFrame(out, columns=ordered)

    def epochs(self, study: str, trial_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """One row per (trial, epoch): trial_id, experiment, epoch, time, then one column per metric."""
        with self._read() as s:
            st = self._study(s, study)
            q = (select(TrialRow.trial_id, TrialRow.experiment, EpochRow.epoch, EpochRow.time, EpochRow.metrics)
                 .join(TrialRow, EpochRow.trial_pk == TrialRow.id).where(TrialRow.study_id == st.id)
                 .order_by(TrialRow.trial_id, EpochRow.epoch))
            if trial_ids is not None:
                q = q.where(TrialRow.trial_id.in_([str(t) for t in trial_ids]))
            rows = s.execute(q).all()
        metric_cols = sorted({k for r in rows for k in (r.metrics or {})} - _BOOKKEEPING)
        out = [{"trial_id": r.trial_id, "experiment": r.experiment, "epoch": r.epoch, "time": r.time,
                **{k: (r.metrics or {}).get(k) for k in metric_cols}} for r in rows]
        return pd.DataFrame(out, columns=["trial_id", "experiment", "epoch", "time", *metric_cols])

    # -- media ------------------------------------------------------------------------------------

    def add_media(self, study: str, trial_id: str, kind: str, path: str | os.PathLike, *,
                  video_id: str | None = None, clip: int | None = None, frame: int | None = None) -> None:
        """Register a sample file of a trial (re-adding the same path updates it)."""
        self.add_media_many(study, trial_id, [{"kind": kind, "path": path, "video_id": video_id, "clip": clip,
                                               "frame": frame}])

    def add_media_many(self, study: str, trial_id: str, items: Iterable[Mapping[str, Any]]) -> int:
        """Register many media files of a trial in one transaction; each item has kind, path and
        optionally video_id, clip, frame. Returns the number of items."""
        n = 0
        with self._write() as s:
            trial = self._trial(s, study, trial_id)
            for item in items:
                if not item.get("kind") or not item.get("path"):
                    raise VidcolorError(f"media item {n} of trial {trial_id}: kind and path are required, got {dict(item)!r}")
                path = os.fspath(item["path"])
                row = s.scalar(select(MediaRow).where(MediaRow.trial_pk == trial.id, MediaRow.path == path))
                if row is None:
                    row = MediaRow(trial_pk=trial.id, path=path)
                    s.add(row)
                row.kind, row.video_id = str(item["kind"]), item.get("video_id")
                row.clip = None if item.get("clip") is None else int(item["clip"])
                row.frame = None if item.get("frame") is None else int(item["frame"])
                row.created = utcnow()
                n += 1
        return n

    def media(self, study: str, trial_id: str | None = None) -> pd.DataFrame:
        """One row per media file: trial_id, experiment, kind, path, video_id, clip, frame, created."""
        with self._read() as s:
            st = self._study(s, study)
            q = (select(TrialRow.trial_id, TrialRow.experiment, MediaRow.kind, MediaRow.path, MediaRow.video_id,
                        MediaRow.clip, MediaRow.frame, MediaRow.created)
                 .join(TrialRow, MediaRow.trial_pk == TrialRow.id).where(TrialRow.study_id == st.id)
                 .order_by(TrialRow.trial_id, MediaRow.video_id, MediaRow.clip, MediaRow.kind, MediaRow.frame))
            if trial_id is not None:
                q = q.where(TrialRow.trial_id == str(trial_id))
            rows = s.execute(q).all()
        cols = ["trial_id", "experiment", "kind", "path", "video_id", "clip", "frame", "created"]
        return pd.DataFrame([tuple(r) for r in rows], columns=cols)

    # -- raters and the Color Turing Test ---------------------------------------------------------

    def add_rater(self, name: str | None = None) -> str:
        """The rater id for `name` (created on first use), or a new anonymous rater without a name."""
        name = (name or "").strip() or None
        for _ in range(3):
            try:
                with self._write() as s:
                    if name is not None:
                        existing = s.scalar(select(RaterRow.id).where(RaterRow.name == name))
                        if existing is not None:
                            return existing
                    rater_id = secrets.token_hex(8)
                    s.add(RaterRow(id=rater_id, name=name))
                return rater_id
            except IntegrityError:  # the same name registered at the same moment: read it back
                continue
        raise VidcolorError(f"could not register rater {name!r}")

    def raters(self) -> pd.DataFrame:
        with self._read() as s:
            rows = s.execute(select(RaterRow.id, RaterRow.name, RaterRow.created).order_by(RaterRow.created)).all()
        return pd.DataFrame([tuple(r) for r in rows], columns=["rater_id", "name", "created"])

    def add_ctt_items(self, study: str, items: Iterable[Mapping[str, Any]]) -> list[str]:
        """Add CTT items; each a mapping with real_path, fake_path and optionally trial_id (None for
        attention checks), kind ('clip'|'frame'), is_attention, video_id, clip, frame, split,
        source, real_is_color (default True; False for a black-and-white original, whose item only
        the rating mode shows), uid. Returns the item uids (random hex unless given), in order.
        All or nothing."""
        uids = []
        with self._write() as s:
            st = self._study(s, study)
            for i, item in enumerate(items):
                for key in ("real_path", "fake_path"):
                    if not item.get(key):
                        raise VidcolorError(f"CTT item {i}: field {key!r} is missing")
                kind = item.get("kind", "clip")
                if kind not in CTT_KINDS:
                    raise VidcolorError(f"CTT item {i}: kind must be one of {CTT_KINDS}, got {kind!r}")
                trial_pk = None
                if item.get("trial_id") is not None:
                    trial_pk = self._trial(s, study, item["trial_id"]).id
                uid = str(item.get("uid") or secrets.token_hex(8))
                s.add(CttItemRow(uid=uid, study_id=st.id, trial_pk=trial_pk, real_path=os.fspath(item["real_path"]),
                                 fake_path=os.fspath(item["fake_path"]), kind=kind,
                                 is_attention=bool(item.get("is_attention", False)),
                                 video_id=item.get("video_id"),
                                 clip=None if item.get("clip") is None else int(item["clip"]),
                                 frame=None if item.get("frame") is None else int(item["frame"]),
                                 split=item.get("split"),
                                 source=None if item.get("source") is None else os.fspath(item["source"]),
                                 real_is_color=bool(item.get("real_is_color", True))))
                uids.append(uid)
        return uids

    def ctt_items(self, study: str) -> pd.DataFrame:
        """One row per CTT item: uid, trial_id, experiment, kind, is_attention, video_id, clip,
        real_path, fake_path, created, votes, frame, split, source, real_is_color."""
        with self._read() as s:
            st = self._study(s, study)
            votes = (select(CttVoteRow.item_id, func.count().label("n")).group_by(CttVoteRow.item_id).subquery())
            rows = s.execute(
                select(CttItemRow.uid, TrialRow.trial_id, TrialRow.experiment, CttItemRow.kind, CttItemRow.is_attention,
                       CttItemRow.video_id, CttItemRow.clip, CttItemRow.real_path, CttItemRow.fake_path,
                       CttItemRow.created, func.coalesce(votes.c.n, 0), CttItemRow.frame, CttItemRow.split,
                       CttItemRow.source, CttItemRow.real_is_color)
                .outerjoin(TrialRow, CttItemRow.trial_pk == TrialRow.id)
                .outerjoin(votes, votes.c.item_id == CttItemRow.id)
                .where(CttItemRow.study_id == st.id).order_by(CttItemRow.id)).all()
        cols = ["uid", "trial_id", "experiment", "kind", "is_attention", "video_id", "clip", "real_path",
                "fake_path", "created", "votes", "frame", "split", "source", "real_is_color"]
        return pd.DataFrame([tuple(r) for r in rows], columns=cols)

    def get_ctt_item(self, uid: str) -> dict[str, Any] | None:
        with self._read() as s:
            row = s.scalar(select(CttItemRow).where(CttItemRow.uid == uid))
            return None if row is None else _item_dict(row)

    def next_ctt_item(self, study: str, rater_id: str, *, kind: str | None = None, mode: str | None = None,
                      rng: random.Random | None = None) -> dict[str, Any] | None:
        """An item of the study this rater has not voted on, drawn at random among the least-voted
        ones; None when the rater has seen them all. `kind` ('clip'|'frame') narrows the draw;
        `mode='2afc'` draws only items with a color original (a "which is real" pair), 'rating'
        (or None) any item. The dict has uid, real_path, fake_path, kind, is_attention, video_id,
        clip, frame, real_is_color (no trial: the page must not know it)."""
        if mode is not None and mode not in VOTE_MODES:
            raise VidcolorError(f"CTT mode must be one of {VOTE_MODES}, got {mode!r}")
        if kind is not None and kind not in CTT_KINDS:
            raise VidcolorError(f"CTT kind must be one of {CTT_KINDS}, got {kind!r}")
        with self._read() as s:
            st = self._study(s, study)
            seen = select(CttVoteRow.item_id).where(CttVoteRow.rater_id == rater_id)
            votes = select(CttVoteRow.item_id, func.count().label("n")).group_by(CttVoteRow.item_id).subquery()
            q = (select(CttItemRow, func.coalesce(votes.c.n, 0).label("n"))
                 .outerjoin(votes, votes.c.item_id == CttItemRow.id)
                 .where(CttItemRow.study_id == st.id, CttItemRow.id.not_in(seen)))
            if kind is not None:
                q = q.where(CttItemRow.kind == kind)
            if mode == "2afc":
                q = q.where(CttItemRow.real_is_color.is_(True))
            rows = s.execute(q).all()
            if not rows:
                return None
            least = min(n for _, n in rows)
            pick = (rng or random).choice([item for item, n in rows if n == least])
            return _item_dict(pick)

    def record_vote(self, rater_id: str, item_uid: str, *, choice: str | None = None,
                    picked_real: bool | None = None, response_ms: float | None = None,
                    rating: int | None = None, mode: str = "2afc") -> bool:
        """Store one vote in its own transaction. `choice` is the displayed side the rater picked
        ('left'|'right'), `picked_real` whether that side showed the real clip; in 'rating' mode
        `rating` (1-5) is required and the choice optional. Returns False (and stores nothing) when
        this rater already voted on this item; never raises for that."""
        if mode not in VOTE_MODES:
            raise VidcolorError(f"vote mode must be one of {VOTE_MODES}, got {mode!r}")
        if choice is not None and choice not in SIDES:
            raise VidcolorError(f"vote choice must be one of {SIDES}, got {choice!r}")
        if rating is not None and (int(rating) != rating or not 1 <= int(rating) <= 5):
            raise VidcolorError(f"rating must be an integer 1-5, got {rating!r}")
        if mode == "2afc" and (choice is None or picked_real is None):
            raise VidcolorError("a 2afc vote needs both choice and picked_real")
        if mode == "rating" and rating is None:
            raise VidcolorError("a rating vote needs rating 1-5")
        try:
            with self._write() as s:
                row = s.execute(select(CttItemRow.id, CttItemRow.real_is_color)
                                .where(CttItemRow.uid == item_uid)).first()
                if row is None:
                    raise VidcolorError(f"unknown CTT item {item_uid!r}")
                item_id, real_is_color = row
                if mode == "2afc" and not real_is_color:
                    raise VidcolorError(f"CTT item {item_uid!r} has a black-and-white original: "
                                        "it takes rating votes only, not 2afc")
                if s.get(RaterRow, rater_id) is None:
                    raise VidcolorError(f"unknown rater {rater_id!r}")
                s.add(CttVoteRow(rater_id=rater_id, item_id=item_id, choice=choice,
                                 picked_real=None if picked_real is None else bool(picked_real),
                                 response_ms=None if response_ms is None else float(response_ms),
                                 rating=None if rating is None else int(rating), mode=mode))
            return True
        except IntegrityError:
            log.info("duplicate vote of rater %s on item %s refused", rater_id, item_uid)
            return False

    def votes(self, study: str | None = None) -> pd.DataFrame:
        """One row per vote: rater_id, rater, item uid, trial_id, experiment, kind, is_attention,
        video_id, clip, choice, picked_real, fooled (picked the colorized side), response_ms,
        rating, mode, created."""
        with self._read() as s:
            q = (select(CttVoteRow.rater_id, RaterRow.name, CttItemRow.uid, TrialRow.trial_id, TrialRow.experiment,
                        CttItemRow.kind, CttItemRow.is_attention, CttItemRow.video_id, CttItemRow.clip,
                        CttVoteRow.choice, CttVoteRow.picked_real, CttVoteRow.response_ms, CttVoteRow.rating,
                        CttVoteRow.mode, CttVoteRow.created)
                 .join(CttItemRow, CttVoteRow.item_id == CttItemRow.id)
                 .join(RaterRow, CttVoteRow.rater_id == RaterRow.id)
                 .outerjoin(TrialRow, CttItemRow.trial_pk == TrialRow.id)
                 .order_by(CttVoteRow.id))
            if study is not None:
                q = q.where(CttItemRow.study_id == self._study(s, study).id)
            rows = s.execute(q).all()
        cols = ["rater_id", "rater", "uid", "trial_id", "experiment", "kind", "is_attention", "video_id", "clip",
                "choice", "picked_real", "response_ms", "rating", "mode", "created"]
        df = pd.DataFrame([tuple(r) for r in rows], columns=cols)
        df.insert(cols.index("picked_real") + 1, "fooled",
                  df["picked_real"].map(lambda v: None if v is None or pd.isna(v) else not bool(v)))
        return df

    # -- lookups ----------------------------------------------------------------------------------

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


def _configure_sqlite(engine: Engine) -> None:
    """WAL + busy timeout + foreign keys on each connection; explicit BEGIN (IMMEDIATE for writes).

    pysqlite's own transaction handling is turned off (SQLAlchemy's documented recipe) so that a
    write transaction takes the write lock up front: a deferred one that reads first can fail with
    SQLITE_BUSY without waiting when another writer commits in between.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # noqa: ANN001
        immediate = conn.get_execution_options().get("vidcolor_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _study_dict(row: StudyRow) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "spec": row.spec or {}, "objective": row.objective, "mode": row.mode,
            "created": row.created, "status": row.status, "storage_path": row.storage_path, "shards": row.shards}


def _trial_dict(row: TrialRow) -> dict[str, Any]:
    return {"trial_id": row.trial_id, "experiment": row.experiment, "config": row.config or {},
            "params": row.params or {}, "status": row.status, "started": row.started, "ended": row.ended,
            "best_metrics": row.best_metrics, "last_metrics": row.last_metrics, "best_epoch": row.best_epoch,
            "checkpoint": row.checkpoint, "error": row.error}


def _item_dict(row: CttItemRow) -> dict[str, Any]:
    return {"uid": row.uid, "real_path": row.real_path, "fake_path": row.fake_path, "kind": row.kind,
            "is_attention": bool(row.is_attention), "video_id": row.video_id, "clip": row.clip,
            "frame": row.frame, "real_is_color": bool(row.real_is_color)}
