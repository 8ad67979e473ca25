"""The one config system: frozen pydantic models of settings, and their errors as field paths.

Every config of the package is a pydantic model on :class:`StrictModel`: frozen, strict types
(``10.5``, ``"4"`` or ``True`` is not an integer, ``1`` is not a bool; an int given for a float
becomes a float), unknown keys refused naming the allowed ones, each field documented by the
docstring under it. :class:`Config` adds what the settings configs
(``models.presets.ExperimentConfig``, ``study.config.train.TrainConfig``) need: a validated
:meth:`~Config.replace`, :meth:`~Config.with_settings` (``--set`` text parsed by the field's type),
:meth:`~Config.to_dict` / :meth:`~Config.from_dict`. The study spec's TOML tables
(``study.config.tables``) are StrictModels too.

Every validation error has one shape, a :class:`FieldError` built by :func:`config_error`: where
the values came from (a file, ``--set``), the field's dotted path, what is allowed and the value
given: ``demo.toml: field search.lam.low: must be < high (low=1.0, high=0.2)``,
``--set: field grid: must be in [2, 64], got 1000``. A validator that finds a problem below its
own level raises :class:`Problem` with the path from there.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from models.errors import VidcolorError

TRUE_TEXT = ("true", "1", "yes", "on")
FALSE_TEXT = ("false", "0", "no", "off")
NONE_TEXT = ("", "none", "null")


def dotted(path: tuple[str | int, ...]) -> str:
    """``("points_to_evaluate", 0, "lr")`` -> ``points_to_evaluate[0].lr``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


class Problem(ValueError):
    """Raised inside a validator: a problem at ``path`` (keys and list indices) below the value
    being validated; ``message`` reads as the rest of a sentence (``must be < high ...``)."""

    def __init__(self, path: tuple[str | int, ...], message: str):
        super().__init__(message)
        self.path, self.message = tuple(path), message

    def dotted(self) -> str:
        return dotted(self.path)

    def __reduce__(self):  # pickles whole (Ray sends a worker's errors to the driver)
        return type(self), (self.path, self.message)


class FieldError(Problem, VidcolorError):
    """A bad value: ``"{where}: field {path}: {why}"``; ``.path``, ``.field`` (dotted), ``.why``
    (what is allowed, and the value given) and ``.where`` (the source, or None) hold the parts.
    It is also a :class:`Problem`, so a config built inside another's validation (a nested model)
    reports its path below the outer one's."""

    def __init__(self, path: tuple[str | int, ...], why: str, where: str | None = None):
        super().__init__(path, why)
        self.why, self.where, self.field = why, where, dotted(self.path)
        self.args = (f"{where + ': ' if where else ''}field {self.field}: {why}",)

    def __reduce__(self):
        return type(self), (self.path, self.why, self.where)

    def within(self, where: str | None = None, prefix: tuple[str | int, ...] = ()) -> FieldError:
        """The same error seen from outside: ``where`` before its source, ``prefix`` before its path."""
        source = ": ".join(w for w in (where, self.where) if w) or None
        return FieldError(tuple(prefix) + self.path, self.why, source)


# ---- pydantic errors as (path, what is allowed, value) ------------------------------------------

_KIND_WORDS = {
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "dict_type": "a table",
    "model_type": "a table",
    "tuple_type": "a list",
    "list_type": "a list",
}
_SIGNS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def _field_info(model: Any, loc: tuple[Any, ...]) -> Any:
    """The FieldInfo that ``loc`` names in ``model`` (through nested models), or None."""
    info = None
    for part in loc:
        fields = model.model_fields if isinstance(model, type) and issubclass(model, BaseModel) else {}
        if part not in fields:
            return None
        info = fields[part]
        model = info.annotation
    return info


def _allowed_range(info: Any) -> str | None:
    """``in [0, 1)`` from a field's bounds when it has both a lower and an upper one, else None."""
    bounds = {
        key: getattr(m, key)
        for m in getattr(info, "metadata", ())
        for key in ("ge", "gt", "le", "lt")
        if getattr(m, key, None) is not None
    }
    low = ("[", bounds["ge"]) if "ge" in bounds else ("(", bounds["gt"]) if "gt" in bounds else None
    high = ("]", bounds["le"]) if "le" in bounds else (")", bounds["lt"]) if "lt" in bounds else None
    if low is None or high is None:
        return None
    return f"in {low[0]}{low[1]:g}, {high[1]:g}{high[0]}"


def _message(error: Mapping[str, Any], info: Any) -> str:
    """One pydantic error as the rest of a sentence after ``field PATH:``: what is allowed, and
    the value given."""
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    got = f", got {value!r}"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind in _KIND_WORDS:
        return f"must be {_KIND_WORDS[kind]}{got}"
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"must be one of {', '.join(options)}{got}"
    if kind in _SIGNS:
        key, sign = _SIGNS[kind]
        return f"must be {_allowed_range(info) or f'{sign} {ctx[key]:g}'}{got}"
    if kind == "finite_number":
        return f"must be finite{got}"
    if kind == "string_too_short":
        return f"must not be empty{got}"
    if kind == "value_error" and "error" in ctx:  # a validator's ValueError: what is allowed
        return str(ctx["error"]) + (got if error["loc"] else "")
    return f"{error['msg']}{got}"


