"""Tune callbacks of a study: the results store follows it live, a table shows it in the terminal,
and ``--log`` sends it to TensorBoard, MLflow or W&B (`TrackerCallback`).

``StoreCallback`` writes every trial, every epoch and each trial's end (with its best checkpoint)
to the results store as they happen and renders sample media of each finished trial in a
background thread. ``ProgressTable`` prints a compact table of the trials every few seconds.
"""

from __future__ import annotations

import concurrent.futures
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray import tune

from models.errors import VidcolorError
from study.config.spec import StudySpec
from study.report import fmt, format_table
from study.trackers import sample_images
from study.tune.secrets import remember, resolve
from study.tune.trial import FINISHED, StudyRun, finished_status

log = logging.getLogger(__name__)

# keys Ray adds to every result; never stored as metrics
_RAY_KEYS = {
    "done",
    "training_iteration",
    "trial_id",
    "date",
    "timestamp",
    "time_this_iter_s",
    "time_total_s",
    "pid",
    "hostname",
    "node_ip",
    "config",
    "time_since_restore",
    "iterations_since_restore",
    "checkpoint_dir_name",
    "should_checkpoint",
    "experiment_tag",
    "checkpoint_path",
    "resumed",
}


def trial_status(trial, max_t: int) -> str:
    """Tune's status of a trial for the table, with one that ended early called STOPPED."""
    if trial.status == "TERMINATED":
        return finished_status(trial.last_result, max_t)
    return trial.status


def error_message(trial) -> str:
    """The last line of a failed trial's traceback that names our error (or the last line)."""
    text = ""
    try:
        if trial.error_file and Path(trial.error_file).is_file():
            text = Path(trial.error_file).read_text(errors="replace")
        else:
            text = trial.get_error() or ""
    except Exception:
        pass
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "TrainingError" in ln or "VidcolorError" in ln:
            return ln.split(": ", 1)[-1] if ": " in ln else ln
    return lines[-1] if lines else "trial failed"


def _metrics(result: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in result.items()
        if k not in _RAY_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


class StoreCallback(tune.Callback):
    """Tune callback: the results store follows the study live; media for finished trials."""

    def __init__(self, store_url: str, run: StudyRun, media_root: str | None, max_t: int):
        # Tune pickles its callbacks into its storage: only the masked URL is kept (study.tune.secrets)
        self.store_url, self.run, self.media_root, self.max_t = remember(store_url), run, media_root, max_t
        self.study = run.spec.name
        self._store = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: list[concurrent.futures.Future] = []
        self._done_before: set[str] = set()  # finished before this run (a resumed study)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_store", "_pool", "_pending", "_done_before")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._store, self._pool, self._pending, self._done_before = None, None, [], set()

    @property
    def store(self):
        if self._store is None:
            from study.store import Store

            self._store = Store(resolve(self.store_url))
        return self._store

    def on_trial_start(self, iteration, trials, trial, **info):
        row = self.store.get_trial(self.study, trial.trial_id)
        if row is not None and row["status"] in FINISHED:
            self._done_before.add(trial.trial_id)
            return
        params = dict(trial.config)
        try:
            experiment, train = self.run.spec.trial_configs(params)
            config = {"experiment": experiment.to_dict(), "train": train.to_dict(), "shards": self.run.shards}
            name = experiment.name
        except VidcolorError as exc:  # recorded; the driver fails the trial with the same message
            config, name = {"invalid": str(exc)}, self.run.spec.preset
        self.store.upsert_trial(
            self.study, trial.trial_id, experiment=name, config=config, params=params, status="RUNNING"
        )

    def on_trial_recover(self, iteration, trials, trial, **info):
        log.warning("trial %s failed and is retried from its last checkpoint", trial.trial_id)
        self.store.upsert_trial(self.study, trial.trial_id, status="RUNNING")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        epoch = result.get("epoch") or result.get("training_iteration")
        if result.get("resumed"):  # a resumed run repeats its checkpoint's epoch: keep a logged one as is
            logged = self.store.epochs(self.study, [trial.trial_id])
            if int(epoch) in set(logged.epoch):
                return
        self.store.log_epoch(
            self.study,
            trial.trial_id,
            int(epoch),
            _metrics(result),
            checkpoint=self._uri(result.get("checkpoint_path")),
        )
        self._epoch_media(trial.trial_id, int(epoch))

    def on_trial_complete(self, iteration, trials, trial, **info):
        if trial.trial_id in self._done_before:
            return
        self.store.finish_trial(self.study, trial.trial_id, finished_status(trial.last_result, self.max_t))
        self._render(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info):
        message = error_message(trial)
        log.warning("trial %s failed: %s", trial.trial_id, message)
        self.store.finish_trial(self.study, trial.trial_id, "ERROR", error=message)

    def on_experiment_end(self, trials, **info):
        self.wait_for_media()

    # -- media ---------------------------------------------------------------------------------

    def _uri(self, path: str | None) -> str | None:
        if not path:
            return None
        storage = self.run.train_storage
        if "://" in storage and "://" not in path:
            return storage.split("://", 1)[0] + "://" + path.lstrip("/")
        return path

    def _epoch_media(self, trial_id: str, epoch: int) -> None:
        """Register the sample frames the trial rendered at this epoch (a spec's media_every; the
        training loop writes them under MEDIA_ROOT/TRIAL/epochs before it reports the epoch). A
        trial on another machine than this driver writes them there: none are found, none listed."""
        if not self.media_root or self.run.spec.media_every < 1 or self.run.spec.media_clips < 1:
            return
        from study.media.samples import epoch_files, register_media

        files = epoch_files(Path(self.media_root) / trial_id / "epochs", epoch)
        if files:
            try:
                register_media(self.store, self.study, trial_id, files)
            except VidcolorError as exc:  # the study goes on without them
                log.warning("sample frames of trial %s epoch %d not listed: %s", trial_id, epoch, exc)

    def _render(self, trial_id: str) -> None:
        if not self.media_root or self.run.spec.media_clips < 1:
            return
        row = self.store.get_trial(self.study, trial_id)
        checkpoint = row and row.get("checkpoint")
        if not checkpoint:
            log.info("trial %s has no checkpoint; no media", trial_id)
            return
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="media")
        self._pending.append(self._pool.submit(self._render_now, trial_id, checkpoint))

    def _render_now(self, trial_id: str, checkpoint: str) -> None:
        from study.media.samples import register_media, render_samples
        from study.remote import local_checkpoint

        try:
            with local_checkpoint(checkpoint) as folder:  # a URI under remote storage: fetched, then removed
                files = render_samples(
                    folder,
                    self.run.shards,
                    Path(self.media_root) / trial_id,
                    split="val",
                    clips=self.run.spec.media_clips,
                    device="cpu",
                )
            register_media(self.store, self.study, trial_id, files)
        except Exception as exc:
            log.warning("media of trial %s failed: %s", trial_id, exc)

    def wait_for_media(self) -> None:
        for future in self._pending:
            future.result()
        self._pending.clear()


