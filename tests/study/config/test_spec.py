"""Study specs: every shipped config loads and builds valid configs; each validation error names
the file and the field; ``--set`` routing and typing."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest

from models.errors import VidcolorError
from models.presets import ExperimentConfig
from study.config.spec import (TrainConfig, apply_settings, load_spec, parse_sets, parse_spec, shipped_specs)

BASE = """
name = "s"
preset = "exp2"
num_trials = 4
[fixed]
size = "tiny"
epochs = 3
[search.lr]
type = "float"
low = 1e-4
high = 1e-2
log = true
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "spec.toml"
    p.write_text(textwrap.dedent(text))
    return p


def test_every_shipped_config_loads():
    paths = shipped_specs()
    assert {p.name for p in paths} >= {"demo.toml", "paper.toml"}
    for path in paths:
        spec = load_spec(path)
        experiment, train = spec.base_configs()
        assert isinstance(experiment, ExperimentConfig) and isinstance(train, TrainConfig)
        assert train.metric == spec.objective.metric and train.mode == spec.objective.mode
        space = spec.param_space()
        assert set(space) == {p.name for p in spec.search}
        for param in spec.search:  # both ends of every range make a valid trial config
            for value in (param.choices or (param.low, param.high)):
                exp, tr = spec.trial_configs({param.name: value})
                assert getattr(exp if hasattr(exp, param.name) else tr, param.name) == value


def test_demo_fits_the_brief():
    spec = load_spec("demo")  # a bare name finds study/configs/demo.toml
    experiment, train = spec.base_configs()
    assert spec.num_trials >= 6 and spec.asha.enabled and spec.resources.gpus_per_worker == 0
    assert experiment.size == "tiny" and not experiment.transfer
    assert {"lam", "grid", "seq_len", "lr", "temperature"} <= {p.name for p in spec.search}
    assert spec.max_t == train.epochs and spec.asha.grace_period < spec.max_t  # ASHA can stop trials


def test_paper_is_the_seed_setting():
    spec = load_spec("paper")
    experiment, train = spec.base_configs()
    assert (experiment.size, experiment.seq_len, experiment.grid, experiment.temporal) == ("base", 6, 10, "convlstm")
    assert spec.resources.gpus_per_worker >= 1 and experiment.window == 7


def test_search_param_domains(tmp_path):
    spec = load_spec(write(tmp_path, BASE + """
        [search.grid]
        type = "choice"
        choices = [10, 20]
        [search.seq_len]
        type = "int"
        low = 1
        high = 4
    """))
    space = spec.param_space()
    assert space["grid"].categories == [10, 20]
    assert (space["seq_len"].lower, space["seq_len"].upper) == (1, 4)  # qrandint includes 4
    assert math.isclose(space["lr"].lower, 1e-4) and "LogUniform" in type(space["lr"].sampler).__name__
    experiment, train = spec.trial_configs({"grid": 20, "seq_len": 3, "lr": 5e-3})
    assert (experiment.grid, experiment.seq_len, train.lr) == (20, 3, 5e-3)


