"""``vidcolor tune``: a hyperparameter study with Ray Tune, Optuna (TPE) and ASHA.

Each Tune trial runs ``trial_driver``, which builds a Ray Train ``TorchTrainer`` for the trial's
configuration (named ``train-{trial_id}``, so a relaunched trial resumes from its last checkpoint)
with ``TuneReportCallback``: one Train report per epoch = one Tune result, which ASHA sees (its
time unit is the reported ``epoch``). ``OptunaSearch`` proposes configurations (TPE, multivariate,
constant liar, or random) and keeps its study, named like the spec, in the results database, so
``optuna-dashboard DB_URL`` opens it too. ``StoreCallback`` writes the study, every trial, every
epoch and each trial's end (with its best checkpoint) to the results store as they happen, and
renders sample media of each finished trial in the background. A trial that raises or hits a NaN
loss is recorded as ERROR and the study goes on; worker or node failures are retried from the last
checkpoint (Ray Train's and Tune's FailureConfig). ``--resume`` restores the Tune experiment:
finished trials are kept, unfinished and errored ones resume from their checkpoints.

Follows Ray's Train/Tune interop guide and PITFALLS (Train V2): no Trainer inside Tuner, a driver
function per trial, the dashboard on for the placement-group cleaner.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import study.train.loop  # noqa: F401  (sets RAY_AUTH_MODE before Ray is imported)
from ray import tune

from models.errors import VidcolorError
from study.config.spec import StudySpec, load_spec

log = logging.getLogger(__name__)

# Each trial's driver (a Tune function actor) only waits on TorchTrainer.fit(). With a whole CPU
# per driver, drivers can hold every CPU while their own workers wait for one (seen when a node is
# lost with two trials running: a deadlock); a token share keeps the CPUs for the workers.
DRIVER_CPUS = 0.1
ERROR_MARK = "vidcolor_error.txt"
FINISHED = ("TERMINATED", "STOPPED")
_RAY_KEYS = {"done", "training_iteration", "trial_id", "date", "timestamp", "time_this_iter_s", "time_total_s",
             "pid", "hostname", "node_ip", "config", "time_since_restore", "iterations_since_restore",
             "checkpoint_dir_name", "should_checkpoint", "experiment_tag", "checkpoint_path", "resumed"}


@dataclass(frozen=True)
class StudyRun:
    """What every trial driver needs (pickled to the trial's actor)."""

    spec: StudySpec
    shards: str
    train_storage: str  # where the Train runs of the trials live (shared storage on a cluster)
    store_url: str | None = None

    @property
    def use_gpu(self) -> bool:
        return self.spec.resources.gpus_per_worker > 0


def trial_driver(params: dict[str, Any], run: StudyRun) -> None:
    """One Tune trial: train ``params`` with a TorchTrainer, forwarding rank 0's reports to Tune."""
    from ray.tune.integration.ray_train import TuneReportCallback

    from study.train.loop import TrainingError, make_trainer, raise_for_error

    trial_id = tune.get_context().get_trial_id()
    mark = Path(tune.get_context().get_trial_dir()) / ERROR_MARK
    if mark.is_file():  # a deterministic failure: a Tune-level retry would fail the same way
        raise TrainingError(mark.read_text())
    if _finished_in_store(run, trial_id):
        # Resumed from an experiment state saved just before the trial ended: it is done.
        log.info("trial %s already finished (results store); not run again", trial_id)
        return
    experiment, train = run.spec.trial_configs(params)
    experiment.check_ready()
    res = run.spec.resources
    trainer = make_trainer(experiment, train, run.shards, workers=res.workers, use_gpu=run.use_gpu,
                           cpus_per_worker=res.cpus_per_worker, storage_path=run.train_storage,
                           name=f"train-{trial_id}", max_failures=run.spec.max_failures,
                           callbacks=[TuneReportCallback()])
    result = trainer.fit()
    try:
        raise_for_error(result)
    except TrainingError as exc:
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.write_text(str(exc))
        raise


def _finished_in_store(run: StudyRun, trial_id: str) -> bool:
    if not run.store_url:
        return False
    try:
        from study.store import Store

        row = Store(run.store_url).get_trial(run.spec.name, trial_id)
    except Exception as exc:  # noqa: BLE001 - e.g. a SQLite file on another node: just train
        log.debug("results store not reachable from the trial driver: %s", exc)
        return False
    return bool(row and row["status"] in FINISHED)


# ---------------------------------------------------------------------------------------------
# The results store, live
# ---------------------------------------------------------------------------------------------


def _error_message(trial) -> str:
    """The last line of a failed trial's traceback that names our error (or the last line)."""
    text = ""
    try:
        if trial.error_file and Path(trial.error_file).is_file():
            text = Path(trial.error_file).read_text(errors="replace")
        else:
            text = trial.get_error() or ""
    except Exception:  # noqa: BLE001 - the message is best effort; the status is what matters
        pass
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "TrainingError" in ln or "VidcolorError" in ln:
            return ln.split(": ", 1)[-1] if ": " in ln else ln
    return lines[-1] if lines else "trial failed"


def _metrics(result: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items()
            if k not in _RAY_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)}