RATIO = "val_rmse_ratio"


class TrackerCallback(tune.Callback):
    """Tune callback for ``--log``: each trial is a run on the trackers (`study.trackers`) named
    STUDY-TRIAL in the project STUDY: its config as the store has it and its metrics every epoch as
    they are reported. A trial that ended is closed once its sample frames are in the store (the
    `StoreCallback` before this one renders them in the background) and logged, or after
    `FRAMES_WAIT_S` without them; the rest at the study's end. A tracker that cannot start a run
    is not tried again in this study (a tracking server that is down would stall every trial)."""

    FRAMES_WAIT_S = 120.0
    CHECK_EVERY_S = 5.0

    def __init__(self, options, store_url: str, study: str):
        self.options, self.store_url, self.study = options, remember(store_url), study
        self._reset()

    def _reset(self) -> None:
        self._runs: dict[str, Any] = {}
        self._ended: dict[str, tuple[float, bool]] = {}  # trial -> (when it ended, failed)
        self._skip: set[str] = set()
        self._checked = 0.0
        self._store = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k in ("options", "store_url", "study")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset()

    @property
    def store(self):
        if self._store is None:
            from study.store import Store

            self._store = Store(resolve(self.store_url))
        return self._store

    def _run(self, trial):
        run = self._runs.get(trial.trial_id)
        if run is None:
            row = self.store.get_trial(self.study, trial.trial_id) or {}
            config = {"params": dict(trial.config), **(row.get("config") or {})}
            name = f"{self.study}-{trial.trial_id}"
            run = self._runs[trial.trial_id] = self.options.run(self.study, name, config, skip=self._skip)
            self._skip.update(run.failed)
        return run

    def _close(self, trial_id: str, failed: bool) -> None:
        run = self._runs.pop(trial_id, None)
        self._ended.pop(trial_id, None)
        if run is None:
            return
        try:
            run.log_images(sample_images(self.store.media(self.study, trial_id).to_dict("records")))
        except Exception as exc:  # the frames are a bonus: the run is closed all the same
            log.warning("--log: sample frames of trial %s not sent (%s)", trial_id, exc)
        run.close(failed=failed)

    def _close_ready(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self._ended or (not force and now - self._checked < self.CHECK_EVERY_S):
            return
        self._checked = now
        for trial_id, (ended, failed) in list(self._ended.items()):
            waited = now - ended >= self.FRAMES_WAIT_S
            if force or failed or waited or not self.store.media(self.study, trial_id).empty:
                self._close(trial_id, failed)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._run(trial)
        self._close_ready()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        epoch = int(result.get("epoch") or result.get("training_iteration") or 0)
        run = self._run(trial)
        run.log(_metrics(result), epoch)
        self._epoch_images(run, trial.trial_id, epoch)
        self._close_ready()

    def _epoch_images(self, run, trial_id: str, epoch: int) -> None:
        """The sample frames the trial rendered at this epoch (a spec's media_every), which the
        `StoreCallback` before this one has just listed, at the epoch's step: a tracker's image
        slider then shows how the colours changed over training."""
        try:
            rendered = self.store.media(self.study, trial_id, epochs=True)
            images = sample_images(rendered[rendered["epoch"] == epoch].to_dict("records"))
            if images:
                run.log_images(images, epoch)
        except Exception as exc:  # the frames are a bonus: the run goes on all the same
            log.warning("--log: sample frames of trial %s epoch %d not sent (%s)", trial_id, epoch, exc)

    def on_step_end(self, iteration, trials, **info):
        self._close_ready()

    def on_trial_complete(self, iteration, trials, trial, **info):
        if trial.trial_id in self._runs:
            self._ended[trial.trial_id] = (time.monotonic(), False)

    def on_trial_error(self, iteration, trials, trial, **info):
        if trial.trial_id in self._runs:
            self._ended[trial.trial_id] = (time.monotonic(), True)

    def on_experiment_end(self, trials, **info):
        self._close_ready(force=True)
        for trial_id in list(self._runs):  # trials that never ended (the study was stopped)
            self._close(trial_id, failed=False)


class ProgressTable(tune.Callback):
    """Tune callback: the trials' progress. In a terminal, a compact live table (at most every
    ``every_s``, and when a trial ends); into a file or pipe, one line each time a trial starts or
    ends (counts by status and the best so far), and the table once at the end, so a log reads as
    a few lines instead of the table again and again."""

    def __init__(self, spec: StudySpec, max_t: int, every_s: float = 10.0, stream=None):
        self.spec, self.max_t, self.every_s, self.stream = spec, max_t, every_s, stream
        self._last = 0.0
        self._line = ""

    def __getstate__(self):
        return {**self.__dict__, "stream": None, "_last": 0.0, "_line": ""}

    @property
    def _out(self):
        return self.stream or sys.stdout

    def _live(self) -> bool:
        isatty = getattr(self._out, "isatty", None)
        return bool(isatty and isatty())

    def on_step_end(self, iteration, trials, **info):
        if self._live():
            if time.monotonic() - self._last >= self.every_s:
                self.show(trials)
        else:
            self.line(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.show(trials) if self._live() else self.line(trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.show(trials) if self._live() else self.line(trials)

    def on_experiment_end(self, trials, **info):
        self.show(trials)

    def _summary(self, trials) -> str:
        counts: dict[str, int] = {}
        for t in trials:
            status = trial_status(t, self.max_t)
            counts[status] = counts.get(status, 0) + 1
        summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        return f"[{self.spec.name}] {len(trials)}/{self.spec.num_trials} trials: {summary}"

    def line(self, trials) -> None:
        """One line when the trials' statuses change: the counts and the best objective so far."""
        summary = self._summary(trials)
        if summary == self._line:
            return
        self._line = summary
        metric, sign = self.spec.objective.metric, 1 if self.spec.objective.mode == "min" else -1
        scored = [
            (float(v), t.trial_id)
            for t in trials
            if isinstance(v := (t.last_result or {}).get(metric), int | float) and v == v
        ]
        best = min(scored, key=lambda x: sign * x[0]) if scored else None
        tail = f"; best {metric} {fmt(best[0], 4, style='g')} ({best[1]})" if best else ""
        print(summary + tail, file=self._out, flush=True)

    def show(self, trials) -> None:
        self._last = time.monotonic()
        metric = self.spec.objective.metric
        params = [p.name for p in self.spec.search]
        # the gray baseline's reference: each trial's RMSE over gray's on the same validation videos
        ratio = [] if metric == RATIO else [RATIO]
        rows = [
            [
                t.trial_id,
                trial_status(t, self.max_t),
                fmt((t.last_result or {}).get("epoch")),
                *(fmt((t.last_result or {}).get(m), 4, style="g") for m in (metric, *ratio)),
                *(fmt(t.config.get(p), 4, style="g") for p in params),
            ]
            for t in trials
        ]
        text = format_table(
            ["trial", "status", "epoch", f"last {metric}", *(["rmse/gray"] if ratio else []), *params], rows
        )
        print(f"\n{self._summary(trials)}\n{text}", file=self._out, flush=True)
