"""One Tune trial: a driver function that trains the trial's configuration.

Tune runs ``trial_driver`` per trial (not a Trainer inside the Tuner, which Ray Train V2 no longer
supports). A trial of one CPU worker trains in the driver's own process
(`study.train.session.TrialSession`): no TorchTrainer, controller and worker group to start and
stop, which took most of a short trial's wall time. Other trials (DDP workers, a GPU) build a
``TorchTrainer`` named ``train-{trial_id}`` (so a relaunched trial resumes from its own last
checkpoint) with ``TuneReportCallback``. Either way one report per epoch is one Tune result, which
ASHA counts, and the checkpoints live under ``{train_storage}/train-{trial_id}/``. A deterministic
failure (NaN loss, bad setting) is marked in the trial's run folder, so a Tune-level retry fails
at once instead of training again in vain.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from study.config.spec import StudySpec
from study.tune.secrets import remember, resolve

log = logging.getLogger(__name__)

FINISHED = ("TERMINATED", "STOPPED")


def finished_status(last_result: Mapping[str, Any] | None, max_t: int) -> str:
    """The store's status of a trial that completed: TERMINATED after ``max_t`` epochs, else
    STOPPED (early, by ASHA)."""
    return "TERMINATED" if int((last_result or {}).get("epoch") or 0) >= max_t else "STOPPED"


@dataclass(frozen=True)
class StudyRun:
    """What every trial driver needs (pickled to the trial's actor)."""

    spec: StudySpec
    shards: str
    train_storage: str  # where the Train runs of the trials live (shared storage on a cluster)
    store_url: str | None = None  # the results database, password masked (study.tune.secrets)
    media_root: str | None = None  # the study's sample media folder (None: no media)

    def __post_init__(self):
        # Tune pickles the run (in its callbacks) into its storage: never with a password in it.
        object.__setattr__(self, "store_url", remember(self.store_url))

    @property
    def use_gpu(self) -> bool:
        return self.spec.resources.gpus_per_worker > 0

    @property
    def in_trial(self) -> bool:
        """Whether a trial trains in its own process (`study.train.session.TrialSession`): one CPU
        worker. More workers (DDP) or a GPU go through a TorchTrainer."""
        return self.spec.resources.workers == 1 and not self.use_gpu

    def epoch_media(self, trial_id: str) -> dict[str, Any] | None:
        """The loop config's ``media`` for a trial (`study.media.samples.EpochMedia`): its sample
        frames every ``media_every`` epochs under MEDIA_ROOT/TRIAL/epochs, or None."""
        spec = self.spec
        if not self.media_root or spec.media_every < 1 or spec.media_clips < 1:
            return None
        return {"dir": f"{self.media_root}/{trial_id}/epochs", "every": spec.media_every, "clips": spec.media_clips}


def trial_driver(params: dict[str, Any], run: StudyRun, store_url: str | None = None) -> None:
    """One Tune trial: train ``params`` in this process (one CPU worker) or with a TorchTrainer,
    forwarding rank 0's reports to Tune.

    ``store_url`` is the real URL of the results database (``run`` has it masked); it comes through
    ``tune.with_parameters``, that is Ray's object store, never Tune's storage."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from study.train.launch import Placement, make_trainer, raise_for_error
    from study.train.loop import TrainingError
    from study.train.session import TrialSession

    trial_id = tune.get_context().get_trial_id()
    # the trial's run folder (its checkpoints, either way it trains) also keeps the mark of a
    # deterministic failure: a Tune-level retry, in whichever actor, fails at once
    session = TrialSession(f"{run.train_storage.rstrip('/')}/train-{trial_id}")
    if failed := session.failed():
        raise TrainingError(failed)
    if _finished_in_store(run, trial_id, store_url):
        # Resumed from an experiment state saved just before the trial ended: it is done.
        log.info("trial %s already finished (results store); not run again", trial_id)
        return
    experiment, train = run.spec.trial_configs(params)
    experiment.check_ready()
    if run.in_trial:
        _train_here(run, session, experiment, train, run.epoch_media(trial_id))
        return
    res = run.spec.resources
    placement = Placement(workers=res.workers, cpus_per_worker=res.cpus_per_worker, use_gpu=run.use_gpu)
    trainer = make_trainer(
        experiment,
        train,
        run.shards,
        placement,
        storage_path=run.train_storage,
        name=f"train-{trial_id}",
        max_failures=run.spec.max_failures,
        callbacks=[TuneReportCallback()],
        media=run.epoch_media(trial_id),
    )
    result = trainer.fit()
    try:
        raise_for_error(result)
    except TrainingError as exc:
        session.mark_failed(str(exc))
        raise


def _train_here(run: StudyRun, session, experiment, train, media: dict[str, Any] | None = None) -> None:
    """Train in this process (no TorchTrainer): each epoch one Tune result, checkpoints under the
    trial's Train folder (`study.train.session.TrialSession`)."""
    import torch

    from study.train.loop import ERROR_KEY, TrainingError, train_loop

    # Ray sets one thread for an actor of 1.x CPUs; use what the trial reserved for its worker
    torch.set_num_threads(max(1, round(run.spec.resources.cpus_per_worker)))
    config = {
        "experiment": experiment.to_dict(),
        "train": train.to_dict(),
        "shards": run.shards,
        "local_mode": False,
        "media": media,
    }
    result = train_loop(config, session=session)
    if isinstance(result, dict) and result.get(ERROR_KEY):
        session.mark_failed(result[ERROR_KEY])
        raise TrainingError(result[ERROR_KEY])


def _finished_in_store(run: StudyRun, trial_id: str, store_url: str | None = None) -> bool:
    if not (store_url or run.store_url):
        return False
    try:
        from study.store import Store

        row = Store(store_url or resolve(run.store_url), create=False).get_trial(run.spec.name, trial_id)
    except Exception as exc:
        log.debug("results store not reachable from the trial driver: %s", exc)
        return False
    return bool(row and row["status"] in FINISHED)
