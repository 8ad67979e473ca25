"""``--set`` parsing and the routing of ``key=value`` settings to ExperimentConfig or TrainConfig."""

from __future__ import annotations

import pytest

from models.config import FieldError, field_names
from models.errors import VidcolorError
from models.presets import ExperimentConfig, get_preset
from study.config.settings import apply_settings, check_setting_name, parse_sets, setting_names
from study.config.train import TrainConfig


def test_set_routing_and_typing():
    settings = parse_sets(
        [
            "lr=3e-4",
            "epochs=5",
            "amp=false",
            "size=small",
            "lam=0.25",
            "pretrained=none",
            "ensemble=exp1,exp4",
            "rebalance=no",
        ]
    )
    experiment, train = apply_settings(ExperimentConfig(), TrainConfig(), settings)
    assert (train.lr, train.epochs, train.amp) == (3e-4, 5, False)
    assert (experiment.size, experiment.lam, experiment.pretrained) == ("small", 0.25, None)
    assert experiment.ensemble == ("exp1", "exp4") and experiment.rebalance is False


def test_parse_sets_keeps_text_and_splits_at_the_first_equals():
    assert parse_sets([" lr = 3e-4 ", "pretrained=runs/a=b", "val_split="]) == {
        "lr": "3e-4",
        "pretrained": "runs/a=b",
        "val_split": "",
    }


def test_typed_values_as_in_a_toml_file():
    experiment, train = apply_settings(
        get_preset("exp2"), TrainConfig(), {"epochs": 3, "lr": 1, "ensemble": ["exp1", "exp4"], "grid": 20}
    )
    assert (train.epochs, train.lr, experiment.grid) == (3, 1.0, 20) and isinstance(train.lr, float)
    assert experiment.ensemble == ("exp1", "exp4")
    assert apply_settings(get_preset("exp2"), TrainConfig(), {}) == (get_preset("exp2"), TrainConfig())


def test_every_key_has_exactly_one_home():
    exp, train = set(field_names(ExperimentConfig)), set(field_names(TrainConfig))
    assert not exp & train
    assert setting_names() == tuple(sorted(exp | train))


@pytest.mark.parametrize(
    "settings",
    [
        {"wings": "2"},
        {"lam": "0.5", "wings": "2"},  # a known key next to an unknown one: nothing is dropped
        {"epochs": "3", "wings": "2"},
        {"wings": 2},  # typed, as from a TOML table
    ],
)
def test_unknown_keys_are_always_an_error_naming_the_valid_ones(settings):
    with pytest.raises(VidcolorError) as err:
        apply_settings(get_preset("exp5"), TrainConfig(), settings, where="x.toml: [fixed]")
    message = str(err.value)
    assert message.startswith("x.toml: [fixed]: field wings: unknown setting (allowed: ")
    assert all(name in message for name in ("lam", "epochs", "lr", "size", "pretrained"))


def test_check_setting_name():
    check_setting_name("lam")
    check_setting_name("epochs")
    with pytest.raises(VidcolorError, match=r"^field lamda: unknown setting \(allowed: amp, batch_size"):
        check_setting_name("lamda")


@pytest.mark.parametrize("item", ["lr", "=3"])
def test_set_items_need_a_key_and_an_equals_sign(item):
    with pytest.raises(VidcolorError, match=f"--set expects KEY=VALUE, got {item!r}"):
        parse_sets([item])


@pytest.mark.parametrize(
    "item, message",
    [
        ("colour=red", "--set: field colour: unknown setting (allowed: amp, batch_size"),
        ("epochs=two", "--set: field epochs: must be an integer, got 'two'"),
        ("epochs=1.5", "--set: field epochs: must be an integer, got '1.5'"),
        ("epochs=0", "--set: field epochs: must be > 0, got 0"),
        ("grid=1000", "--set: field grid: must be in [2, 64], got 1000"),
        ("mode=up", "--set: field mode: must be one of min, max, got 'up'"),
        ("amp=maybe", "--set: field amp: must be true or false, got 'maybe'"),
        ("size=huge", "--set: field size: must be one of tiny, small, base, got 'huge'"),
        ("ensemble=exp1", "--set: field ensemble: needs at least two members (or none), got ('exp1',)"),
    ],
)
def test_set_errors_name_the_source_the_setting_what_is_allowed_and_the_value(item, message):
    with pytest.raises(FieldError) as err:
        apply_settings(ExperimentConfig(), TrainConfig(), parse_sets([item]))
    assert str(err.value).startswith(message), str(err.value)
    assert err.value.where == "--set" and err.value.path == (item.partition("=")[0],)


def test_where_none_raises_the_field_error_without_a_source():
    with pytest.raises(FieldError) as err:
        apply_settings(ExperimentConfig(), TrainConfig(), {"grid": 1000}, where=None)
    assert (err.value.field, err.value.why, err.value.where) == ("grid", "must be in [2, 64], got 1000", None)
