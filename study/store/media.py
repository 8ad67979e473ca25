"""The results store's media index: the sample frames and clips each trial wrote, by path.

Only paths and what they show (media type, video, clip, frame, and the epoch for frames rendered
while the trial trained) are stored; the files stay where the trial wrote them. Re-registering a
path updates its row.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from sqlalchemy import select

from models.errors import VidcolorError
from study.store.engine import StoreEngine
from study.store.schema import MediaRow, TrialRow, utcnow

MEDIA_COLUMNS = ["trial_id", "experiment", "media_type", "path", "video_id", "clip", "frame", "epoch", "created"]


class MediaMixin(StoreEngine):
    """Media files of trials: `add_media`, `add_media_many`, `media`."""

    def add_media(
        self,
        study: str,
        trial_id: str,
        media_type: str,
        path: str | os.PathLike,
        *,
        video_id: str | None = None,
        clip: int | None = None,
        frame: int | None = None,
        epoch: int | None = None,
    ) -> None:
        """Register a sample file of a trial (re-adding the same path updates it); `epoch`: the
        epoch whose weights rendered it, None for the media rendered at the end."""
        self.add_media_many(
            study,
            trial_id,
            [
                {
                    "media_type": media_type,
                    "path": path,
                    "video_id": video_id,
                    "clip": clip,
                    "frame": frame,
                    "epoch": epoch,
                }
            ],
        )

    def add_media_many(self, study: str, trial_id: str, items: Iterable[Mapping[str, Any]]) -> int:
        """Register many media files of a trial in one transaction; each item has media_type, path and
        optionally video_id, clip, frame, epoch. Returns the number of items."""
        n = 0
        with self._write() as s:
            trial = self._trial(s, study, trial_id)
            for item in items:
                if not item.get("media_type") or not item.get("path"):
                    raise VidcolorError(
                        f"media item {n} of trial {trial_id}: media_type and path are required, got {dict(item)!r}"
                    )
                path = os.fspath(item["path"])
                row = s.scalar(select(MediaRow).where(MediaRow.trial_pk == trial.id, MediaRow.path == path))
                if row is None:
                    row = MediaRow(trial_pk=trial.id, path=path)
                    s.add(row)
                row.media_type, row.video_id = str(item["media_type"]), item.get("video_id")
                row.clip = None if item.get("clip") is None else int(item["clip"])
                row.frame = None if item.get("frame") is None else int(item["frame"])
                row.epoch = None if item.get("epoch") is None else int(item["epoch"])
                row.created = utcnow()
                n += 1
        return n

    def media(self, study: str, trial_id: str | None = None, *, epochs: bool = False) -> pd.DataFrame:
        """One row per media file: trial_id, experiment, media_type, path, video_id, clip, frame,
        epoch, created. The media rendered at the end (epoch None), or with `epochs` the frames
        rendered while the trial trained (every `media_every` epochs), never both: a page, a CTT item
        or a report that asks for a trial's frames gets its final ones."""
        with self._read() as s:
            st = self._study(s, study)
            q = (
                select(
                    TrialRow.trial_id,
                    TrialRow.experiment,
                    MediaRow.media_type,
                    MediaRow.path,
                    MediaRow.video_id,
                    MediaRow.clip,
                    MediaRow.frame,
                    MediaRow.epoch,
                    MediaRow.created,
                )
                .join(TrialRow, MediaRow.trial_pk == TrialRow.id)
                .where(TrialRow.study_id == st.id)
                .where(MediaRow.epoch.is_not(None) if epochs else MediaRow.epoch.is_(None))
                .order_by(
                    TrialRow.trial_id,
                    MediaRow.video_id,
                    MediaRow.clip,
                    MediaRow.epoch,
                    MediaRow.media_type,
                    MediaRow.frame,
                )
            )
            if trial_id is not None:
                q = q.where(TrialRow.trial_id == str(trial_id))
            rows = s.execute(q).all()
        return pd.DataFrame([tuple(r) for r in rows], columns=MEDIA_COLUMNS)
