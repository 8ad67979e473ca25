"""``key=value`` settings: parsing ``--set`` items and routing each setting to its config.

A setting names a field of :class:`~study.config.train.TrainConfig` (the training loop) or of
``models.presets.ExperimentConfig`` (the model); the two share no field name, so every key has
exactly one home. ``--set`` text, a study spec's ``[fixed]`` table and a trial's sampled values all
go through :func:`apply_settings`; a key that is neither config's field is an error that lists
the valid ones. Errors are ``models.config.FieldError``: the source, the setting, what is allowed
and the value (``--set: field grid: must be in [2, 64], got 1000``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from models.config import FieldError, field_names
from models.errors import VidcolorError
from models.presets import ExperimentConfig
from study.config.train import TrainConfig


def setting_names() -> tuple[str, ...]:
    """Every valid setting key, sorted: the fields of ExperimentConfig and TrainConfig."""
    return tuple(sorted(field_names(ExperimentConfig) + field_names(TrainConfig)))


def check_setting_name(key: str) -> None:
    """Raise ``field KEY: unknown setting (allowed: ...)`` unless ``key`` is a setting."""
    if key not in setting_names():
        raise FieldError((key,), f"unknown setting (allowed: {', '.join(setting_names())})")


def parse_sets(items: Iterable[str]) -> dict[str, str]:
    """``["lam=0.5", "size=tiny"]`` -> ``{"lam": "0.5", "size": "tiny"}`` (text; typed by apply_settings)."""
    settings: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise VidcolorError(f"--set expects KEY=VALUE, got {item!r}")
        settings[key] = value.strip()
    return settings


def apply_settings(
    experiment: ExperimentConfig, train: TrainConfig, settings: Mapping[str, Any], where: str | None = "--set"
) -> tuple[ExperimentConfig, TrainConfig]:
    """Both configs with ``settings`` applied, validated.

    Values may be typed (TOML) or text (``--set``), which is parsed by the field's type
    (``pretrained=none`` -> None, ``ensemble=a,b`` -> a tuple). ``where`` prefixes error messages
    (a file and table, or ``--set``); with None the error is raised without it. Either way it is a
    ``models.config.FieldError`` whose path is the setting's name."""
    experiment_keys = set(field_names(ExperimentConfig))
    try:
        for key in settings:
            check_setting_name(key)
        experiment = experiment.with_settings({k: v for k, v in settings.items() if k in experiment_keys})
        train = train.with_settings({k: v for k, v in settings.items() if k not in experiment_keys})
    except FieldError as exc:
        if where is None:
            raise
        raise exc.within(where) from None
    return experiment, train