def first_problem(exc: ValidationError, model: type[BaseModel] | None = None) -> Problem:
    """The first error of ``exc`` as a Problem with the full path from the validated value
    (``model``, when given, supplies both bounds of a range for the message)."""
    error = exc.errors()[0]
    path = tuple(error["loc"])
    inner = (error.get("ctx") or {}).get("error")
    if isinstance(inner, Problem):
        return Problem(path + inner.path, inner.message)
    return Problem(path, _message(error, _field_info(model, path)))


def config_error(
    exc: ValidationError,
    where: str | None = None,
    model: type[BaseModel] | None = None,
    prefix: tuple[str | int, ...] = (),
) -> FieldError:
    """The one error of every config: pydantic's ``ValidationError`` as a :class:`FieldError` that
    names ``where`` (a file, ``--set``), the field's dotted path below ``prefix``, what is
    allowed and the value given."""
    problem = first_problem(exc, model)
    return FieldError(tuple(prefix) + problem.path, problem.message, where)


# ---- the models ---------------------------------------------------------------------------------


class StrictModel(BaseModel):
    """Frozen, strict types, unknown keys refused naming the allowed ones, fields documented by
    their docstrings. Building one in code raises :class:`FieldError`; ``model_validate`` raises
    pydantic's ``ValidationError`` (turn it into a FieldError with :func:`config_error`)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, use_attribute_docstrings=True)

    KIND: ClassVar[str] = "key"
    """What errors call one entry (``unknown key``, ``unknown training setting``)."""
    INTERNAL_KEYS: ClassVar[tuple[str, ...]] = ()
    """Fields set by the code that reads the values, not by their source (accepted, never listed as allowed)."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(exc, model=type(self)) from None

    @classmethod
    def allowed_keys(cls, data: Mapping[str, Any]) -> tuple[str, ...]:
        """The keys a source may give (``data`` is the values as given)."""
        return tuple(k for k in cls.model_fields if k not in cls.INTERNAL_KEYS)

    @classmethod
    def unknown_keys(cls, data: Mapping[str, Any]) -> list[str]:
        """The keys of ``data`` that are not allowed, sorted."""
        return sorted(set(data) - set(cls.allowed_keys(data)) - set(cls.INTERNAL_KEYS))

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = cls.unknown_keys(data)
            if unknown:
                allowed = ", ".join(sorted(cls.allowed_keys(data)))
                raise Problem((unknown[0],), f"unknown {cls.KIND} (allowed: {allowed})")
        return data


def field_names(cls: type[BaseModel]) -> tuple[str, ...]:
    """The field names of a config, in order."""
    return tuple(cls.model_fields)


class Config(StrictModel):
    """A settings config: plain values (pickles to Ray workers, round-trips through JSON)."""

    KIND: ClassVar[str] = "setting"

    def replace(self, **changes: Any):
        """A copy with some fields changed, validated like a new config."""
        return type(self)(**{**dict(self), **changes}) if changes else self

    def with_settings(self, settings: Mapping[str, Any]):
        """A copy with settings applied: typed values as they are, text (``--set``) parsed by the
        field's type (:func:`parse_text`)."""
        fields = type(self).model_fields
        return self.replace(
            **{
                k: parse_text(type(self), k, v) if isinstance(v, str) and k in fields else v
                for k, v in settings.items()
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (tuples become lists)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Any, where: str | None = None, prefix: tuple[str | int, ...] = ()):
        """Build from :meth:`to_dict` output (a checkpoint's config.json, a store's trial record);
        fields it lacks (files written before they existed) take their defaults. ``where`` names
        the source and ``prefix`` the path of ``data`` in it, in errors."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise config_error(exc, where, cls, prefix) from None


# ---- setting text ---------------------------------------------------------------------------------


def _optional(hint: Any) -> Any | None:
    """X for ``X | None``, else None."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0]
    return None


def parse_text(cls: type[BaseModel], name: str, text: str) -> Any:
    """The value of field ``name`` of ``cls`` from setting text (``"0.5"``, ``"yes"``, ``"none"``,
    ``"a,b"``). Text that does not parse is returned as it is, so validation refuses it naming the
    field (``must be an integer, got 'ten'``)."""
    return _parse(cls.model_fields[name].annotation, text.strip())


def _parse(hint: Any, text: str) -> Any:
    inner = _optional(hint)
    if inner is not None:
        return None if text.lower() in NONE_TEXT else _parse(inner, text)
    if typing.get_origin(hint) is tuple:
        return tuple(p.strip() for p in text.split(",") if p.strip())
    if hint is bool:
        return text.lower() in TRUE_TEXT if text.lower() in TRUE_TEXT + FALSE_TEXT else text
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError:
            return text
    return text


def as_tuple(value: Any) -> Any:
    """A list given for a tuple field (JSON, TOML) becomes a tuple; anything else is left to the
    field's strict check."""
    return tuple(value) if isinstance(value, list) else value
