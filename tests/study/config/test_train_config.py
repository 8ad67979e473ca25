"""TrainConfig: field types and ranges checked on construction, JSON round trip (files written before
included), one docstring per field."""

from __future__ import annotations

import ast
import inspect
import json
import math
import pickle

import pytest
from pydantic import ValidationError

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
    with pytest.raises(VidcolorError, match=r"^run.json: field train.wings: unknown training setting \(allowed: amp, "):
        TrainConfig.from_dict({"epochs": 1, "wings": 2}, "run.json", ("train",))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"epochs": 0}, "field epochs: must be > 0, got 0"),
        ({"epochs": 2.5}, "field epochs: must be an integer, got 2.5"),
        ({"lr": -1e-3}, "field lr: must be > 0, got -0.001"),
        ({"lr": math.inf}, "field lr: must be finite, got inf"),
        ({"lr": math.nan}, "field lr: must be finite, got nan"),
        ({"weight_decay": -0.5}, "field weight_decay: must be >= 0, got -0.5"),
        ({"grad_clip": math.inf}, "field grad_clip: must be finite, got inf"),
        ({"val_batches": -1}, "field val_batches: must be >= 0, got -1"),
        ({"mode": "up"}, "field mode: must be one of min, max, got 'up'"),
        ({"metric": ""}, "field metric: must not be empty, got ''"),
        ({"val_split": ""}, "field val_split: must not be empty, got ''"),
        ({"amp": 1}, "field amp: must be true or false, got 1"),
        ({"epochs": True}, "field epochs: must be an integer, got True"),
        ({"val_split": 3}, "field val_split: must be a string, got 3"),
        ({"schedule": "step"}, "field schedule: must be one of constant, cosine, got 'step'"),
        ({"warmup": 1.0}, "field warmup: must be in [0, 1), got 1.0"),
        ({"ema": 1.0}, "field ema: must be in [0, 1), got 1.0"),
        ({"ema": math.nan}, "field ema: must be in [0, 1), got nan"),
        ({"min_lr_ratio": 2.0}, "field min_lr_ratio: must be in [0, 1], got 2.0"),
        ({"crop_scale": 0.0}, "field crop_scale: must be in (0, 1], got 0.0"),
        ({"train_size": 4}, "field train_size: must be 0 (the shard set's size) or in [8, 4096], got 4"),
    ],
)
def test_each_check_names_the_field_what_is_allowed_and_the_value(changes, message):
    with pytest.raises(VidcolorError) as err:
        TrainConfig(**changes)
    assert str(err.value) == message


def test_frozen_and_replace_validates():
    tc = TrainConfig()
    with pytest.raises(ValidationError, match="frozen"):
        tc.lr = 0.1  # type: ignore[misc]
    assert tc.replace(epochs=7).epochs == 7
    with pytest.raises(VidcolorError, match="^field epochs: must be > 0, got 0$"):
        tc.replace(epochs=0)
    with pytest.raises(VidcolorError, match="^field lam: unknown training setting"):
        tc.replace(lam=0.5)


def test_with_settings_parses_text_by_field_type():
    tc = TrainConfig().with_settings({"lr": "3e-4", "epochs": "5", "amp": "off", "val_split": " test ", "seed": 7})
    assert (tc.lr, tc.epochs, tc.amp, tc.val_split, tc.seed) == (3e-4, 5, False, "test", 7)


def test_every_field_has_a_docstring():
    """Each field is followed by its docstring in the class body."""
    tree = ast.parse(inspect.getsource(train_module))
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TrainConfig").body
    documented = {
        stmt.target.id
        for stmt, nxt in zip(body, body[1:])
        if isinstance(stmt, ast.AnnAssign)
        and isinstance(nxt, ast.Expr)
        and isinstance(nxt.value, ast.Constant)
        and isinstance(nxt.value.value, str)
    }
    assert documented == set(TrainConfig.model_fields)
    assert all(info.description for info in TrainConfig.model_fields.values())  # pydantic reads them too


def test_learning_rate_schedule_by_hand():
    """10 epochs x 10 steps, 10% warm-up: steps 0-9 ramp linearly from lr/100 to lr; then a half
    cosine from lr (step 10) to lr * min_lr_ratio (step 99)."""
    tc = TrainConfig(lr=1.0, epochs=10, steps_per_epoch=10, schedule="cosine", warmup=0.1, min_lr_ratio=0.1)
    assert tc.total_steps == 100
    assert tc.lr_at(0) == pytest.approx(0.01 + 0.99 * 1 / 10)
    assert tc.lr_at(9) == pytest.approx(1.0)
    assert tc.lr_at(10) == pytest.approx(1.0)
    assert tc.lr_at(99) == pytest.approx(0.1)
    mid = 10 + 89 / 2  # progress 1/2: cos(pi/2) = 0, halfway between lr and the floor
    assert tc.lr_at(int(mid)) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (44 / 89))))
    lrs = [tc.lr_at(s) for s in range(100)]
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:10])) and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    flat = TrainConfig(lr=0.5, epochs=2, steps_per_epoch=5, schedule="constant", warmup=0.0)
    assert [flat.lr_at(s) for s in range(10)] == [0.5] * 10
    default = TrainConfig(epochs=4, steps_per_epoch=250)  # the recipe: 5% warm-up to 3e-3, cosine to 5%
    assert default.lr_at(0) == pytest.approx(3e-3 * (0.01 + 0.99 / 50)) and default.lr_at(49) == pytest.approx(3e-3)
    assert default.lr_at(999) == pytest.approx(3e-3 * 0.05)


# TrainConfig.to_dict() as the TypedConfig dataclass wrote it (the results store's trial config, the
# training loop's config, a checkpoint's extra["train"]) before configs became pydantic models, and
# an older one from before the schedule, augmentation and weight-average fields (pinned: both must load)
WRITTEN = {
    "lr": 0.003,
    "schedule": "cosine",
    "warmup": 0.05,
    "min_lr_ratio": 0.05,
    "weight_decay": 0.0,
    "epochs": 2,
    "steps_per_epoch": 20,
    "batch_size": 8,
    "val_batches": 0,
    "val_batch_size": 8,
    "val_split": "val",
    "grad_clip": 0.0,
    "ema": 0.995,
    "amp": True,
    "seed": 0,
    "loader_workers": 0,
    "shuffle_buffer": 64,
    "flip": True,
    "crop_scale": 0.7,
    "train_size": 0,
    "metric": "val_rmse_ratio",
    "mode": "min",
}
WRITTEN_OLDER = {
    "lr": 0.001,
    "weight_decay": 0.0,
    "epochs": 3,
    "steps_per_epoch": 30,
    "batch_size": 8,
    "val_batches": 2,
    "val_batch_size": 4,
    "val_split": "val",
    "grad_clip": 0.0,
    "amp": True,
    "seed": 0,
    "loader_workers": 0,
    "shuffle_buffer": 64,
    "metric": "val_rmse_rgb",
    "mode": "min",
}


def test_configs_written_before_still_load():
    assert TrainConfig.from_dict(json.loads(json.dumps(WRITTEN))) == TrainConfig()
    assert TrainConfig().to_dict() == WRITTEN  # and are written alike
    older = TrainConfig.from_dict(WRITTEN_OLDER)
    assert (older.lr, older.epochs, older.metric) == (0.001, 3, "val_rmse_rgb")
    assert (older.schedule, older.ema, older.crop_scale) == ("cosine", 0.995, 0.7)  # the fields added since: defaults
