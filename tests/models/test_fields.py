"""models.fields: annotation-driven field checks, setting text parsing and the TypedConfig base."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from models.errors import VidcolorError
from models.fields import FieldError, TypedConfig, check_value, field_error, field_names, parse_text


@dataclass(frozen=True)
class Demo(TypedConfig):
    KIND: ClassVar[str] = "demo setting"

    count: int = 1
    rate: float = 0.5
    flag: bool = False
    label: str = "x"
    path: str | None = None
    members: tuple[str, ...] = ()

    def validate(self) -> None:
        if self.count < 1:
            raise field_error("count", "must be >= 1", self.count)


@pytest.mark.parametrize("hint, value, expected", [
    (int, 3, 3), (float, 3, 3.0), (float, 2.5, 2.5), (bool, True, True), (str, "a", "a"),
    (str | None, None, None), (str | None, "p", "p"), (tuple[str, ...], ["a", "b"], ("a", "b")),
])
def test_check_value_accepts_and_normalizes(hint, value, expected):
    got = check_value("f", hint, value)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("hint, value, message", [
    (int, 2.5, "f: must be an integer, got 2.5"),
    (int, True, "f: must be an integer, got True"),
    (float, "1", "f: must be a number, got '1'"),
    (float, False, "f: must be a number, got False"),
    (bool, 1, "f: must be true or false, got 1"),
    (str, 3, "f: must be a string, got 3"),
    (str | None, 3, "f: must be a string, got 3"),
    (tuple[str, ...], "a,b", "f: must be a list of strings, got 'a,b'"),
    (tuple[str, ...], ["a", 1], "f: must be a list of strings, got ['a', 1]"),
])
def test_check_value_errors_name_the_field(hint, value, message):
    with pytest.raises(FieldError) as err:
        check_value("f", hint, value)
    assert str(err.value) == message and err.value.field == "f" and isinstance(err.value, VidcolorError)


@pytest.mark.parametrize("name, text, expected", [
    ("count", " 7 ", 7), ("rate", "1e-3", 1e-3), ("flag", "Yes", True), ("flag", "off", False),
    ("flag", "0", False), ("label", " hi ", "hi"), ("path", "none", None), ("path", "NULL", None),
    ("path", "", None), ("path", "runs/a", "runs/a"), ("members", "a, b,,c", ("a", "b", "c")), ("members", "", ()),
])
def test_parse_text(name, text, expected):
    assert parse_text(Demo, name, text) == expected


@pytest.mark.parametrize("name, text, message", [
    ("count", "ten", "count: expected int, got 'ten'"),
    ("count", "1.5", "count: expected int, got '1.5'"),
    ("rate", "fast", "rate: expected float, got 'fast'"),
    ("flag", "maybe", "flag: expected bool, got 'maybe'"),
])
def test_parse_text_errors(name, text, message):
    with pytest.raises(FieldError) as err:
        parse_text(Demo, name, text)
    assert str(err.value) == message


def test_typed_config_construction_copies_and_round_trip():
    d = Demo(rate=1, members=["a", "b"])
    assert d.rate == 1.0 and type(d.rate) is float and d.members == ("a", "b")
    assert field_names(Demo) == ("count", "rate", "flag", "label", "path", "members")
    assert d.to_dict() == {"count": 1, "rate": 1.0, "flag": False, "label": "x", "path": None, "members": ["a", "b"]}
    assert Demo.from_dict(d.to_dict()) == d
    assert d.with_settings({"count": "3", "flag": True, "path": "none"}) == d.replace(count=3, flag=True)
    assert d.with_settings({}) is d
    with pytest.raises(VidcolorError, match=r"^count: must be >= 1, got 0$"):
        d.replace(count=0)
    with pytest.raises(VidcolorError, match=r"^unknown demo setting\(s\) wings \(valid: count, rate, flag"):
        d.with_settings({"wings": "2"})
    with pytest.raises(VidcolorError, match=r"^a.json: unknown demo setting\(s\) wings"):
        Demo.from_dict({"wings": 2}, where="a.json")
    with pytest.raises(VidcolorError, match=r"^a.json: count: must be an integer, got '2'"):
        Demo.from_dict({"count": "2"}, where="a.json")
    with pytest.raises(VidcolorError, match="a.json: expected an object of demo settings, got list"):
        Demo.from_dict([1], where="a.json")
