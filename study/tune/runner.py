"""A hyperparameter study with Ray Tune, Optuna (TPE) and ASHA: ``run_study``.

``OptunaSearch`` proposes configurations (TPE, multivariate with the constant liar so concurrent
trials do not all sample the same region, or random) and keeps its study, named like the spec, in
the results database, so ``optuna-dashboard DB_URL`` opens it too. ASHA stops poor trials (its
time unit is the reported ``epoch``). Each trial runs ``study.tune.trial.trial_driver``; the
callbacks of ``study.tune.callbacks`` keep the results store and the terminal up to date. A trial
that raises or hits a NaN loss is recorded as ERROR and the study goes on; worker or node failures
are retried from the last checkpoint. ``resume=True`` restores the Tune experiment: finished trials
are kept, unfinished and errored ones resume from their checkpoints.

A spec with several objectives (``[[objectives]]``) runs Optuna's multi-objective sampler: the
searcher gets the metric and mode lists and Optuna learns from each trial's last reported epoch (a
trial ASHA stopped is PRUNED there, ``study.tune.search``). ASHA stops trials on one objective
(``spec.objective``: ``asha.metric``, else the first) and each trial keeps its best checkpoint by
that one, so the results store's ``best_<metric>`` columns (the kept checkpoint's epoch) place a
trial on the front (``study.tune.front``).

A spec with a ``[human]`` table runs a round of ``study.tune.human`` instead: it continues the
study, sampling from a two-objective Optuna study (the objective and the CTT score) built from the
store, as a Tune experiment of its own with no early stopping.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from data_shards import outdir
from models.errors import VidcolorError
from study.config.spec import StudySpec
from study.tune.objectives import asha_scheduler, log_objectives, optuna_search
from study.tune.secrets import remember
from study.tune.trial import StudyRun, finished_status, trial_driver
from study.tune.trust import check_resumable

log = logging.getLogger(__name__)
DEFAULT_STORAGE = "ray_results"  # Ray's storage when --storage is not given

# Each trial's driver (a Tune function actor) only waits on TorchTrainer.fit(). With a whole CPU
# per driver, drivers can hold every CPU while their own workers wait for one (seen when a node is
# lost with two trials running: a deadlock); a token share keeps the CPUs for the workers.
DRIVER_CPUS = 0.1


@dataclass
class StudyResult:
    name: str
    experiment_path: str
    trials: Any  # pandas DataFrame from the store
    best: dict[str, Any] | None
    db: str
    human: Any = None  # a [human] round: study.tune.human.verdict_table after it (pandas DataFrame)
    new_trials: tuple[str, ...] = ()  # a [human] round: the trials it trained


@dataclass(frozen=True)
class _Paths:
    shards: str  # absolute path or URL
    storage: str  # Ray storage (absolute path or URL)
    experiment: str  # the Tune experiment's folder under it
    name: str  # the Tune experiment's name: the study's, or a [human] round's


def run_study(
    spec: StudySpec,
    *,
    shards: str | None = None,
    db: str | None = None,
    storage: str | None = None,
    address: str | None = None,
    resume: bool = False,
    media: bool = True,
    progress_every_s: float = 10.0,
    stall_after_s: float = 300.0,
    trackers=None,
) -> StudyResult:
    """Run (or resume) a study; returns the store's view of it. See the module docstring.

    ``shards`` defaults to the spec's, ``db`` to the store's default, ``storage`` (Ray's) to
    ``./ray_results``; ``address`` joins a running Ray instead of starting one. After
    ``stall_after_s`` without a trial starting, reporting or ending, the study logs what holds the
    cluster's resources and reclaims placement groups nothing uses (``study.tune.reclaim``).
    ``trackers`` (`study.trackers.TrackerOptions`) sends every trial to TensorBoard, MLflow or W&B."""
    import ray

    from study.ray_runtime import init_ray
    from study.store import Store

    spec = absolute_checkpoints(spec)
    paths = _resolve_paths(spec, shards, storage)
    store = Store(db)
    remember(store.url)  # what Tune pickles holds it masked; a restored state gets it back here
    plan = None
    if spec.human is not None:
        paths, plan = _open_human_round(store, spec, paths, resume)
    else:
        _open_study(store, spec, paths, resume)
    if resume:  # restoring unpickles: refuse folders others could write (Tune's state, the Train runs')
        check_resumable(paths.experiment, f"{paths.storage.rstrip('/')}/{spec.name}-train")
    before = set(store.trials(spec.name)["trial_id"]) if spec.human is not None else set()
    # Save Tune's experiment state often: a killed driver then loses at most a second or two.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    log_objectives(spec)
    started_ray = init_ray(address)
    try:
        cluster = ray.cluster_resources()
        concurrency = plan_concurrency(spec, cluster.get("CPU", 0.0), cluster.get("GPU", 0.0), local=not address)
        if concurrency < spec.max_concurrent:
            log.info(
                "running %d trial(s) at a time (spec asks %d; that is what fits)", concurrency, spec.max_concurrent
            )
        media_root = str(Path(store_media_root(store, paths.storage), spec.name)) if media else None
        run = StudyRun(
            spec=spec,
            shards=paths.shards,
            train_storage=f"{paths.storage.rstrip('/')}/{spec.name}-train",
            store_url=store.url,
            media_root=media_root,
        )
        store_cb, callbacks = _callbacks(spec, run, store, media_root, progress_every_s, stall_after_s, trackers)
        tuner = _tuner(spec, run, store, paths, concurrency, resume, callbacks, plan)
        try:
            grid = tuner.fit()
        except KeyboardInterrupt:
            store.set_study_status(spec.name, "INTERRUPTED")
            raise
        store_cb.wait_for_media()
        _reconcile(store, spec.name, grid, spec.max_t)
        store.set_study_status(spec.name, "FINISHED")
        human = None
        if spec.human is not None:  # the Optuna study now holds this round's trials too (waiting for votes)
            from study.tune.human import rebuild, verdict_table

            human = verdict_table(store, spec)
            rebuild(store, spec, human)
    finally:
        if started_ray:
            ray.shutdown()
    df = store.trials(spec.name)
    new = tuple(sorted(set(df["trial_id"]) - before)) if spec.human is not None else ()
    return StudyResult(spec.name, paths.experiment, df, _best(df, spec), store.display_url, human, new)


def override_spec(spec: StudySpec, *, name: str | None = None, trials: int | None = None) -> StudySpec:
    """The spec under another study name and/or number of trials (``vidcolor tune --trials``)."""
    if name:
        spec = spec.replace(name=name)
    if trials is not None:
        if trials < 1:
            raise VidcolorError(f"--trials must be >= 1, got {trials}")
        spec = spec.replace(num_trials=trials)
    return spec


def absolute_checkpoints(spec: StudySpec) -> StudySpec:
    """The spec with its fixed ``pretrained`` checkpoint (and ensemble members that are folders)
    as absolute paths: Ray starts every trial in a folder of its own, where a relative path would
    name nothing. A ``pretrained`` folder that does not exist is refused here, before Ray starts."""
    from study.remote import is_uri

    fixed = dict(spec.fixed)
    pretrained = fixed.get("pretrained")
    if isinstance(pretrained, str) and pretrained.lower() != "none" and not is_uri(pretrained):
        if not Path(pretrained).is_dir():
            raise VidcolorError(
                f"{spec.source}: [fixed] pretrained: checkpoint folder {pretrained} does not exist "
                f"(relative paths are taken from {Path.cwd()})"
            )
        fixed["pretrained"] = str(Path(pretrained).resolve())
    members = fixed.get("ensemble")
    if isinstance(members, (list, tuple)):
        fixed["ensemble"] = [str(Path(m).resolve()) if isinstance(m, str) and Path(m).is_dir() else m for m in members]
    return spec if fixed == dict(spec.fixed) else spec.replace(fixed=fixed)


def _resolve_paths(spec: StudySpec, shards: str | None, storage: str | None) -> _Paths:
    """The shard set (checked by the reader before any trial starts, and to have the splits a trial
    reads: train and the spec's val_split) and the Ray storage, absolute."""
    from data_shards.reader import ShardSet
    from study.train.launch import check_training_splits

    shards = shards or spec.shards
    if not shards:
        raise VidcolorError(f"{spec.source}: no shard set: give --shards or set shards in the spec")
    given = shards
    if "://" not in shards:
        if not Path(shards).exists():
            raise VidcolorError(f"shard set {shards} does not exist (make one with `vidcolor shard`)")
        shards = str(Path(shards).resolve())
    check_training_splits(ShardSet(shards), spec.base_configs()[1], given)
    storage = storage or DEFAULT_STORAGE
    if "://" not in storage:  # Ray adds the study's folders to it; a file in their way is refused now
        storage = str(Path(storage).resolve())
        for folder in (spec.name, f"{spec.name}-train"):
            outdir.check_place(Path(storage, folder), "--storage", folder=True)
    return _Paths(shards, storage, f"{storage.rstrip('/')}/{spec.name}", spec.name)


def _open_human_round(store, spec: StudySpec, paths: _Paths, resume: bool):
    """A [human] round: a new Tune experiment NAME-human-<UTC time> with the configurations
    study.tune.human samples, or (``resume``) the study's last round, restored."""
    from ray import tune

    from study.tune.human import ROUND_MARK, plan_round

    plan = None
    if resume:
        row = store.get_study(spec.name)
        last = (row or {}).get("storage_path") or ""
        if ROUND_MARK not in last.rsplit("/", 1)[-1] or not tune.Tuner.can_restore(last):
            raise VidcolorError(
                f"--resume: study {spec.name!r} has no [human] round to resume"
                f"{' (its last run is ' + last + ')' if last else ''}"
            )
        name = last.rsplit("/", 1)[-1]
    else:
        plan = plan_round(store, spec)
        name = f"{spec.name}{ROUND_MARK}{dt.datetime.now(dt.UTC).strftime('%Y%m%d-%H%M%S')}"
        log.info(
            "[human] round %s: %d trial(s) with votes, %d waiting for votes; %d new configuration(s)",
            name,
            plan.scored,
            plan.waiting,
            len(plan.points),
        )
    paths = replace(paths, experiment=f"{paths.storage.rstrip('/')}/{name}", name=name)
    store.create_study(
        spec.name,
        objective=spec.objective.metric,
        mode=spec.objective.mode,
        spec=spec.to_record(),
        storage_path=paths.experiment,
        shards=paths.shards,
        exist_ok=True,
    )
    return paths, plan


def _open_study(store, spec: StudySpec, paths: _Paths, resume: bool) -> None:
    """Record the study in the store; refuse to start over existing results or resume nothing."""
    from ray import tune

    if resume:
        if not tune.Tuner.can_restore(paths.experiment):
            raise VidcolorError(f"--resume: no study {spec.name!r} to resume at {paths.experiment}")
        if store.get_study(spec.name) is None:
            raise VidcolorError(f"--resume: study {spec.name!r} is not in {store.display_url}")
    elif _tune_state_exists(paths.experiment):
        raise VidcolorError(
            f"study {spec.name!r} already has results at {paths.experiment}: continue it with "
            "--resume, or give another --storage or spec name"
        )
    store.create_study(
        spec.name,
        objective=spec.objective.metric,
        mode=spec.objective.mode,
        spec=spec.to_record(),
        storage_path=paths.experiment,
        shards=paths.shards,
        exist_ok=resume,
    )


def _callbacks(
    spec: StudySpec,
    run: StudyRun,
    store,
    media_root: str | None,
    progress_every_s: float,
    stall_after_s: float,
    trackers=None,
):
    """The study's Tune callbacks: the results store (returned first too), the live table, the
    placement-group reclaimer and, with ``trackers``, the trackers (after the store: they read it)."""
    # these import Ray: only after init_ray has set the auth mode
    from study.tune.callbacks import ProgressTable, StoreCallback, TrackerCallback
    from study.tune.reclaim import PlacementGroupReclaimer

    store_cb = StoreCallback(store.url, run, media_root, spec.max_t)
    callbacks = [store_cb]
    if trackers is not None:
        callbacks.append(TrackerCallback(trackers, store.url, spec.name))
    callbacks += [
        ProgressTable(spec, spec.max_t, every_s=progress_every_s),
        PlacementGroupReclaimer(stall_after_s=stall_after_s),
    ]
    return store_cb, callbacks


def _tuner(
    spec: StudySpec, run: StudyRun, store, paths: _Paths, concurrency: int, resume: bool, callbacks: list, plan=None
):
    """The Tuner of a new study, or the restored one of an interrupted study; a [human] round's
    `plan` fixes its configurations (no early stopping)."""
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    # the real database URL rides in Ray's object store (with_parameters), never in Tune's storage
    # a trial that trains in its own process holds its worker's CPUs too (study.tune.trial)
    cpus = DRIVER_CPUS + (spec.resources.cpus_per_worker if run.in_trial else 0.0)
    trainable = tune.with_resources(tune.with_parameters(trial_driver, run=run, store_url=store.url), {"cpu": cpus})
    if resume:
        try:
            tuner = tune.Tuner.restore(
                paths.experiment, trainable=trainable, resume_unfinished=True, resume_errored=True
            )
        except (ImportError, AttributeError) as exc:  # its pickled state names classes that moved
            raise VidcolorError(
                f"--resume: the study at {paths.experiment} was started by an older vidcolor "
                f"and cannot be resumed by this one ({exc}); start it again under another "
                "name or --storage"
            ) from None
        return tuner
    if plan is not None:  # each point replaces one sample: exactly the sampled configurations
        search_alg, scheduler = BasicVariantGenerator(points_to_evaluate=list(plan.points)), FIFOScheduler()
        samples = len(plan.points)
    else:
        search_alg, scheduler = optuna_search(spec, store.optuna_storage_url), asha_scheduler(spec)
        samples = spec.num_trials
    return tune.Tuner(
        trainable,
        param_space=spec.param_space(),
        tune_config=tune.TuneConfig(  # no metric here: the searcher and ASHA each have their own
            search_alg=search_alg,
            scheduler=scheduler,
            num_samples=samples,
            max_concurrent_trials=concurrency,
            reuse_actors=run.in_trial,  # a trial that trains in its process: the next one reuses it
        ),
        run_config=tune.RunConfig(
            name=paths.name,
            storage_path=paths.storage,
            callbacks=callbacks,
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        ),
    )


def plan_concurrency(spec: StudySpec, cpus: float, gpus: float, local: bool) -> int:
    """Trials that fit at once: each takes DRIVER_CPUS + workers x cpus_per_worker CPUs."""
    res = spec.resources
    per_trial = DRIVER_CPUS + res.workers * res.cpus_per_worker
    gpu_trial = res.workers * res.gpus_per_worker
    where = "this machine" if local else "the cluster"
    if per_trial > cpus:
        raise VidcolorError(
            f"{spec.source}: a trial needs {per_trial:g} CPUs ({DRIVER_CPUS:g} for its driver + "
            f"{res.workers} workers x {res.cpus_per_worker:g}), {where} has {cpus:g}; "
            "lower [resources] workers or cpus_per_worker"
        )
    if gpu_trial > gpus:
        raise VidcolorError(
            f"{spec.source}: a trial needs {gpu_trial:g} GPUs ([resources] gpus_per_worker), {where} has {gpus:g}"
        )
    fit = int(cpus // per_trial)
    if gpu_trial > 0:
        fit = min(fit, int(gpus // gpu_trial))
    return max(1, min(spec.max_concurrent, fit))


def _tune_state_exists(path: str) -> bool:
    if "://" in path:
        from ray import tune

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
            store.finish_trial(study, trial_id, finished_status(result.metrics, max_t))


def _best(df, spec: StudySpec) -> dict[str, Any] | None:
    if df is None or df.empty or df["objective"].isna().all():
        return None
    ordered = df.dropna(subset=["objective"]).sort_values("objective", ascending=spec.objective.mode == "min")
    return ordered.iloc[0].to_dict()
