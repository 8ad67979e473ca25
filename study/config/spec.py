"""Study specs (TOML) and the training config of one run.

A study spec names what a hyperparameter study varies and what it keeps fixed, following the
tuning playbook's split into scientific, nuisance and fixed hyperparameters:

    name = "demo"                 # also the Optuna study name
    shards = "demo_run/shards"    # default shard set (``vidcolor tune --shards`` overrides it)
    preset = "exp5"               # models.presets: exp1 ... exp5
    num_trials = 6
    max_concurrent = 1

    [fixed]                       # any setting: ExperimentConfig or TrainConfig field
    size = "tiny"
    epochs = 3

    [search.lam]                  # one table per searched setting
    type = "float"                # float | int | choice
    low = 0.2
    high = 1.0
    log = false

    [objective]                   # metric reported by the training loop, and its direction
    metric = "val_rmse_rgb"
    mode = "min"

    [sampler]                     # tpe (multivariate, constant liar) | random
    kind = "tpe"
    seed = 0

    [asha]                        # early stopping of poor trials (epochs are ASHA's time unit)
    grace_period = 1
    reduction_factor = 2

    [resources]                   # per trial: Ray Train workers and what each one gets
    workers = 1
    cpus_per_worker = 1
    gpus_per_worker = 0

Every value is validated when the file is read; an error names the file and the field.
``--set key=value`` (``vidcolor train``, ``vidcolor experiments``) goes through the same
``apply_settings`` as ``[fixed]``: a key is a field of :class:`TrainConfig` or of
``models.presets.ExperimentConfig``.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from models.errors import VidcolorError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


# ---------------------------------------------------------------------------------------------
# One training run
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """Settings of the training loop of one run (the model's settings are ExperimentConfig's)."""

    lr: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 0.0
    """Adam weight decay (L2)."""
    epochs: int = 2
    """Epochs; each ends with a validation pass, a report and a checkpoint."""
    steps_per_epoch: int = 20
    """Optimizer steps per epoch, the same on every rank (shards are streamed, resampled)."""
    batch_size: int = 8
    """Windows per step on each rank."""
    val_batches: int = 0
    """Validation batches per rank and epoch; 0 = the whole validation split."""
    val_batch_size: int = 8
    """Windows per validation batch."""
    val_split: str = "val"
    """Split that validation reads."""
    grad_clip: float = 0.0
    """Clip the gradient norm to this value; 0 = no clipping."""
    amp: bool = True
    """bf16 autocast when training on a GPU (ignored on CPU)."""
    seed: int = 0
    """Seed of the model's initialisation and of the loader's shuffling."""
    loader_workers: int = 0
    """DataLoader worker processes per rank."""
    shuffle_buffer: int = 64
    """Shuffle buffer of the shard reader (clips, before decoding)."""
    metric: str = "val_rmse_rgb"
    """Validation metric that picks the best checkpoint."""
    mode: str = "min"
    """``min`` or ``max`` for ``metric``."""

    def __post_init__(self) -> None:
        _check_fields(self, "TrainConfig")
        positive = ("lr", "epochs", "steps_per_epoch", "batch_size", "val_batch_size", "shuffle_buffer")
        for name in positive:
            if getattr(self, name) <= 0:
                raise VidcolorError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("weight_decay", "val_batches", "grad_clip", "loader_workers"):
            if getattr(self, name) < 0:
                raise VidcolorError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not math.isfinite(self.lr):
            raise VidcolorError(f"lr must be finite, got {self.lr!r}")
        if self.mode not in ("min", "max"):
            raise VidcolorError(f"mode must be 'min' or 'max', got {self.mode!r}")
        if not self.metric:
            raise VidcolorError("metric must not be empty")

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise VidcolorError(f"unknown TrainConfig field(s): {', '.join(unknown)}")
        return cls(**dict(data))


def _check_fields(obj: Any, what: str) -> None:
    """Type-check a dataclass's fields from their annotations (int, float, bool, str)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        if kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise VidcolorError(f"{what}.{f.name} must be a number, got {value!r}")
            object.__setattr__(obj, f.name, float(value))
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise VidcolorError(f"{what}.{f.name} must be an integer, got {value!r}")
        elif kind == "bool":
            if not isinstance(value, bool):
                raise VidcolorError(f"{what}.{f.name} must be true or false, got {value!r}")
        elif kind == "str":
            if not isinstance(value, str):
                raise VidcolorError(f"{what}.{f.name} must be a string, got {value!r}")


TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def experiment_fields() -> tuple[str, ...]:
    from models.presets import ExperimentConfig

    return tuple(f.name for f in dataclasses.fields(ExperimentConfig))


def _coerce_train(key: str, text: str) -> Any:
    """A TrainConfig value from ``--set`` text, by the field's type."""
    kind = {f.name: f.type for f in dataclasses.fields(TrainConfig)}[key]
    text = text.strip()
    try:
        if kind == "bool":
            if text.lower() in ("true", "1", "yes", "on"):
                return True
            if text.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise VidcolorError(f"{key}: expected {kind}, got {text!r}") from None
    return text


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


def apply_settings(experiment, train: TrainConfig, settings: Mapping[str, Any], where: str = "--set"):
    """Route each setting to TrainConfig or ExperimentConfig; returns both, validated.

    Values may be typed (TOML) or text (``--set``: coerced by the field's type; experiment fields
    through ``ExperimentConfig.with_overrides``, so ``pretrained=none`` and ``ensemble=a,b`` work).
    ``where`` prefixes error messages (a file and table, or ``--set``)."""
    exp_fields = set(experiment_fields())
    train_changes: dict[str, Any] = {}
    exp_changes: dict[str, Any] = {}
    exp_text: dict[str, str] = {}
    try:
        for key, value in settings.items():
            if key in TRAIN_FIELDS:
                train_changes[key] = _coerce_train(key, value) if isinstance(value, str) else value
            elif key in exp_fields:
                if isinstance(value, str):
                    exp_text[key] = value
                else:
                    exp_changes[key] = tuple(value) if isinstance(value, list) else value
            else:
                known = ", ".join(sorted(set(TRAIN_FIELDS) | exp_fields))
                raise VidcolorError(f"unknown setting {key!r} (known: {known})")
        if train_changes:
            train = train.replace(**train_changes)
        if exp_changes:
            experiment = experiment.replace(**exp_changes)
        if exp_text:
            experiment, _ = experiment.with_overrides(exp_text)
    except VidcolorError as exc:
        raise VidcolorError(f"{where}: {exc}") from None
    return experiment, train


# ---------------------------------------------------------------------------------------------
# The study spec
# ---------------------------------------------------------------------------------------------

PARAM_TYPES = ("float", "int", "choice")


@dataclass(frozen=True)
class SearchParam:
    """One searched setting."""

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    def to_tune(self):
        """The Ray Tune domain (OptunaSearch converts it to an Optuna distribution)."""
        from ray import tune

        if self.type == "choice":
            return tune.choice(list(self.choices))
        if self.type == "int":
            step = int(self.step or 1)
            if self.log:  # lograndint excludes the upper bound
                return tune.lograndint(int(self.low), int(self.high) + 1)
            return tune.qrandint(int(self.low), int(self.high), step)  # includes high
        if self.step:
            return (tune.qloguniform if self.log else tune.quniform)(self.low, self.high, self.step)
        return (tune.loguniform if self.log else tune.uniform)(self.low, self.high)

    def contains(self, value: Any) -> bool:
        if self.type == "choice":
            return value in self.choices
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Objective:
    metric: str = "val_rmse_rgb"
    mode: str = "min"


@dataclass(frozen=True)
class SamplerSpec:
    kind: str = "tpe"
    seed: int = 0
    n_startup_trials: int = 3
    """TPE's random trials before it models the space."""


