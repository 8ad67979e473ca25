"""The results store's studies: create or resume one, read one or all, set its status.

A study is addressed by its unique name; it fixes the objective metric and mode (min|max) its
trials are ranked by.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from sqlalchemy import select

from models.errors import VidcolorError
from study.report import json_clean
from study.store.engine import StoreEngine
from study.store.schema import MODES, STUDY_STATUSES, StudyRow, TrialRow
from study.store.trials import objective_value

STUDIES_COLUMNS = [
    "name",
    "objective",
    "mode",
    "status",
    "created",
    "shards",
    "storage_path",
    "trials",
    "finished",
    "running",
    "failed",
    "best",
]


class StudiesMixin(StoreEngine):
    """Studies: `create_study`, `get_study`, `latest_study`, `resolve_study`, `set_study_status`, `studies`."""

    def create_study(
        self,
        name: str,
        *,
        objective: str,
        mode: str = "min",
        spec: Mapping[str, Any] | None = None,
        storage_path: str | None = None,
        shards: str | None = None,
        exist_ok: bool = False,
    ) -> dict[str, Any]:
        """Create a study; with `exist_ok` return the existing one (a resumed study, whose spec record
        becomes `spec` when given), else refuse."""
        if not name or not isinstance(name, str):
            raise VidcolorError(f"study name must be a non-empty string, got {name!r}")
        if mode not in MODES:
            raise VidcolorError(f"study {name!r}: mode must be one of {MODES}, got {mode!r}")
        if not objective:
            raise VidcolorError(f"study {name!r}: objective metric is empty")
        with self._write() as s:
            row = s.scalar(select(StudyRow).where(StudyRow.name == name))
            if row is None:
                row = StudyRow(
                    name=name,
                    spec=json_clean(dict(spec or {})),
                    objective=objective,
                    mode=mode,
                    storage_path=None if storage_path is None else str(storage_path),
                    shards=None if shards is None else str(shards),
                    status="RUNNING",
                )
                s.add(row)
                s.flush()
            else:
                self._resume_study(row, objective, mode, storage_path, shards, exist_ok)
                if spec is not None:  # the spec of the latest run (a [human] round adds its table)
                    row.spec = json_clean(dict(spec))
            return _study_dict(row)

    def _resume_study(
        self, row: StudyRow, objective: str, mode: str, storage_path: str | None, shards: str | None, exist_ok: bool
    ) -> None:
        """Mark an existing study RUNNING again, refusing without `exist_ok` or on another objective."""
        if not exist_ok:
            raise VidcolorError(
                f"study {row.name!r} already exists in {self.display_url} (resume it or pick another name)"
            )
        if row.objective != objective or row.mode != mode:
            raise VidcolorError(
                f"study {row.name!r} exists with objective {row.objective} ({row.mode}), not {objective} ({mode})"
            )
        row.status = "RUNNING"
        if storage_path is not None:
            row.storage_path = str(storage_path)
        if shards is not None:
            row.shards = str(shards)

    def get_study(self, name: str) -> dict[str, Any] | None:
        """The study as a dict (id, name, spec, objective, mode, created, status, storage_path, shards)."""
        with self._read() as s:
            row = s.scalar(select(StudyRow).where(StudyRow.name == name))
            return None if row is None else _study_dict(row)

    def latest_study(self) -> dict[str, Any] | None:
        """The most recently created study as a dict (see `get_study`); None in an empty store."""
        with self._read() as s:
            row = s.scalar(select(StudyRow).order_by(StudyRow.created.desc(), StudyRow.id.desc()).limit(1))
            return None if row is None else _study_dict(row)

    def resolve_study(self, name: str | None) -> str:
        """The study a command's `--study` names (checked to exist), or the latest one in the database."""
        if name:
            if self.get_study(name) is None:
                raise VidcolorError(f"no study named {name!r} in {self.display_url}")
            return name
        latest = self.latest_study()
        if latest is None:
            raise VidcolorError(f"the results database {self.display_url} holds no study")
        return latest["name"]

    def set_study_status(self, name: str, status: str) -> None:
        """Set a study's status (one of `STUDY_STATUSES`)."""
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
        out = [_study_summary(st, [t for t in trials if t.study_id == st.id]) for st in rows]
        return pd.DataFrame(out, columns=STUDIES_COLUMNS)


def _study_summary(st: StudyRow, trials: list[Any]) -> dict[str, Any]:
    """One `studies()` row: the study's fields and counts over its (study_id, status, best_metrics) rows."""
    values = [v for t in trials if (v := objective_value(t.best_metrics, st.objective)) is not None]
    best = (min(values) if st.mode == "min" else max(values)) if values else None
    return {
        "name": st.name,
        "objective": st.objective,
        "mode": st.mode,
        "status": st.status,
        "created": st.created,
        "shards": st.shards,
        "storage_path": st.storage_path,
        "trials": len(trials),
        "finished": sum(t.status in ("TERMINATED", "STOPPED") for t in trials),
        "running": sum(t.status == "RUNNING" for t in trials),
        "failed": sum(t.status == "ERROR" for t in trials),
        "best": best,
    }


def _study_dict(row: StudyRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "spec": row.spec or {},
        "objective": row.objective,
        "mode": row.mode,
        "created": row.created,
        "status": row.status,
        "storage_path": row.storage_path,
        "shards": row.shards,
    }
