"""The base of the study spec's TOML table models, and their errors as field paths and messages.

:class:`Table` is a frozen pydantic model with strict types (``"4"`` is not an integer, ``true``
not a number) that rejects unknown keys naming the allowed ones. A validator that finds a problem
below its own level raises :class:`SpecProblem` with the path from there; :func:`first_problem`
turns pydantic's ``ValidationError`` into one :class:`SpecProblem` whose path runs from the top
of the file (``search.lam.low``) and whose message reads as the rest of a sentence
(``must be < high (low=1.0, high=0.2)``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Mapping

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, model_validator


class SpecProblem(ValueError):
    """A problem at ``path`` (keys and list indices) below the value being validated."""

    def __init__(self, path: tuple[str | int, ...], message: str):
        super().__init__(message)
        self.path, self.message = tuple(path), message

    def dotted(self) -> str:
        """``("points_to_evaluate", 0, "lr")`` -> ``points_to_evaluate[0].lr``."""
        text = ""
        for part in self.path:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
        return text or "(top level)"


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number, got {value!r}")
    return value


Number = Annotated[int | float, PlainValidator(_number)]
"""An int or a float, kept as given (not a bool, not text)."""


class Table(BaseModel):
    """A TOML table: strict field types, frozen, unknown keys rejected with the allowed ones."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    INTERNAL_KEYS: ClassVar[tuple[str, ...]] = ()
    """Fields set by the parser, not the file (accepted, never listed as allowed)."""

    @classmethod
    def allowed_keys(cls, data: Mapping[str, Any]) -> tuple[str, ...]:
        """The keys a file may give in this table (``data`` is the table as given)."""
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
                raise SpecProblem((unknown[0],), f"unknown key (allowed: {allowed})")
        return data


_KIND_WORDS = {"int_type": "an integer", "float_type": "a number", "string_type": "a string",
               "bool_type": "true or false", "dict_type": "a table", "model_type": "a table",
               "tuple_type": "an array", "list_type": "an array"}
_BOUNDS = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="), "less_than": ("lt", "<"),
           "less_than_equal": ("le", "<=")}


def _message(error: Mapping[str, Any]) -> str:
    """One pydantic error as the rest of a sentence after ``field PATH:``."""
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind in _KIND_WORDS:
        return f"must be {_KIND_WORDS[kind]}, got {value!r}"
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"must be one of {', '.join(options)}, got {value!r}"
    if kind in _BOUNDS:
        key, sign = _BOUNDS[kind]
        return f"must be {sign} {ctx[key]:g}, got {value!r}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    return f"{error['msg']}, got {value!r}"


def first_problem(exc: ValidationError) -> SpecProblem:
    """The first error of ``exc`` as a SpecProblem with the full path from the validated value."""
    error = exc.errors()[0]
    path = tuple(error["loc"])
    inner = (error.get("ctx") or {}).get("error")
    if isinstance(inner, SpecProblem):
        return SpecProblem(path + inner.path, inner.message)
    return SpecProblem(path, _message(error))