@dataclass(frozen=True)
class AshaSpec:
    enabled: bool = True
    grace_period: int = 1
    reduction_factor: float = 2.0
    max_t: int = 0
    """Epochs at most; 0 = the training epochs."""


@dataclass(frozen=True)
class Resources:
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0


@dataclass(frozen=True)
class StudySpec:
    """A validated study spec (see the module docstring for the file format)."""

    name: str
    preset: str
    shards: str | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    search: tuple[SearchParam, ...] = ()
    objective: Objective = Objective()
    sampler: SamplerSpec = SamplerSpec()
    asha: AshaSpec = AshaSpec()
    num_trials: int = 4
    max_concurrent: int = 1
    resources: Resources = Resources()
    max_failures: int = 2
    """Ray Train retries of a trial after a worker or node failure (from the last checkpoint)."""
    media_clips: int = 2
    """Validation clips rendered as sample media per finished trial."""
    points_to_evaluate: tuple[Mapping[str, Any], ...] = ()
    """Configurations tried first (e.g. known good settings), each a value for every searched setting."""
    source: str = "<spec>"

    # -- derived configs ------------------------------------------------------------------------

    def base_configs(self):
        """(ExperimentConfig, TrainConfig) of the preset with the fixed settings applied; the
        best-checkpoint metric is the objective."""
        from models.presets import get_preset

        train = TrainConfig(metric=self.objective.metric, mode=self.objective.mode)
        return apply_settings(get_preset(self.preset), train, self.fixed, where=f"{self.source}: [fixed]")

    def trial_configs(self, params: Mapping[str, Any]):
        """(ExperimentConfig, TrainConfig) of one trial: the base configs plus its sampled params."""
        experiment, train = self.base_configs()
        return apply_settings(experiment, train, dict(params), where=f"{self.source}: [search]")

    def param_space(self) -> dict[str, Any]:
        return {p.name: p.to_tune() for p in self.search}

    @property
    def max_t(self) -> int:
        return self.asha.max_t or self.base_configs()[1].epochs

    def replace(self, **changes: Any) -> "StudySpec":
        return dataclasses.replace(self, **changes)


_TOP_KEYS = {"name", "preset", "shards", "num_trials", "max_concurrent", "max_failures", "media_clips",
             "points_to_evaluate",
             "fixed", "search", "objective", "sampler", "asha", "resources"}


