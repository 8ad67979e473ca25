"""The results store's trials and their per-epoch metrics.

A trial is addressed by Ray Tune's trial id, unique within its study. `log_epoch` keeps each
trial's last metrics and, by the study's objective (NaN never improves it), its best metrics,
best epoch and best checkpoint. Read methods flatten the metric dicts into DataFrame columns.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.errors import VidcolorError
from study.report import json_clean
from study.store.engine import StoreEngine
from study.store.schema import FINISHED_STATUSES, TRIAL_STATUSES, EpochRow, StudyRow, TrialRow, utcnow

# keys a training loop reports beside its metrics; never flattened into metric columns
_BOOKKEEPING = frozenset({"epoch", "trial_id", "experiment", "time"})
TRIALS_COLUMNS = [
    "trial_id",
    "experiment",
    "status",
    "started",
    "ended",
    "duration_s",
    "epochs",
    "best_epoch",
    "checkpoint",
    "error",
    "objective",
]
EPOCHS_COLUMNS = ["trial_id", "experiment", "epoch", "time"]


def objective_value(metrics: Mapping[str, Any] | None, objective: str) -> float | None:
    """The objective metric's value in a metrics dict, None when it is missing, not a number or not finite."""
    try:
        x = float((metrics or {}).get(objective))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


