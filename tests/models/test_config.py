"""models.config: the strict pydantic base of every config, setting text parsing, and the one error
shape (where, the field's dotted path, what is allowed, the value given)."""

from __future__ import annotations

import pickle
from typing import Annotated, ClassVar

import pytest
from pydantic import BeforeValidator, Field, ValidationError

from models.config import (
    Config,
    FieldError,
    Problem,
    StrictModel,
    as_tuple,
    config_error,
    dotted,
    field_names,
    parse_text,
)
from models.errors import VidcolorError


class Demo(Config):
    KIND: ClassVar[str] = "demo setting"

    count: int = Field(1, ge=1)
    """How many."""
    rate: float = Field(0.5, gt=0.0, le=1.0)
    """A share."""
    flag: bool = False
    """On or off."""
    label: str = "x"
    """A name."""
    path: str | None = None
    """A folder, or None."""
    members: Annotated[tuple[str, ...], BeforeValidator(as_tuple)] = ()
    """Names."""


class Outer(StrictModel):
    inner: Demo = Field(default_factory=Demo)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"count": 2.5}, "field count: must be an integer, got 2.5"),
        ({"count": True}, "field count: must be an integer, got True"),
        ({"count": "2"}, "field count: must be an integer, got '2'"),
        ({"count": 0}, "field count: must be >= 1, got 0"),
        ({"rate": "1"}, "field rate: must be a number, got '1'"),
        ({"rate": False}, "field rate: must be a number, got False"),
        ({"rate": 0.0}, "field rate: must be in (0, 1], got 0.0"),  # both bounds, from the field
        ({"rate": 1.5}, "field rate: must be in (0, 1], got 1.5"),
        ({"flag": 1}, "field flag: must be true or false, got 1"),
        ({"label": 3}, "field label: must be a string, got 3"),
        ({"path": 3}, "field path: must be a string, got 3"),
        ({"members": "a,b"}, "field members: must be a list, got 'a,b'"),
        ({"members": ["a", 1]}, "field members[1]: must be a string, got 1"),
        ({"wings": 2}, "field wings: unknown demo setting (allowed: count, flag, label, members, path, rate)"),
    ],
)
def test_construction_errors_name_the_field_what_is_allowed_and_the_value(changes, message):
    with pytest.raises(FieldError) as err:
        Demo(**changes)
    assert str(err.value) == message and isinstance(err.value, VidcolorError)
    assert err.value.path[0] == next(iter(changes)) and err.value.where is None


def test_values_are_normalized():
    d = Demo(rate=1, members=["a", "b"])
    assert d.rate == 1.0 and type(d.rate) is float and d.members == ("a", "b")
    assert field_names(Demo) == ("count", "rate", "flag", "label", "path", "members")
    assert Demo.model_fields["rate"].description == "A share."  # the docstring under the field


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("count", " 7 ", 7),
        ("rate", "1e-3", 1e-3),
        ("flag", "Yes", True),
        ("flag", "off", False),
        ("flag", "0", False),
        ("label", " hi ", "hi"),
        ("path", "none", None),
        ("path", "NULL", None),
        ("path", "", None),
        ("path", "runs/a", "runs/a"),
        ("members", "a, b,,c", ("a", "b", "c")),
        ("members", "", ()),
        ("count", "ten", "ten"),
        ("count", "1.5", "1.5"),
        ("flag", "maybe", "maybe"),  # left for validation to refuse
    ],
)
def test_parse_text(name, text, expected):
    assert parse_text(Demo, name, text) == expected


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"count": "ten"}, "field count: must be an integer, got 'ten'"),
        ({"count": "1.5"}, "field count: must be an integer, got '1.5'"),
        ({"rate": "fast"}, "field rate: must be a number, got 'fast'"),
        ({"flag": "maybe"}, "field flag: must be true or false, got 'maybe'"),
        ({"wings": "2"}, "field wings: unknown demo setting (allowed: count, flag, label, members, path, rate)"),
    ],
)
def test_setting_text_that_does_not_fit_is_refused_by_validation(settings, message):
    with pytest.raises(FieldError) as err:
        Demo().with_settings(settings)
    assert str(err.value) == message


def test_copies_and_round_trips():
    d = Demo(rate=1, members=["a", "b"])
    assert d.to_dict() == {"count": 1, "rate": 1.0, "flag": False, "label": "x", "path": None, "members": ["a", "b"]}
    assert Demo.from_dict(d.to_dict()) == d and pickle.loads(pickle.dumps(d)) == d
    assert hash(Demo.from_dict(d.to_dict())) == hash(d)
    assert d.with_settings({"count": "3", "flag": True, "path": "none"}) == d.replace(count=3, flag=True)
    assert d.with_settings({}) is d and d.replace() is d
    with pytest.raises(FieldError, match=r"^field count: must be >= 1, got 0$"):
        d.replace(count=0)  # replace validates (pydantic's model_copy would not)
    with pytest.raises(ValidationError, match="frozen"):
        d.count = 2  # type: ignore[misc]


def test_from_dict_names_the_source_and_the_path_in_it():
    assert Demo.from_dict({"count": 2}) == Demo(count=2)  # missing fields (older files) take their defaults
    with pytest.raises(FieldError) as err:
        Demo.from_dict({"count": "2"}, "a.json", ("config",))
    assert str(err.value) == "a.json: field config.count: must be an integer, got '2'"
    assert (err.value.where, err.value.path, err.value.field) == ("a.json", ("config", "count"), "config.count")
    with pytest.raises(FieldError, match=r"^a.json: field wings: unknown demo setting \(allowed: count, flag"):
        Demo.from_dict({"wings": 2}, "a.json")
    with pytest.raises(FieldError, match=r"^a.json: field members\[0\]: must be a table, got \[1\]"):
        Demo.from_dict([1], "a.json", ("members", 0))


def test_nested_models_report_the_full_path():
    with pytest.raises(FieldError) as err:
        Outer(inner={"rate": 2.0})
    assert str(err.value) == "field inner.rate: must be in (0, 1], got 2.0"
    with pytest.raises(ValidationError) as exc:
        Outer.model_validate({"inner": {"count": 0}})
    error = config_error(exc.value, "s.toml", Outer)
    assert str(error) == "s.toml: field inner.count: must be >= 1, got 0"


def test_problem_paths_and_within():
    assert dotted(("points_to_evaluate", 0, "lr")) == "points_to_evaluate[0].lr" and dotted(()) == "(top level)"
    assert Problem(("a", 1), "bad").dotted() == "a[1]"
    error = FieldError(("grid",), "must be in [2, 64], got 1000")
    outer = error.within("--set").within("x.toml", ("fixed",))
    assert str(outer) == "x.toml: --set: field fixed.grid: must be in [2, 64], got 1000"
    assert (outer.path, outer.why) == (("fixed", "grid"), "must be in [2, 64], got 1000")
    copy = pickle.loads(pickle.dumps(outer))  # a Ray worker's error reaches the driver whole
    assert (str(copy), copy.path, copy.where) == (str(outer), outer.path, outer.where)
    problem = pickle.loads(pickle.dumps(Problem(("a", 1), "bad")))
    assert (problem.path, problem.message) == (("a", 1), "bad")
