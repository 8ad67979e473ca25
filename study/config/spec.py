"""Study specs: the TOML file that says what a hyperparameter study varies and keeps fixed.

The file follows the tuning playbook's split into scientific, nuisance and fixed hyperparameters:

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

    # or, for a multi-objective study, two or more [[objectives]] tables instead of [objective]:
    # [[objectives]]
    # metric = "val_rmse_ratio"
    # mode = "min"
    # [[objectives]]
    # metric = "val_warp_error"
    # mode = "min"

    [sampler]                     # tpe (multivariate, constant liar) | random
    kind = "tpe"
    seed = 0

    [human]                       # optional: the Color Turing Test's verdict as a second objective
    score = "fool_rate"           # fool_rate | mean_rating | bt_score (pairwise), always maximized
    campaign = "round1"           # only this campaign's votes (default: every vote of the study)
    min_votes = 10                # a trial's score counts from this many votes (comparisons for bt_score)

    [asha]                        # early stopping of poor trials (epochs are ASHA's time unit)
    grace_period = 1
    reduction_factor = 2
    metric = "val_rmse_ratio"     # the objective ASHA judges (default: the first)

    [resources]                   # per trial: Ray Train workers and what each one gets
    workers = 1
    cpus_per_worker = 1
    gpus_per_worker = 0

Each table is a pydantic model (strict types, no unknown keys; ``study.config.tables``);
:class:`StudySpec` then checks the tables against each other and builds the configs of the fixed
settings and of both ends of every searched range. A study searches at least one setting, and each
of its objectives is a different metric the training loop reports (:func:`reported_metrics`).

``[objective]`` is the shorthand of one ``[[objectives]]`` table; the spec holds the list
(``objectives``). With several, Optuna's multi-objective sampler searches them all, while ASHA
stops trials on one of them, :attr:`StudySpec.objective` (``asha.metric``, else the first), and
each trial keeps its best checkpoint by that one too. Every error is a
``models.config.FieldError`` naming the file, the field path, what is allowed and the value:
``demo.toml: field search.lam.low: must be < high (low=1.0, high=0.2)``,
``demo.toml: field search.grid.choices[1]: must be in [2, 64], got 999``,
``demo.toml: field objectives[1].metric: must differ from objectives[0].metric, got 'val_psnr'``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from models.config import FieldError, Problem, config_error, first_problem
from models.errors import VidcolorError
from models.presets import PRESETS, ExperimentConfig, get_preset
from study.config.metric_names import LOOP_METRICS, METRICS
from study.config.settings import apply_settings, setting_names
from study.config.tables import AshaSpec, HumanObjective, Resources, SamplerSpec, SearchParam, Table
from study.config.train import TrainConfig
from study.report import json_clean

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

_OBJECTIVE_KEYS = ("metric", "mode")  # from [objective] only: never fixed or searched


def reported_metrics() -> tuple[str, ...]:
    """The metrics every epoch of the training loop reports, sorted: ``val_<name>`` for each of
    ``study.evaluation.metrics.METRICS`` and the loop's own ``LOOP_METRICS`` (losses, times...)."""
    return tuple(sorted({*(f"val_{name}" for name in METRICS), *LOOP_METRICS}))


class Objective(Table):
    """``[objective]``: the metric the training loop reports that the study optimizes."""

    metric: str = Field("val_rmse_rgb", min_length=1)
    mode: Literal["min", "max"] = "min"

    @field_validator("metric")
    @classmethod
    def _reported(cls, metric: str) -> str:
        known = reported_metrics()  # another metric would fail every trial
        if metric not in known:
            raise Problem((), f"{metric!r} is not reported by the training loop (it reports: {', '.join(known)})")
        return metric