class TrialsMixin(StoreEngine):
    """Trials and epochs: `upsert_trial`, `log_epoch`, `finish_trial`, `get_trial`, `trials`, `epochs`."""

    def upsert_trial(
        self,
        study: str,
        trial_id: str,
        *,
        experiment: str | None = None,
        config: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        status: str | None = None,
        started: dt.datetime | None = None,
        checkpoint: str | None = None,
    ) -> None:
        """Insert the trial or update the given fields (None leaves a field as it is). A new trial
        starts RUNNING, started now."""
        if status is not None and status not in TRIAL_STATUSES:
            raise VidcolorError(f"trial {trial_id}: status must be one of {TRIAL_STATUSES}, got {status!r}")
        with self._write() as s:
            st = self._study(s, study)
            row = _find_trial(s, st, trial_id)
            if row is None:
                row = _new_trial(s, st, trial_id, status=status or "RUNNING", started=started)
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
                row.config = json_clean(dict(config))
            if params is not None:
                row.params = json_clean(dict(params))
            if checkpoint is not None:
                row.checkpoint = str(checkpoint)

    def log_epoch(
        self,
        study: str,
        trial_id: str,
        epoch: int,
        metrics: Mapping[str, Any],
        *,
        checkpoint: str | None = None,
        time: dt.datetime | None = None,
    ) -> bool:
        """Upsert one epoch's metrics, update the trial's last metrics and, when the study's objective
        improved (NaN never does), its best metrics, best epoch and (if given) best checkpoint.
        Creates the trial if needed. Returns whether this epoch is now the trial's best."""
        epoch = int(epoch)
        clean = json_clean(dict(metrics))
        with self._write() as s:
            st = self._study(s, study)
            trial = _find_trial(s, st, trial_id) or _new_trial(s, st, trial_id, status="RUNNING")
            row = s.scalar(select(EpochRow).where(EpochRow.trial_pk == trial.id, EpochRow.epoch == epoch))
            if row is None:
                s.add(EpochRow(trial_pk=trial.id, epoch=epoch, metrics=clean, time=time or utcnow()))
            else:
                row.metrics = clean
                row.time = time or utcnow()
            latest = s.scalar(select(func.max(EpochRow.epoch)).where(EpochRow.trial_pk == trial.id))
            if latest is None or epoch >= latest:
                trial.last_metrics = clean
            improved = _improves(st, trial, epoch, clean)
            if improved:
                trial.best_metrics = clean
                trial.best_epoch = epoch
                if checkpoint is not None:
                    trial.checkpoint = str(checkpoint)
            return improved

    def finish_trial(
        self,
        study: str,
        trial_id: str,
        status: str = "TERMINATED",
        *,
        error: str | None = None,
        checkpoint: str | None = None,
        ended: dt.datetime | None = None,
    ) -> None:
        """Mark a trial TERMINATED (ran to the end), STOPPED (early-stopped by ASHA) or ERROR."""
        if status not in FINISHED_STATUSES:
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
            row = _find_trial(s, st, trial_id)
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
            rows = s.scalars(
                select(TrialRow).where(TrialRow.study_id == st.id).order_by(TrialRow.started, TrialRow.id)
            ).all()
            counts = dict(
                s.execute(
                    select(EpochRow.trial_pk, func.count())
                    .join(TrialRow)
                    .where(TrialRow.study_id == st.id)
                    .group_by(EpochRow.trial_pk)
                ).all()
            )
        out = [_trial_record(r, int(counts.get(r.id, 0)), st.objective) for r in rows]
        extra = {c for rec in out for c in rec} - set(TRIALS_COLUMNS) - {"config"}
        ordered = (
            TRIALS_COLUMNS
            + [c for prefix in ("param_", "best_", "last_") for c in sorted(c for c in extra if c.startswith(prefix))]
            + ["config"]
        )
        return pd.DataFrame(out, columns=ordered)

    def epochs(self, study: str, trial_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """One row per (trial, epoch): trial_id, experiment, epoch, time, then one column per metric."""
        with self._read() as s:
            st = self._study(s, study)
            q = (
                select(TrialRow.trial_id, TrialRow.experiment, EpochRow.epoch, EpochRow.time, EpochRow.metrics)
                .join(TrialRow, EpochRow.trial_pk == TrialRow.id)
                .where(TrialRow.study_id == st.id)
                .order_by(TrialRow.trial_id, EpochRow.epoch)
            )
            if trial_ids is not None:
                q = q.where(TrialRow.trial_id.in_([str(t) for t in trial_ids]))
            rows = s.execute(q).all()
        metric_cols = sorted({k for r in rows for k in (r.metrics or {})} - _BOOKKEEPING)
        out = [
            {
                "trial_id": r.trial_id,
                "experiment": r.experiment,
                "epoch": r.epoch,
                "time": r.time,
                **{k: (r.metrics or {}).get(k) for k in metric_cols},
            }
            for r in rows
        ]
        return pd.DataFrame(out, columns=[*EPOCHS_COLUMNS, *metric_cols])


def _find_trial(s: Session, st: StudyRow, trial_id: str) -> TrialRow | None:
    return s.scalar(select(TrialRow).where(TrialRow.study_id == st.id, TrialRow.trial_id == str(trial_id)))


def _new_trial(s: Session, st: StudyRow, trial_id: str, *, status: str, started: dt.datetime | None = None) -> TrialRow:
    """Add a trial row (started now unless given) and flush it, so it has its primary key."""
    row = TrialRow(
        study_id=st.id, trial_id=str(trial_id), status=status, started=started or utcnow(), config={}, params={}
    )
    s.add(row)
    s.flush()
    return row


def _improves(st: StudyRow, trial: TrialRow, epoch: int, metrics: Mapping[str, Any]) -> bool:
    """Whether `metrics` of `epoch` become the trial's best: a finite objective value that beats the
    best so far, or any finite value when the best epoch itself is re-logged."""
    value = objective_value(metrics, st.objective)
    best = objective_value(trial.best_metrics, st.objective)
    return value is not None and (
        best is None or trial.best_epoch == epoch or (value < best if st.mode == "min" else value > best)
    )


def _trial_record(r: TrialRow, epochs: int, objective: str) -> dict[str, Any]:
    """One `trials()` row: the trial's columns, then its params and best/last metrics flattened."""
    rec: dict[str, Any] = {
        "trial_id": r.trial_id,
        "experiment": r.experiment,
        "status": r.status,
        "started": r.started,
        "ended": r.ended,
        "duration_s": (r.ended - r.started).total_seconds() if r.ended and r.started else None,
        "epochs": epochs,
        "best_epoch": r.best_epoch,
        "checkpoint": r.checkpoint,
        "error": r.error,
        "objective": objective_value(r.best_metrics, objective),
    }
    for prefix, values in (("param_", r.params), ("best_", r.best_metrics), ("last_", r.last_metrics)):
        for k, v in (values or {}).items():
            if prefix != "param_" and k in _BOOKKEEPING:
                continue  # `epoch` is a column of its own (best_epoch), not a metric
            rec[prefix + k] = v if not isinstance(v, (dict, list)) else str(v)
    rec["config"] = r.config or {}
    return rec


def _trial_dict(row: TrialRow) -> dict[str, Any]:
    return {
        "trial_id": row.trial_id,
        "experiment": row.experiment,
        "config": row.config or {},
        "params": row.params or {},
        "status": row.status,
        "started": row.started,
        "ended": row.ended,
        "best_metrics": row.best_metrics,
        "last_metrics": row.last_metrics,
        "best_epoch": row.best_epoch,
        "checkpoint": row.checkpoint,
        "error": row.error,
    }