class StoreCallback(tune.Callback):
    """Tune callback: the results store follows the study live; media for finished trials."""

    def __init__(self, store_url: str, run: StudyRun, study: str, media_root: str | None, max_t: int):
        self.store_url, self.run, self.study, self.media_root, self.max_t = store_url, run, study, media_root, max_t
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

            self._store = Store(self.store_url)
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
        self.store.upsert_trial(self.study, trial.trial_id, experiment=name, config=config, params=params,
                                status="RUNNING")

    def on_trial_recover(self, iteration, trials, trial, **info):
        log.warning("trial %s failed and is retried from its last checkpoint", trial.trial_id)
        self.store.upsert_trial(self.study, trial.trial_id, status="RUNNING")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        epoch = result.get("epoch") or result.get("training_iteration")
        if result.get("resumed"):  # a resumed run repeats its checkpoint's epoch: keep a logged one as is
            logged = self.store.epochs(self.study, [trial.trial_id])
            if int(epoch) in set(logged.epoch):
                return
        self.store.log_epoch(self.study, trial.trial_id, int(epoch), _metrics(result),
                             checkpoint=self._uri(result.get("checkpoint_path")))

    def on_trial_complete(self, iteration, trials, trial, **info):
        if trial.trial_id in self._done_before:
            return
        last = trial.last_result or {}
        epoch = int(last.get("epoch") or 0)
        status = "TERMINATED" if epoch >= self.max_t else "STOPPED"
        self.store.finish_trial(self.study, trial.trial_id, status)
        self._render(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info):
        message = _error_message(trial)
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
        from study.media.samples import render_samples

        try:
            local = _local_checkpoint(checkpoint)
            render_samples(local, self.run.shards, Path(self.media_root) / trial_id, split="val",
                           clips=self.run.spec.media_clips, device="cpu", store=self.store, study=self.study,
                           trial_id=trial_id)
        except Exception as exc:  # noqa: BLE001 - media are a bonus; never fail the study for them
            log.warning("media of trial %s failed: %s", trial_id, exc)

    def wait_for_media(self) -> None:
        for future in self._pending:
            future.result()
        self._pending.clear()


def _local_checkpoint(path: str) -> str:
    """A local folder for a checkpoint path or URI (remote ones are downloaded)."""
    if "://" not in path:
        return path
    import tempfile

    from ray.train import Checkpoint

    return Checkpoint(path).to_directory(tempfile.mkdtemp(prefix="vidcolor-media-"))