class _Reader:
    """Pulls typed values out of a TOML table; every error names the file and the field."""

    def __init__(self, source: str, table: Mapping[str, Any], prefix: str = ""):
        self.source, self.table, self.prefix = source, table, prefix

    def error(self, key: str, message: str) -> VidcolorError:
        return VidcolorError(f"{self.source}: field {self.prefix}{key}: {message}")

    def get(self, key: str, kind: type | tuple, default: Any = dataclasses.MISSING) -> Any:
        if key not in self.table:
            if default is dataclasses.MISSING:
                raise self.error(key, "is required")
            return default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.error(key, f"must be {_kind_name(kinds)}, got {value!r}")
        if not isinstance(value, kinds):
            raise self.error(key, f"must be {_kind_name(kinds)}, got {value!r}")
        return value

    def only(self, allowed: Iterable[str]) -> None:
        unknown = sorted(set(self.table) - set(allowed))
        if unknown:
            raise self.error(unknown[0], f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def sub(self, key: str) -> "_Reader":
        table = self.get(key, dict, {})
        return _Reader(self.source, table, f"{self.prefix}{key}.")


def _kind_name(kinds: tuple) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a table",
             list: "an array"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _search_param(reader: _Reader, name: str, known: set[str]) -> SearchParam:
    if name not in known:
        raise reader.error(name, f"unknown setting (known: {', '.join(sorted(known))})")
    table = reader.sub(name)
    ptype = table.get("type", str)
    if ptype not in PARAM_TYPES:
        raise table.error("type", f"must be one of {', '.join(PARAM_TYPES)}, got {ptype!r}")
    if ptype == "choice":
        table.only({"type", "choices"})
        choices = table.get("choices", list)
        if not choices:
            raise table.error("choices", "must not be empty")
        if len(set(map(repr, choices))) != len(choices):
            raise table.error("choices", f"has duplicates: {choices!r}")
        return SearchParam(name, ptype, choices=tuple(choices))
    table.only({"type", "low", "high", "log", "step"})
    number = int if ptype == "int" else (int, float)
    low, high = table.get("low", number), table.get("high", number)
    log = table.get("log", bool, False)
    step = table.get("step", number, None)
    if not low < high:
        raise table.error("low", f"must be < high (low={low!r}, high={high!r})")
    if log and low <= 0:
        raise table.error("low", f"must be > 0 with log = true, got {low!r}")
    if step is not None and step <= 0:
        raise table.error("step", f"must be > 0, got {step!r}")
    if step is not None and log and ptype == "int":
        raise table.error("step", "cannot be combined with log for an int")
    if ptype == "float":
        low, high = float(low), float(high)
    return SearchParam(name, ptype, low=low, high=high, log=log, step=step)


def parse_spec(data: Mapping[str, Any], source: str = "<spec>") -> StudySpec:
    """Validate a spec already parsed from TOML."""
    top = _Reader(source, data)
    top.only(_TOP_KEYS)
    name = top.get("name", str)
    if not name or any(c in name for c in "/\\ ") or name.startswith("."):
        raise top.error("name", f"must be a non-empty name without spaces or slashes, got {name!r}")
    preset = top.get("preset", str)
    from models.presets import PRESETS

    if preset not in PRESETS:
        raise top.error("preset", f"must be one of {', '.join(sorted(PRESETS))}, got {preset!r}")
    shards = top.get("shards", str, None)
    num_trials = top.get("num_trials", int, 4)
    max_concurrent = top.get("max_concurrent", int, 1)
    max_failures = top.get("max_failures", int, 2)
    media_clips = top.get("media_clips", int, 2)
    for key, value, least in (("num_trials", num_trials, 1), ("max_concurrent", max_concurrent, 1),
                              ("max_failures", max_failures, 0), ("media_clips", media_clips, 0)):
        if value < least:
            raise top.error(key, f"must be >= {least}, got {value!r}")

    known = set(TRAIN_FIELDS) | set(experiment_fields())
    fixed = dict(top.get("fixed", dict, {}))
    for key in fixed:
        if key not in known:
            raise top.error(f"fixed.{key}", f"unknown setting (known: {', '.join(sorted(known))})")
        if key in ("metric", "mode"):
            raise top.error(f"fixed.{key}", "comes from [objective], not [fixed]")

    search_reader = top.sub("search")
    search = tuple(_search_param(search_reader, key, known) for key in search_reader.table)
    for param in search:
        if param.name in fixed:
            raise search_reader.error(param.name, "is also in [fixed]; a setting is either fixed or searched")
        if param.name in ("metric", "mode"):
            raise search_reader.error(param.name, "cannot be searched")

    obj = top.sub("objective")
    obj.only({"metric", "mode"})
    objective = Objective(metric=obj.get("metric", str, "val_rmse_rgb"), mode=obj.get("mode", str, "min"))
    if objective.mode not in ("min", "max"):
        raise obj.error("mode", f"must be 'min' or 'max', got {objective.mode!r}")
    if not objective.metric:
        raise obj.error("metric", "must not be empty")

    smp = top.sub("sampler")
    smp.only({"kind", "seed", "n_startup_trials"})
    sampler = SamplerSpec(kind=smp.get("kind", str, "tpe"), seed=smp.get("seed", int, 0),
                          n_startup_trials=smp.get("n_startup_trials", int, 3))
    if sampler.kind not in ("tpe", "random"):
        raise smp.error("kind", f"must be 'tpe' or 'random', got {sampler.kind!r}")
    if sampler.n_startup_trials < 0:
        raise smp.error("n_startup_trials", f"must be >= 0, got {sampler.n_startup_trials!r}")

    a = top.sub("asha")
    a.only({"enabled", "grace_period", "reduction_factor", "max_t"})
    asha = AshaSpec(enabled=a.get("enabled", bool, True), grace_period=a.get("grace_period", int, 1),
                    reduction_factor=float(a.get("reduction_factor", (int, float), 2.0)),
                    max_t=a.get("max_t", int, 0))
    if asha.grace_period < 1:
        raise a.error("grace_period", f"must be >= 1, got {asha.grace_period!r}")
    if asha.reduction_factor <= 1:
        raise a.error("reduction_factor", f"must be > 1, got {asha.reduction_factor!r}")
    if asha.max_t < 0:
        raise a.error("max_t", f"must be >= 0, got {asha.max_t!r}")

    r = top.sub("resources")
    r.only({"workers", "cpus_per_worker", "gpus_per_worker"})
    resources = Resources(workers=r.get("workers", int, 1),
                          cpus_per_worker=float(r.get("cpus_per_worker", (int, float), 1.0)),
                          gpus_per_worker=float(r.get("gpus_per_worker", (int, float), 0.0)))
    if resources.workers < 1:
        raise r.error("workers", f"must be >= 1, got {resources.workers!r}")
    if resources.cpus_per_worker <= 0:
        raise r.error("cpus_per_worker", f"must be > 0, got {resources.cpus_per_worker!r}")
    if resources.gpus_per_worker < 0:
        raise r.error("gpus_per_worker", f"must be >= 0, got {resources.gpus_per_worker!r}")

    points = top.get("points_to_evaluate", list, [])
    by_name = {p.name: p for p in search}
    for i, point in enumerate(points):
        if not isinstance(point, dict):
            raise top.error(f"points_to_evaluate[{i}]", f"must be a table, got {point!r}")
        if set(point) != set(by_name):
            raise top.error(f"points_to_evaluate[{i}]", f"must set exactly the searched settings "
                            f"({', '.join(sorted(by_name))}), got {', '.join(sorted(point))}")
        for key, value in point.items():
            if not by_name[key].contains(value):
                raise top.error(f"points_to_evaluate[{i}].{key}", f"{value!r} is outside the search space")

    spec = StudySpec(name=name, preset=preset, shards=shards, fixed=fixed, search=search,
                     objective=objective, sampler=sampler, asha=asha, num_trials=num_trials,
                     max_concurrent=max_concurrent, resources=resources, max_failures=max_failures,
                     media_clips=media_clips, points_to_evaluate=tuple(points), source=source)
    # The fixed settings must make a valid config, and so must each searched value at its ends.
    _, train = spec.base_configs()
    for param in search:
        ends = param.choices if param.type == "choice" else (param.low, param.high)
        for value in ends:
            try:
                spec.trial_configs({param.name: value})
            except VidcolorError as exc:
                raise search_reader.error(param.name, f"value {value!r} is invalid: {exc}") from None
    if asha.max_t and asha.max_t > train.epochs:
        raise a.error("max_t", f"must be <= epochs ({train.epochs}), got {asha.max_t!r}")
    if asha.grace_period > (asha.max_t or train.epochs):
        raise a.error("grace_period", f"must be <= max_t ({asha.max_t or train.epochs}), got {asha.grace_period!r}")
    return spec


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study spec. A bare name (``demo``) means ``study/configs/demo.toml``."""
    p = Path(path)
    if not p.is_file() and not p.suffix and (CONFIG_DIR / f"{p}.toml").is_file():
        p = CONFIG_DIR / f"{p}.toml"
    if not p.is_file():
        raise VidcolorError(f"study spec not found: {path}")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise VidcolorError(f"{p}: invalid TOML: {exc}") from None
    return parse_spec(data, source=str(p))


def shipped_specs() -> list[Path]:
    return sorted(CONFIG_DIR.glob("*.toml"))