@pytest.mark.parametrize("text, field, words", [
    ('name = "s"\npreset = "exp9"', "preset", "exp1"),
    ('preset = "exp2"', "name", "required"),
    ('name = "a b"\npreset = "exp2"', "name", "spaces"),
    (BASE + "bogus = 1", "bogus", "unknown key"),
    (BASE.replace("num_trials = 4", "num_trials = 0"), "num_trials", ">= 1"),
    (BASE.replace("num_trials = 4", 'num_trials = "4"'), "num_trials", "integer"),
    (BASE + "[fixed.more]\n", "fixed", ""),
    (BASE.replace('size = "tiny"', 'colour = "red"'), "fixed.colour", "unknown setting"),
    (BASE.replace('size = "tiny"', 'size = "huge"'), "size", "tiny"),
    (BASE.replace('size = "tiny"', "weight_decay = -1.0"), "weight_decay", ">= 0"),
    (BASE.replace("low = 1e-4", "low = 1e-1"), "search.lr.low", "< high"),
    (BASE.replace("low = 1e-4", "low = 0.0"), "search.lr.low", "log"),
    (BASE.replace('type = "float"', 'type = "complex"'), "search.lr.type", "float, int, choice"),
    (BASE + '[search.epochs]\ntype = "int"\nlow = 1\nhigh = 5\n', "search.epochs", "also in [fixed]"),
    (BASE + '[search.wings]\ntype = "int"\nlow = 1\nhigh = 5\n', "search.wings", "unknown setting"),
    (BASE + '[search.grid]\ntype = "choice"\nchoices = []\n', "search.grid.choices", "empty"),
    (BASE + '[search.grid]\ntype = "choice"\nchoices = [10, 999]\n', "search.grid", "999"),
    (BASE + '[objective]\nmetric = "val_rmse_rgb"\nmode = "up"\n', "objective.mode", "min"),
    (BASE + '[sampler]\nkind = "grid"\n', "sampler.kind", "tpe"),
    (BASE + "[asha]\nreduction_factor = 1\n", "asha.reduction_factor", "> 1"),
    (BASE + "[asha]\ngrace_period = 5\n", "asha.grace_period", "<= max_t"),
    (BASE + "[asha]\nmax_t = 9\n", "asha.max_t", "<= epochs"),
    (BASE + "[resources]\nworkers = 0\n", "resources.workers", ">= 1"),
    (BASE + "[resources]\ncpus_per_worker = 0\n", "resources.cpus_per_worker", "> 0"),
    ("points_to_evaluate = [{lr = 1.0}]\n" + BASE, "points_to_evaluate[0].lr", "outside"),
    ("points_to_evaluate = [{grid = 10}]\n" + BASE, "points_to_evaluate[0]", "exactly"),
])
def test_validation_errors_name_file_and_field(tmp_path, text, field, words):
    path = write(tmp_path, text)
    with pytest.raises(VidcolorError) as err:
        load_spec(path)
    message = str(err.value)
    assert str(path) in message and field in message and words in message, message


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(VidcolorError, match="invalid TOML"):
        load_spec(write(tmp_path, "name = "))
    with pytest.raises(VidcolorError, match="not found"):
        load_spec(tmp_path / "nope.toml")


def test_set_routing_and_typing():
    settings = parse_sets(["lr=3e-4", "epochs=5", "amp=false", "size=small", "lam=0.25", "pretrained=none",
                           "ensemble=exp1,exp4", "rebalance=no"])
    experiment, train = apply_settings(ExperimentConfig(), TrainConfig(), settings)
    assert (train.lr, train.epochs, train.amp) == (3e-4, 5, False)
    assert (experiment.size, experiment.lam, experiment.pretrained) == ("small", 0.25, None)
    assert experiment.ensemble == ("exp1", "exp4") and experiment.rebalance is False


@pytest.mark.parametrize("item, words", [
    ("lr", "KEY=VALUE"),
    ("=3", "KEY=VALUE"),
    ("colour=red", "unknown setting 'colour'"),
    ("epochs=two", "epochs"),
    ("epochs=0", "epochs must be > 0"),
    ("grid=1000", "grid"),
    ("mode=up", "mode"),
])
def test_set_errors(item, words):
    with pytest.raises(VidcolorError, match=words) as err:
        apply_settings(ExperimentConfig(), TrainConfig(), parse_sets([item]))
    assert item == "lr" or item.startswith("=") or "--set" in str(err.value)


def test_train_config_round_trip_and_checks():
    tc = TrainConfig(lr=1, epochs=4)
    assert isinstance(tc.lr, float) and TrainConfig.from_dict(tc.to_dict()) == tc
    with pytest.raises(VidcolorError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(VidcolorError, match="integer"):
        TrainConfig(epochs=2.5)
    with pytest.raises(VidcolorError, match="unknown TrainConfig"):
        TrainConfig.from_dict({"epochs": 1, "wings": 2})


def test_parse_spec_without_file():
    spec = parse_spec({"name": "x", "preset": "exp1"})
    assert spec.search == () and spec.num_trials == 4 and spec.source == "<spec>"
