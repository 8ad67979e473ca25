"""The study spec's TOML tables (``[search.NAME]``, ``[sampler]``, ``[human]``, ``[asha]``,
``[resources]``) as pydantic models; ``study.config.spec`` assembles them into a ``StudySpec``.

:class:`Table` is a ``models.config.StrictModel``: frozen, strict types (``"4"`` is not an integer,
``true`` not a number), unknown keys rejected naming the allowed ones. A validator that finds a
problem below its own level raises ``models.config.Problem`` with the path from there, so an error
names the field path from the top of the file (``search.lam.low``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, PlainValidator, ValidationError, model_validator

from models.config import Problem, StrictModel, first_problem

_RANGE_KEYS = ("type", "low", "high", "log", "step")
_CHOICE_KEYS = ("type", "choices")


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number")
    return value


Number = Annotated[int | float, PlainValidator(_number)]
"""An int or a float, kept as given (not a bool, not text)."""


class Table(StrictModel):
    """A TOML table: strict field types, frozen, unknown keys rejected with the allowed ones."""


class SearchParam(Table):
    """One searched setting: a float or int range (``low``, ``high``, ``log``, ``step``) or a
    ``choice`` among values. In the file its name is the table's (``[search.lam]``)."""

    name: str
    type: Literal["float", "int", "choice"]
    low: Number | None = None
    high: Number | None = None
    log: bool = False
    step: Number | None = None
    choices: tuple[Any, ...] = Field((), strict=False)

    INTERNAL_KEYS: ClassVar[tuple[str, ...]] = ("name",)

    @classmethod
    def allowed_keys(cls, data: Mapping[str, Any]) -> tuple[str, ...]:
        return _CHOICE_KEYS if data.get("type") == "choice" else _RANGE_KEYS

    @classmethod
    def unknown_keys(cls, data: Mapping[str, Any]) -> list[str]:
        """A key of the other kind of param is unknown unless it is empty (as ``to_record`` writes it)."""

        def empty(value: Any) -> bool:
            return value is None or value is False or (isinstance(value, (list, tuple)) and not value)

        return [k for k in super().unknown_keys(data) if not (k in cls.model_fields and empty(data[k]))]

    @model_validator(mode="before")
    @classmethod
    def _float_bounds(cls, data: Any) -> Any:
        """A float range keeps its bounds as floats (TOML writes ``high = 1`` for 1.0)."""
        if isinstance(data, Mapping) and data.get("type") == "float":
            data = {k: float(v) if k in ("low", "high") and type(v) is int else v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _check(self) -> SearchParam:
        if self.type == "choice":
            if not self.choices:
                raise Problem(("choices",), "must not be empty")
            if len(set(map(repr, self.choices))) != len(self.choices):
                raise Problem(("choices",), f"has duplicates: {list(self.choices)!r}")
            return self
        for key in ("low", "high"):
            if getattr(self, key) is None:
                raise Problem((key,), "is required")
        for key in ("low", "high", "step"):
            value = getattr(self, key)
            if self.type == "int" and value is not None and type(value) is not int:
                raise Problem((key,), f"must be an integer, got {value!r}")
        if not self.low < self.high:
            raise Problem(("low",), f"must be < high (low={self.low!r}, high={self.high!r})")
        if self.log and self.low <= 0:
            raise Problem(("low",), f"must be > 0 with log = true, got {self.low!r}")
        if self.step is not None and self.step <= 0:
            raise Problem(("step",), f"must be > 0, got {self.step!r}")
        if self.step is not None and self.log and self.type == "int":
            raise Problem(("step",), "cannot be combined with log for an int")
        return self

    @classmethod
    def from_table(cls, name: str, table: Any) -> SearchParam:
        """The param of the file's ``[search.NAME]`` table; errors carry the path below ``search``."""
        if isinstance(table, Mapping) and "name" in table:
            raise Problem((name, "name"), "unknown key (the table's name is the setting's)")
        try:
            return cls.model_validate({**table, "name": name} if isinstance(table, Mapping) else table)
        except ValidationError as exc:
            problem = first_problem(exc)
            raise Problem((name, *problem.path), problem.message) from None

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
        """Whether ``value`` lies in the searched range (or is one of the choices)."""
        if self.type == "choice":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False  # a string or a table where a number is searched
        return self.low <= value <= self.high

    def ends(self) -> tuple[Any, ...]:
        """The extreme values of the space: every choice, or both ends of the range."""
        return self.choices if self.type == "choice" else (self.low, self.high)

    def ends_by_key(self) -> list[tuple[tuple[str | int, ...], Any]]:
        """:meth:`ends` with the path of each in the table: ``("choices", i)``, ``("low",)``, ``("high",)``."""
        if self.type == "choice":
            return [(("choices", i), value) for i, value in enumerate(self.choices)]
        return [(("low",), self.low), (("high",), self.high)]


class SamplerSpec(Table):
    """``[sampler]``: how Optuna proposes trials."""

    kind: Literal["tpe", "random"] = "tpe"
    seed: int = 0
    n_startup_trials: int = Field(3, ge=0)
    """TPE's random trials before it models the space."""


class HumanObjective(Table):
    """``[human]``: the Color Turing Test's verdict as a second objective, beside ``[objective]``.

    A study with this table continues an existing study once votes have come in: its finished trials
    with at least ``min_votes`` votes become a multi-objective Optuna study (the objective, and the
    score, maximized), from which the next trials are sampled (study.tune.human)."""

    score: Literal["fool_rate", "mean_rating", "bt_score"] = "fool_rate"
    """fool_rate: share of 2AFC votes that took the trial's clip for the real one; mean_rating: mean
    1-5 naturalness rating; bt_score: Bradley-Terry log-strength from pairwise campaigns."""
    campaign: str | None = None
    """Only this campaign's votes count (default: every vote of the study)."""
    min_votes: int = Field(10, ge=1)
    """Votes (comparisons for bt_score) a trial needs before its score counts."""


class AshaSpec(Table):
    """``[asha]``: early stopping of poor trials, in epochs, judged on one objective."""

    enabled: bool = True
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(2.0, gt=1)
    max_t: int = Field(0, ge=0)
    """Epochs at most; 0 = the training epochs."""
    metric: str | None = None
    """The objective ASHA stops trials on, and by which each trial keeps its best checkpoint: one of
    the study's objectives' metrics (default: the first objective's)."""


class Resources(Table):
    """``[resources]``: per trial, the Ray Train workers and what each one gets."""

    workers: int = Field(1, ge=1)
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(0.0, ge=0)