class StudySpec(Table):
    """A validated study spec (see the module docstring for the file format)."""

    name: str
    """Study name (also the Optuna study's): no spaces or slashes."""
    preset: str
    """The experiment preset every trial starts from (models.presets)."""
    shards: str | None = None
    """Default shard set (``vidcolor tune --shards`` overrides it)."""
    fixed: dict[str, Any] = {}
    """Settings every trial shares: ExperimentConfig or TrainConfig fields."""
    search: tuple[SearchParam, ...] = Field((), strict=False)
    """The searched settings, in file order."""
    objectives: tuple[Objective, ...] = Field((Objective(),), strict=False)
    """What the study optimizes, in file order (``[objective]`` or ``[[objectives]]``); see :attr:`objective`."""
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    human: HumanObjective | None = None
    """The CTT verdict as a second objective (a continuation of the study once votes are in)."""
    asha: AshaSpec = Field(default_factory=AshaSpec)
    num_trials: int = Field(4, ge=1)
    max_concurrent: int = Field(1, ge=1)
    resources: Resources = Field(default_factory=Resources)
    max_failures: int = Field(2, ge=0)
    """Ray Train retries of a trial after a worker or node failure (from the last checkpoint)."""
    media_clips: int = Field(2, ge=0)
    """Validation clips rendered as sample media per finished trial."""
    media_every: int = Field(0, ge=0)
    """Render those clips' predicted frames every this many epochs while a trial trains (and at its
    last epoch), for the dashboard's epoch slider and the trackers; 0: only once at the end."""
    points_to_evaluate: tuple[dict[str, Any], ...] = Field((), strict=False)
    """Configurations tried first (e.g. known good settings), each a value for every searched setting."""
    source: str = "<spec>"
    """Where the spec came from (its file), for error messages."""

    INTERNAL_KEYS: ClassVar[tuple[str, ...]] = ("source",)

    @classmethod
    def allowed_keys(cls, data: Mapping[str, Any]) -> tuple[str, ...]:
        """The fields, and ``objective`` (the one-objective shorthand of ``objectives``)."""
        return (*super().allowed_keys(data), "objective")

    @model_validator(mode="before")
    @classmethod
    def _objective_table(cls, data: Any) -> Any:
        """``[objective]`` (a file, a spec record written before ``objectives``) becomes the one
        entry of ``objectives``; its errors keep the file's path (``objective.mode``)."""
        if not isinstance(data, Mapping) or "objective" not in data:
            return data
        if "objectives" in data:
            raise Problem(("objective",), "give one [objective] table or [[objectives]] tables, not both")
        table = data["objective"]
        if not isinstance(table, Mapping):
            raise Problem(("objective",), f"must be a table, got {table!r}")
        try:
            objective = Objective.model_validate(table)
        except ValidationError as exc:
            problem = first_problem(exc, Objective)
            raise Problem(("objective", *problem.path), problem.message) from None
        return {**{k: v for k, v in data.items() if k != "objective"}, "objectives": (objective,)}

    @property
    def objective(self) -> Objective:
        """The objective ASHA stops trials on and each trial keeps its best checkpoint by (also the
        results store's objective column): ``asha.metric``, else the first of :attr:`objectives`."""
        metric = self.asha.metric or self.objectives[0].metric
        return next(o for o in self.objectives if o.metric == metric)

    @property
    def multi_objective(self) -> bool:
        """Whether the study searches several objectives (Optuna's multi-objective sampler)."""
        return len(self.objectives) > 1

    # -- one field at a time ---------------------------------------------------------------------

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not name or any(c in name for c in "/\\ ") or name.startswith("."):
            raise ValueError("must be a non-empty name without spaces or slashes")
        return name

    @field_validator("preset")
    @classmethod
    def _check_preset(cls, preset: str) -> str:
        if preset not in PRESETS:
            raise ValueError(f"must be one of {', '.join(sorted(PRESETS))}")
        return preset

    @field_validator("search", mode="before")
    @classmethod
    def _search_tables(cls, search: Any) -> Any:
        """The file's ``{name: table}`` becomes the tuple of SearchParam (a tuple stays as is)."""
        if isinstance(search, Mapping):
            return tuple(SearchParam.from_table(name, table) for name, table in search.items())
        if not isinstance(search, (tuple, list)):
            raise ValueError("must be a table of searched settings")
        return search

    # -- the tables against each other -------------------------------------------------------------

    @model_validator(mode="after")
    def _check_objectives(self) -> StudySpec:
        """At least one objective, each a different metric; ASHA judges one of them; a [human]
        round adds its score to a single objective."""
        if not self.objectives:
            raise Problem(
                ("objectives",), "must name at least one objective ([[objectives]] tables with metric and mode), got []"
            )
        first: dict[str, int] = {}
        for i, objective in enumerate(self.objectives):
            if objective.metric in first:
                raise Problem(
                    ("objectives", i, "metric"),
                    f"must differ from objectives[{first[objective.metric]}].metric, got {objective.metric!r}",
                )
            first[objective.metric] = i
        if self.asha.metric is not None and self.asha.metric not in first:
            raise Problem(
                ("asha", "metric"), f"must be one of the objectives ({', '.join(first)}), got {self.asha.metric!r}"
            )
        if self.human is not None and self.multi_objective:
            raise Problem(
                ("human",),
                "a [human] round searches one objective with the human score: give one [objective], "
                f"got {len(self.objectives)} objectives",
            )
        return self

    @model_validator(mode="after")
    def _check_keys(self) -> StudySpec:
        """Fixed and searched settings are known settings, distinct, and not the objective's."""
        known = setting_names()
        for key in self.fixed:
            if key not in known:
                raise Problem(("fixed", key), f"unknown setting (allowed: {', '.join(known)})")
            if key in _OBJECTIVE_KEYS:
                raise Problem(("fixed", key), "comes from [objective], not [fixed]")
        for param in self.search:
            if param.name not in known:
                raise Problem(("search", param.name), f"unknown setting (allowed: {', '.join(known)})")
            if param.name in self.fixed:
                raise Problem(("search", param.name), "is also in [fixed]; a setting is either fixed or searched")
            if param.name in _OBJECTIVE_KEYS:
                raise Problem(("search", param.name), "cannot be searched")
        return self

    @model_validator(mode="after")
    def _check_points(self) -> StudySpec:
        """Each point to evaluate sets exactly the searched settings, inside their spaces."""
        by_name = {p.name: p for p in self.search}
        for i, point in enumerate(self.points_to_evaluate):
            if set(point) != set(by_name):
                raise Problem(
                    ("points_to_evaluate", i),
                    f"must set exactly the searched settings "
                    f"({', '.join(sorted(by_name))}), got {', '.join(sorted(point))}",
                )
            for key, value in point.items():
                if not by_name[key].contains(value):
                    raise Problem(("points_to_evaluate", i, key), f"{value!r} is outside the search space")
        return self

    @model_validator(mode="after")
    def _check_configs(self) -> StudySpec:
        """The fixed settings make valid configs, and so does every searched setting at its ends;
        ASHA's budget fits in the training epochs."""
        try:
            experiment, train = apply_settings(get_preset(self.preset), self._objective_train(), self.fixed, where=None)
        except FieldError as exc:
            if exc.path and exc.path[0] in self.fixed:
                raise Problem(("fixed", *exc.path), exc.why) from None
            raise Problem(("fixed",), f"{exc.field}: {exc.why}") from None  # across fields (e.g. ensemble vs name)
        for param in self.search:
            for key, value in param.ends_by_key():
                try:
                    apply_settings(experiment, train, {param.name: value}, where=None)
                except FieldError as exc:
                    why = exc.why if exc.path == (param.name,) else f"{exc.field}: {exc.why}"
                    raise Problem(("search", param.name, *key), why) from None
        if self.asha.max_t > train.epochs:
            raise Problem(("asha", "max_t"), f"must be <= epochs ({train.epochs}), got {self.asha.max_t!r}")
        if self.asha.grace_period > (self.asha.max_t or train.epochs):
            raise Problem(
                ("asha", "grace_period"),
                f"must be <= max_t ({self.asha.max_t or train.epochs}), got {self.asha.grace_period!r}",
            )
        return self

    @model_validator(mode="after")
    def _check_searched(self) -> StudySpec:
        """At least one ``[search.NAME]`` table (checked last: a more specific problem comes first)."""
        if not self.search:
            raise Problem(
                ("search",),
                "no searched setting: add at least one [search.NAME] table (e.g. "
                "[search.lam] with type, low, high); to train one configuration use `vidcolor train`",
            )
        return self

    # -- derived configs and copies --------------------------------------------------------------

    def base_configs(self) -> tuple[ExperimentConfig, TrainConfig]:
        """(ExperimentConfig, TrainConfig) of the preset with the fixed settings applied; the
        best-checkpoint metric is the objective."""
        return apply_settings(
            get_preset(self.preset), self._objective_train(), self.fixed, where=f"{self.source}: [fixed]"
        )

    def _objective_train(self) -> TrainConfig:
        return TrainConfig(metric=self.objective.metric, mode=self.objective.mode)

    def trial_configs(self, params: Mapping[str, Any]) -> tuple[ExperimentConfig, TrainConfig]:
        """(ExperimentConfig, TrainConfig) of one trial: the base configs plus its sampled params."""
        experiment, train = self.base_configs()
        return apply_settings(experiment, train, dict(params), where=f"{self.source}: [search]")

    def param_space(self) -> dict[str, Any]:
        """``{name: Ray Tune domain}`` of the searched settings."""
        return {p.name: p.to_tune() for p in self.search}

    @property
    def max_t(self) -> int:
        """ASHA's budget in epochs: ``asha.max_t``, or the training epochs when that is 0."""
        return self.asha.max_t or self.base_configs()[1].epochs

    def replace(self, **changes: Any) -> StudySpec:
        """A copy with some fields changed, validated like a file."""
        return _validated({**dict(self), **changes}, changes.get("source", self.source))

    def to_record(self) -> dict[str, Any]:
        """Every field as plain JSON values (the spec record of the results store); ``search`` is a
        list of ``{name, type, low, high, log, step, choices}``."""
        return json_clean(self.model_dump(mode="json"))


def _validated(data: Mapping[str, Any], source: str) -> StudySpec:
    try:
        return StudySpec.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise config_error(exc, source, StudySpec) from None


def parse_spec(data: Mapping[str, Any], source: str = "<spec>") -> StudySpec:
    """Validate a spec already parsed from TOML; ``source`` (the file) prefixes every error."""
    if "source" in data:
        raise FieldError(("source",), "unknown key (it is the file's name)", source)
    return _validated(data, source)


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
    except UnicodeDecodeError as exc:
        raise VidcolorError(f"{p}: not UTF-8 text, so not a TOML spec (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise VidcolorError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    return parse_spec(data, source=str(p))


def shipped_specs() -> list[Path]:
    """The spec files shipped in ``study/configs``."""
    return sorted(CONFIG_DIR.glob("*.toml"))
