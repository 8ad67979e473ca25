"""Typed settings dataclasses: field checks and ``--set`` text parsing from the annotations.

:class:`TypedConfig` is the base of the frozen config dataclasses (``models.presets.ExperimentConfig``,
``study.config.train.TrainConfig``). On construction every field is checked against its annotation
(``int``, ``float``, ``bool``, ``str``, ``X | None``, ``tuple[str, ...]``), ints given for float
fields become floats and lists given for tuple fields become tuples; then the class's own
``validate`` checks ranges. Every error is a :class:`FieldError` (a ``VidcolorError``) that starts
with the field's name: ``"grid: must be an integer, got 10.5"``.

:func:`parse_text` turns the text of a ``key=value`` setting into the field's type, so a setting
given on the command line and one given in a file are checked the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, ClassVar, Mapping

from models.errors import VidcolorError

TRUE_TEXT = ("true", "1", "yes", "on")
FALSE_TEXT = ("false", "0", "no", "off")
NONE_TEXT = ("", "none", "null")

_KIND_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """``{field name: resolved annotation}`` of a dataclass, in field order."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def field_names(cls: type) -> tuple[str, ...]:
    """The field names of a dataclass, in order."""
    return tuple(field_types(cls))


def _optional(hint: Any) -> Any | None:
    """X for ``X | None``, else None."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0]
    return None


def _is_str_tuple(hint: Any) -> bool:
    return typing.get_origin(hint) is tuple and typing.get_args(hint) == (str, ...)


class FieldError(VidcolorError):
    """A bad value of one field: the message is ``"field: why"``; ``.field`` and ``.why`` hold the parts."""

    def __init__(self, field: str, why: str):
        super().__init__(f"{field}: {why}")
        self.field, self.why = field, why


def field_error(name: str, why: str, value: Any) -> FieldError:
    """The error for one field: ``"name: why, got value"``."""
    return FieldError(name, f"{why}, got {value!r}")


def check_value(name: str, hint: Any, value: Any) -> Any:
    """``value`` checked against the annotation ``hint`` (normalized: int -> float, list -> tuple)."""
    inner = _optional(hint)
    if inner is not None:
        return None if value is None else check_value(name, inner, value)
    if _is_str_tuple(hint):
        if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
            raise field_error(name, "must be a list of strings", value)
        return tuple(value)
    if hint not in _KIND_WORDS:
        raise TypeError(f"{name}: unsupported field annotation {hint!r}")
    ok = isinstance(value, hint) and (hint is bool or not isinstance(value, bool))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        raise field_error(name, f"must be {_KIND_WORDS[hint]}", value)
    return value


def parse_text(cls: type, name: str, text: str) -> Any:
    """The value of field ``name`` of ``cls`` from setting text (``"0.5"``, ``"yes"``, ``"none"``,
    ``"a,b"``); raises ``"name: expected int, got 'ten'"`` when the text does not fit."""
    return _parse(name, field_types(cls)[name], text.strip())


def _parse(name: str, hint: Any, text: str) -> Any:
    inner = _optional(hint)
    if inner is not None:
        return None if text.lower() in NONE_TEXT else _parse(name, inner, text)
    if _is_str_tuple(hint):
        return tuple(p.strip() for p in text.split(",") if p.strip())
    try:
        if hint is bool:
            if text.lower() in TRUE_TEXT + FALSE_TEXT:
                return text.lower() in TRUE_TEXT
            raise ValueError(text)
        if hint in (int, float):
            return hint(text)
    except ValueError:
        raise FieldError(name, f"expected {hint.__name__}, got {text!r}") from None
    return text


class TypedConfig:
    """Base of a frozen settings dataclass whose fields are checked from their annotations.

    Subclasses set ``KIND`` (how errors name a setting, e.g. "experiment setting") and may
    override :meth:`validate` for range checks (raise :func:`field_error`)."""

    KIND: ClassVar[str] = "setting"

    def __post_init__(self) -> None:
        for name, hint in field_types(type(self)).items():
            object.__setattr__(self, name, check_value(name, hint, getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        """Checks beyond the field types (ranges, choices); raises VidcolorError naming the field."""

    @classmethod
    def _reject_unknown(cls, keys: Any, where: str = "") -> None:
        unknown = sorted(set(keys) - set(field_names(cls)))
        if unknown:
            raise VidcolorError(f"{where}unknown {cls.KIND}(s) {', '.join(unknown)} "
                                f"(valid: {', '.join(field_names(cls))})")

    def replace(self, **changes: Any):
        """A copy with some fields changed (validated); unknown names raise VidcolorError."""
        self._reject_unknown(changes)
        return dataclasses.replace(self, **changes)

    def with_settings(self, settings: Mapping[str, Any]):
        """A copy with settings applied: typed values as they are, text (``--set``) parsed by the
        field's type (:func:`parse_text`)."""
        self._reject_unknown(settings)
        changes = {k: parse_text(type(self), k, v) if isinstance(v, str) else v for k, v in settings.items()}
        return self.replace(**changes) if changes else self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config"):
        """Build from :meth:`to_dict` output (e.g. a checkpoint's config.json); ``where`` names the
        source in errors."""
        if not isinstance(data, Mapping):
            raise VidcolorError(f"{where}: expected an object of {cls.KIND}s, got {type(data).__name__}")
        cls._reject_unknown(data, f"{where}: ")
        try:
            return cls(**dict(data))
        except VidcolorError as exc:
            raise VidcolorError(f"{where}: {exc}") from None
