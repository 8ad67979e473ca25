"""TrainConfig: field types and ranges checked on construction, JSON round trip, one docstring per field."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import math
import pickle

import pytest

from models.errors import VidcolorError
from study.config import train as train_module
from study.config.train import TrainConfig


def test_train_config_round_trip_and_checks():
    tc = TrainConfig(lr=1, epochs=4)
    assert isinstance(tc.lr, float) and TrainConfig.from_dict(tc.to_dict()) == tc
    assert TrainConfig.from_dict(json.loads(json.dumps(tc.to_dict()))) == tc
    assert pickle.loads(pickle.dumps(tc)) == tc
    with pytest.raises(VidcolorError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(VidcolorError, match="integer"):
        TrainConfig(epochs=2.5)
    # was "unknown TrainConfig field(s): wings"; now also lists the valid settings
    with pytest.raises(VidcolorError, match=r"unknown training setting\(s\) wings \(valid: lr, weight_decay"):
        TrainConfig.from_dict({"epochs": 1, "wings": 2})


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 0}, "epochs: must be > 0, got 0"),
    ({"lr": -1e-3}, "lr: must be > 0, got -0.001"),
    ({"lr": math.inf}, "lr: must be finite, got inf"),
    ({"lr": math.nan}, "lr: must be > 0, got nan"),
    ({"weight_decay": -0.5}, "weight_decay: must be >= 0, got -0.5"),
    ({"val_batches": -1}, "val_batches: must be >= 0, got -1"),
    ({"mode": "up"}, "mode: must be 'min' or 'max', got 'up'"),
    ({"metric": ""}, "metric: must not be empty, got ''"),
    ({"amp": 1}, "amp: must be true or false, got 1"),
    ({"epochs": True}, "epochs: must be an integer, got True"),
    ({"val_split": 3}, "val_split: must be a string, got 3"),
])
def test_each_check_names_the_field_and_value(changes, message):
    with pytest.raises(VidcolorError) as err:
        TrainConfig(**changes)
    assert str(err.value) == message


def test_frozen_and_replace_validates():
    tc = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        tc.lr = 0.1  # type: ignore[misc]
    assert tc.replace(epochs=7).epochs == 7
    with pytest.raises(VidcolorError, match="epochs: must be > 0"):
        tc.replace(epochs=0)
    with pytest.raises(VidcolorError, match="unknown training setting"):
        tc.replace(lam=0.5)


def test_with_settings_parses_text_by_field_type():
    tc = TrainConfig().with_settings({"lr": "3e-4", "epochs": "5", "amp": "off", "val_split": " test ", "seed": 7})
    assert (tc.lr, tc.epochs, tc.amp, tc.val_split, tc.seed) == (3e-4, 5, False, "test", 7)


def test_every_field_has_a_docstring():
    """Each field is followed by its docstring in the class body."""
    tree = ast.parse(inspect.getsource(train_module))
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TrainConfig").body
    documented = {stmt.target.id for stmt, nxt in zip(body, body[1:])
                  if isinstance(stmt, ast.AnnAssign) and isinstance(nxt, ast.Expr)
                  and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)}
    assert documented == {f.name for f in dataclasses.fields(TrainConfig)}
