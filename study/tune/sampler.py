"""The Optuna sampler a study spec asks for, shared by the study (`study.tune.runner`) and its
``[human]`` rounds (`study.tune.human`), so both sample with the same settings."""

from __future__ import annotations

from study.config.spec import StudySpec


def optuna_sampler(spec: StudySpec):
    """The spec's sampler: multivariate TPE with the constant liar (it handles several objectives
    too, as a [human] round's), or random."""
    import optuna  # imported when a study starts, not with the CLI

    if spec.sampler.kind == "tpe":
        return optuna.samplers.TPESampler(
            seed=spec.sampler.seed,
            multivariate=True,
            constant_liar=True,
            n_startup_trials=spec.sampler.n_startup_trials,
        )
    return optuna.samplers.RandomSampler(seed=spec.sampler.seed)
