"""What a study optimizes, as Ray Tune gets it: Optuna's searcher with the spec's objective (or the
lists of its objectives: Optuna's multi-objective sampler), and ASHA on the one objective it judges
(``spec.objective``: ``[asha] metric``, else the first). Ray is imported inside the functions, when a
study starts; ``judged_words`` says what ASHA judges for the tune summary without it."""

from __future__ import annotations

import logging

from study.config.spec import StudySpec
from study.tune.sampler import optuna_sampler

log = logging.getLogger(__name__)


def searched_objectives(spec: StudySpec) -> tuple[str | list[str], str | list[str]]:
    """The searcher's metric and mode: the objective's, or the lists of every objective's (Optuna's
    multi-objective sampler, one direction per metric)."""
    if spec.multi_objective:
        return [o.metric for o in spec.objectives], [o.mode for o in spec.objectives]
    return spec.objective.metric, spec.objective.mode


def optuna_search(spec: StudySpec, storage_url: str | None):
    """The study's OptunaSearch with its objectives; Tune gives it the search space (the Tuner's
    ``param_space``) and no metric, so the lists stay. With several objectives it is
    ``study.tune.search.StudySearch``: a trial ASHA stopped is PRUNED in Optuna's study."""
    from ray.tune.search.optuna import OptunaSearch

    from study.tune.optuna_storage import study_storage  # pickled with the password masked
    from study.tune.search import StudySearch

    storage = study_storage(storage_url) if storage_url else None
    metric, mode = searched_objectives(spec)
    kwargs = dict(
        metric=metric,
        mode=mode,
        sampler=optuna_sampler(spec),
        storage=storage,
        study_name=spec.name,
        points_to_evaluate=[dict(p) for p in spec.points_to_evaluate] or None,
    )
    return StudySearch(max_t=spec.max_t, **kwargs) if spec.multi_objective else OptunaSearch(**kwargs)


def asha_scheduler(spec: StudySpec):
    """ASHA on the judged objective (``spec.objective``), or no early stopping."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if not spec.asha.enabled:
        return FIFOScheduler()
    return ASHAScheduler(
        metric=spec.objective.metric,
        mode=spec.objective.mode,
        time_attr="epoch",
        max_t=spec.max_t,
        grace_period=spec.asha.grace_period,
        reduction_factor=spec.asha.reduction_factor,
    )


def log_objectives(spec: StudySpec) -> None:
    """Log a multi-objective study's objectives and what ASHA judges, as it starts."""
    if spec.multi_objective:
        log.info(
            "objectives: %s (Optuna's multi-objective sampler); %s",
            ", ".join(f"{o.metric} ({o.mode})" for o in spec.objectives),
            judged_words(spec),
        )


def judged_words(spec: StudySpec) -> str:
    """What ASHA judges and what each trial keeps, in words (the tune log and summary say it)."""
    metric = f"{spec.objective.metric} ({spec.objective.mode})"
    stops = f"ASHA stops trials on {metric}" if spec.asha.enabled else "no early stopping (ASHA off)"
    return f"{stops}; each trial keeps its checkpoint of best {spec.objective.metric}"