class ProgressTable(tune.Callback):
    """Tune callback: a compact live table of the trials in the terminal (at most every few s)."""

    def __init__(self, spec: StudySpec, max_t: int, every_s: float = 10.0, stream=None):
        self.spec, self.max_t, self.every_s, self.stream = spec, max_t, every_s, stream
        self._last = 0.0

    def __getstate__(self):
        return {**self.__dict__, "stream": None, "_last": 0.0}

    def on_step_end(self, iteration, trials, **info):
        if time.monotonic() - self._last >= self.every_s:
            self.show(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.show(trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.show(trials)

    def on_experiment_end(self, trials, **info):
        self.show(trials)

    def show(self, trials) -> None:
        self._last = time.monotonic()
        metric = self.spec.objective.metric
        params = [p.name for p in self.spec.search]
        rows = []
        for t in trials:
            last = t.last_result or {}
            status = t.status
            if status == "TERMINATED" and int(last.get("epoch") or 0) < self.max_t:
                status = "STOPPED"
            rows.append([t.trial_id, status, str(last.get("epoch", "-")), _fmt(last.get(metric)),
                         *(_fmt(t.config.get(p)) for p in params)])
        counts = {}
        for r in rows:
            counts[r[1]] = counts.get(r[1], 0) + 1
        head = ["trial", "status", "epoch", f"last {metric}", *params]
        text = format_rows(head, rows)
        summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        print(f"\n[{self.spec.name}] {len(trials)}/{self.spec.num_trials} trials: {summary}\n{text}",
              file=self.stream or sys.stdout, flush=True)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def format_rows(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------------------------


def _search_alg(spec: StudySpec, storage_url: str | None):
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    if spec.sampler.kind == "tpe":
        sampler = optuna.samplers.TPESampler(seed=spec.sampler.seed, multivariate=True, constant_liar=True,
                                             n_startup_trials=spec.sampler.n_startup_trials)
    else:
        sampler = optuna.samplers.RandomSampler(seed=spec.sampler.seed)
    storage = None
    if storage_url:
        kwargs = {"connect_args": {"timeout": 30}} if storage_url.startswith("sqlite") else {}
        storage = optuna.storages.RDBStorage(storage_url, engine_kwargs=kwargs)
    return OptunaSearch(sampler=sampler, storage=storage, study_name=spec.name,
                        points_to_evaluate=[dict(p) for p in spec.points_to_evaluate] or None)


def _scheduler(spec: StudySpec, max_t: int):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if not spec.asha.enabled:
        return FIFOScheduler()
    return ASHAScheduler(time_attr="epoch", max_t=max_t, grace_period=spec.asha.grace_period,
                         reduction_factor=spec.asha.reduction_factor)


def plan_concurrency(spec: StudySpec, cpus: float, gpus: float, local: bool) -> int:
    """Trials that fit at once: each takes DRIVER_CPUS + workers x cpus_per_worker CPUs."""
    res = spec.resources
    per_trial = DRIVER_CPUS + res.workers * res.cpus_per_worker
    gpu_trial = res.workers * res.gpus_per_worker
    if per_trial > cpus:
        where = "this machine" if local else "the cluster"
        raise VidcolorError(f"{spec.source}: a trial needs {per_trial:g} CPUs ({DRIVER_CPUS:g} for its driver + "
                            f"{res.workers} workers x {res.cpus_per_worker:g}), {where} has {cpus:g}; "
                            "lower [resources] workers or cpus_per_worker")
    if gpu_trial > gpus:
        raise VidcolorError(f"{spec.source}: a trial needs {gpu_trial:g} GPUs ([resources] gpus_per_worker), "
                            f"{'this machine' if local else 'the cluster'} has {gpus:g}")
    fit = int(cpus // per_trial)
    if gpu_trial > 0:
        fit = min(fit, int(gpus // gpu_trial))
    return max(1, min(spec.max_concurrent, fit))


@dataclass
class StudyResult:
    name: str
    experiment_path: str
    trials: Any  # pandas DataFrame from the store
    best: dict[str, Any] | None
    db: str


def run_study(spec: StudySpec, *, shards: str | None = None, db: str | None = None, storage: str | None = None,
              address: str | None = None, trials: int | None = None, resume: bool = False,
              media: bool = True, progress_every_s: float = 10.0, name: str | None = None) -> StudyResult:
    """Run (or resume) a study; returns the store's view of it. See the module docstring."""
    import ray

    from study.store import Store
    from study.train.loop import init_ray

    if name:
        spec = spec.replace(name=name)
    if trials is not None:
        if trials < 1:
            raise VidcolorError(f"--trials must be >= 1, got {trials}")
        spec = spec.replace(num_trials=trials)
    shards = shards or spec.shards
    if not shards:
        raise VidcolorError(f"{spec.source}: no shard set: give --shards or set shards in the spec")
    if "://" not in shards:
        if not Path(shards).exists():
            raise VidcolorError(f"shard set {shards} does not exist (make one with `vidcolor shard`)")
        shards = str(Path(shards).resolve())
    from data_shards.reader import ShardSet

    ShardSet(shards)  # the reader's clear error on a bad shard set, before any trial starts
    storage = storage or "ray_results"
    if "://" not in storage:
        storage = str(Path(storage).resolve())
    exp_path = f"{storage.rstrip('/')}/{spec.name}"
    store = Store(db)
    max_t = spec.max_t

    if resume:
        if not tune.Tuner.can_restore(exp_path):
            raise VidcolorError(f"--resume: no study {spec.name!r} to resume at {exp_path}")
        existing = store.get_study(spec.name)
        if existing is None:
            raise VidcolorError(f"--resume: study {spec.name!r} is not in {store.display_url}")
    elif _tune_state_exists(exp_path):
        raise VidcolorError(f"study {spec.name!r} already has results at {exp_path}: continue it with --resume, "
                            "or give another --storage or spec name")
    store.create_study(spec.name, objective=spec.objective.metric, mode=spec.objective.mode,
                       spec=_spec_record(spec), storage_path=exp_path, shards=shards, exist_ok=resume)

    # Save Tune's experiment state often: a killed driver then loses at most a second or two.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    started_ray = not ray.is_initialized()
    init_ray(address)
    try:
        cluster = ray.cluster_resources()
        concurrency = plan_concurrency(spec, cluster.get("CPU", 0.0), cluster.get("GPU", 0.0), local=not address)
        if concurrency < spec.max_concurrent:
            log.info("running %d trial(s) at a time (spec asks %d; that is what fits)", concurrency,
                     spec.max_concurrent)
        run = StudyRun(spec=spec, shards=shards, train_storage=f"{storage.rstrip('/')}/{spec.name}-train",
                       store_url=store.url)
        media_root = str(Path(store_media_root(store, storage), spec.name)) if media else None
        store_cb = StoreCallback(store.url, run, spec.name, media_root, max_t)
        table = ProgressTable(spec, max_t, every_s=progress_every_s)
        trainable = tune.with_resources(tune.with_parameters(trial_driver, run=run), {"cpu": DRIVER_CPUS})
        if resume:
            tuner = tune.Tuner.restore(exp_path, trainable=trainable, resume_unfinished=True, resume_errored=True)
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=spec.param_space(),
                tune_config=tune.TuneConfig(
                    metric=spec.objective.metric, mode=spec.objective.mode,
                    search_alg=_search_alg(spec, store.optuna_storage_url),
                    scheduler=_scheduler(spec, max_t), num_samples=spec.num_trials,
                    max_concurrent_trials=concurrency),
                run_config=tune.RunConfig(
                    name=spec.name, storage_path=storage, callbacks=[store_cb, table], verbose=0,
                    failure_config=tune.FailureConfig(max_failures=spec.max_failures)),
            )
        try:
            grid = tuner.fit()
        except KeyboardInterrupt:
            store.set_study_status(spec.name, "INTERRUPTED")
            raise
        store_cb.wait_for_media()
        _reconcile(store, spec.name, grid, max_t)
        store.set_study_status(spec.name, "FINISHED")
    finally:
        if started_ray:
            ray.shutdown()
    df = store.trials(spec.name)
    return StudyResult(spec.name, exp_path, df, _best(df, spec), store.display_url)


def _tune_state_exists(path: str) -> bool:
    if "://" in path:
        return tune.Tuner.can_restore(path)
    return Path(path).is_dir() and any(Path(path).glob("experiment_state*.json"))


def store_media_root(store, storage: str) -> str:
    """Media go beside a SQLite database (``DB_DIR/media``), else under the Ray storage."""
    from sqlalchemy.engine import make_url

    u = make_url(store.url)
    if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:"):
        return str(Path(u.database).parent / "media")
    if "://" in storage:
        return str(Path("media").resolve())
    return str(Path(storage) / "media")


def _reconcile(store, study: str, grid, max_t: int) -> None:
    """After the run: every Tune trial has a final status in the store (callbacks may have been
    missed for trials restored as finished, or on an interrupted earlier run)."""
    for result in grid:
        trial_id = (result.metrics or {}).get("trial_id")
        if trial_id is None:  # a trial that never reported: nothing to reconcile
            continue
        row = store.get_trial(study, trial_id)
        if row is None or row["status"] in ("TERMINATED", "STOPPED", "ERROR"):
            continue
        if result.error is not None:
            store.finish_trial(study, trial_id, "ERROR", error=str(result.error).splitlines()[-1][:500])
        else:
            epoch = int((result.metrics or {}).get("epoch") or 0)
            store.finish_trial(study, trial_id, "TERMINATED" if epoch >= max_t else "STOPPED")


def _best(df, spec: StudySpec) -> dict[str, Any] | None:
    if df is None or df.empty or df["objective"].isna().all():
        return None
    ordered = df.dropna(subset=["objective"]).sort_values("objective", ascending=spec.objective.mode == "min")
    return ordered.iloc[0].to_dict()


def _spec_record(spec: StudySpec) -> dict[str, Any]:
    return {
        "name": spec.name, "preset": spec.preset, "source": spec.source, "fixed": dict(spec.fixed),
        "search": [{"name": p.name, "type": p.type, "low": p.low, "high": p.high, "log": p.log,
                    "choices": list(p.choices)} for p in spec.search],
        "objective": {"metric": spec.objective.metric, "mode": spec.objective.mode},
        "sampler": {"kind": spec.sampler.kind, "seed": spec.sampler.seed},
        "asha": {"enabled": spec.asha.enabled, "grace_period": spec.asha.grace_period,
                 "reduction_factor": spec.asha.reduction_factor, "max_t": spec.max_t},
        "num_trials": spec.num_trials, "max_concurrent": spec.max_concurrent,
        "resources": {"workers": spec.resources.workers, "cpus_per_worker": spec.resources.cpus_per_worker,
                      "gpus_per_worker": spec.resources.gpus_per_worker},
    }


def print_summary(result: StudyResult, spec: StudySpec) -> None:
    df = result.trials
    metric = spec.objective.metric
    params = [f"param_{p.name}" for p in spec.search]
    head = ["trial", "status", "epochs", f"best {metric}", *[p[6:] for p in params]]
    rows = []
    for _, r in df.iterrows():
        rows.append([str(r["trial_id"]), str(r["status"]), str(r["epochs"]), _fmt(r["objective"]),
                     *(_fmt(r.get(p)) for p in params)])
    print(f"\nstudy {result.name}: {len(df)} trials "
          f"({', '.join(f'{n} {s.lower()}' for s, n in df['status'].value_counts().items())})")
    print(format_rows(head, rows))
    if result.best:
        print(f"best: trial {result.best['trial_id']} {metric}={_fmt(result.best['objective'])} "
              f"checkpoint {result.best['checkpoint']}")
    print(f"results database: {result.db}\nRay results: {result.experiment_path}")


def main(args) -> int:
    """``vidcolor tune STUDY.toml [--shards] [--db] [--storage] [--address] [--trials] [--resume]``."""
    spec = load_spec(args.spec)
    result = run_study(spec, shards=args.shards, db=args.db, storage=args.storage, address=args.address,
                       trials=args.trials, resume=args.resume)
    print_summary(result, spec)
    return 0
