"""Presets exp1..exp5 and ExperimentConfig validation, settings and serialization."""

import json
import pickle

import pytest
from pydantic import ValidationError

from models.config import FieldError
from models.errors import VidcolorError
from models.presets import FIELDS, PRESETS, ExperimentConfig, get_preset


def test_presets_match_the_seed_experiments():
    assert list(PRESETS) == ["exp1", "exp2", "exp3", "exp4", "exp5", "exp6"]
    e1, e2, e3, e4, e5, e6 = (get_preset(n) for n in PRESETS)
    assert not e1.rebalance and e2.rebalance and not e1.is_temporal and not e2.is_temporal
    assert e3.ensemble == ("exp1", "exp2") and e3.is_ensemble
    assert e4.rebalance and e4.transfer and not e4.is_temporal
    assert e5.rebalance and e5.transfer and e5.temporal == "convlstm" and e5.seq_len == 6 and 0 < e5.lam < 1
    assert e5.window == 7 and e2.window == 1
    assert e6 == e5.replace(name="exp6", temporal_weight=e6.temporal_weight) and e6.temporal_weight > 0
    assert e5.temporal_weight == 0 and not e5.temporal_long_term


def test_temporal_loss_settings_parse_from_set_text():
    cfg = get_preset("exp5").with_settings({"temporal_weight": "0.25", "temporal_long_term": "yes"})
    assert cfg.temporal_weight == 0.25 and cfg.temporal_long_term


def test_training_windows():
    e2, e5 = get_preset("exp2"), get_preset("exp5")
    assert e5.train_window(16) == 16 and e5.train_window(8) == 8  # a whole clip: the state carried as at inference
    assert e2.train_window(16) == 1 and e2.replace(temporal_weight=0.5).train_window(16) == 2  # L_temp needs a pair


def test_every_preset_round_trips_json_and_pickle():
    for cfg in PRESETS.values():
        assert ExperimentConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
        assert pickle.loads(pickle.dumps(cfg)) == cfg


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("size", "huge", "field size: must be one of tiny, small, base, got 'huge'"),
        ("grid", 1, "field grid: must be in [2, 64], got 1"),
        ("grid", 10.5, "field grid: must be an integer, got 10.5"),
        ("grid", True, "field grid: must be an integer, got True"),
        ("gamma", 0.0, "field gamma: must be in (0, 1], got 0.0"),
        ("temporal", "gru", "field temporal: must be one of none, convlstm, got 'gru'"),
        ("seq_len", 0, "field seq_len: must be in [1, 64], got 0"),
        ("lam", 1.5, "field lam: must be in [0, 1], got 1.5"),
        ("soft_k", 0, "field soft_k: must be in [1, 64], got 0"),
        ("soft_sigma", -1.0, "field soft_sigma: must be in (0, 100], got -1.0"),
        ("temperature", -0.1, "field temperature: must be in [0, 10], got -0.1"),
        ("temporal_weight", -0.5, "field temporal_weight: must be in [0, 1000], got -0.5"),
        ("temporal_long_term", "yes", "field temporal_long_term: must be true or false, got 'yes'"),
        ("rebalance", "yes", "field rebalance: must be true or false, got 'yes'"),
        ("ensemble", ("exp1",), "field ensemble: needs at least two members (or none), got ('exp1',)"),
        ("ensemble", ("exp1", ""), "field ensemble[1]: must not be empty, got ''"),
        ("ensemble", "exp1,exp4", "field ensemble: must be a list, got 'exp1,exp4'"),
        ("pretrained", "", "field pretrained: must not be empty, got ''"),
        ("pretrained", 3, "field pretrained: must be a string, got 3"),
        ("name", "a b", "field name: must be a non-empty name of letters, digits, - and _, got 'a b'"),
    ],
)
def test_invalid_values_name_the_field_what_is_allowed_and_the_value(field, value, message):
    with pytest.raises(FieldError) as err:
        get_preset("exp2").replace(**{field: value})
    assert str(err.value) == message and err.value.path[0] == field


def test_frozen_and_int_to_float():
    cfg = get_preset("exp5").replace(lam=1)
    assert cfg.lam == 1.0 and isinstance(cfg.lam, float)
    with pytest.raises(ValidationError, match="frozen"):
        cfg.lam = 0.2  # type: ignore[misc]


def test_with_settings_parses_text_and_rejects_unknown_keys():
    cfg = get_preset("exp5").with_settings(
        {
            "lam": "0.25",
            "grid": "20",
            "rebalance": "false",
            "size": "small",
            "pretrained": "runs/exp2/best",
            "ensemble": "exp1, exp2",
            "seq_len": 3,
        }
    )
    assert (cfg.lam, cfg.grid, cfg.rebalance, cfg.size, cfg.seq_len) == (0.25, 20, False, "small", 3)
    assert cfg.pretrained == "runs/exp2/best" and cfg.ensemble == ("exp1", "exp2")
    assert get_preset("exp4").with_settings({"pretrained": "none"}).pretrained is None
    assert get_preset("exp4").with_settings({"pretrained": ""}).pretrained is None
    with pytest.raises(VidcolorError, match="^field grid: must be an integer, got 'ten'$"):
        get_preset("exp2").with_settings({"grid": "ten"})
    # the training loop's keys are not dropped: they are an error (study.config.settings routes them)
    with pytest.raises(VidcolorError, match=r"^field epochs: unknown experiment setting \(allowed: ensemble, gamma"):
        get_preset("exp5").with_settings({"lam": "0.25", "lr": "1e-3", "epochs": "3"})


def test_replace_rejects_unknown_keys_listing_valid_ones():
    with pytest.raises(VidcolorError) as err:
        get_preset("exp2").replace(lr=0.1)
    assert str(err.value) == f"field lr: unknown experiment setting (allowed: {', '.join(sorted(FIELDS))})"
    with pytest.raises(VidcolorError, match=r"^ckpt.json: field config.bogus: unknown experiment setting \(allowed"):
        ExperimentConfig.from_dict({"name": "x", "bogus": 1}, "ckpt.json", ("config",))


def test_transfer_presets_need_a_pretrained_checkpoint():
    with pytest.raises(VidcolorError, match="^field pretrained: exp4 starts from a pretrained colorizer"):
        get_preset("exp4").check_ready()
    get_preset("exp4").replace(pretrained="some/dir").check_ready()
    get_preset("exp2").check_ready()


def test_unknown_preset():
    with pytest.raises(VidcolorError, match="exp9.*exp1, exp2"):
        get_preset("exp9")


def test_ensemble_list_becomes_a_tuple_and_own_name_is_refused():
    cfg = get_preset("exp3").replace(ensemble=["exp1", "exp4"])
    assert cfg.ensemble == ("exp1", "exp4") and cfg.to_dict()["ensemble"] == ["exp1", "exp4"]
    with pytest.raises(VidcolorError, match="^field ensemble: must not contain the config's own name 'exp3'"):
        get_preset("exp3").replace(ensemble=("exp3", "exp1"))


# exp5's and exp3's to_dict() as the TypedConfig dataclass wrote them into checkpoints' config.json
# and the results store before configs became pydantic models (pinned: such files must keep loading)
WRITTEN_EXP5 = {
    "name": "exp5",
    "size": "tiny",
    "grid": 10,
    "rebalance": True,
    "gamma": 0.5,
    "temporal": "convlstm",
    "seq_len": 6,
    "lam": 0.5,
    "soft_k": 5,
    "soft_sigma": 5.0,
    "temperature": 0.38,
    "pretrained": None,
    "ensemble": [],
    "transfer": True,
}
WRITTEN_EXP3 = {
    "name": "exp3",
    "size": "tiny",
    "grid": 10,
    "rebalance": True,
    "gamma": 0.5,
    "temporal": "none",
    "seq_len": 1,
    "lam": 1.0,
    "soft_k": 5,
    "soft_sigma": 5.0,
    "temperature": 0.38,
    "pretrained": None,
    "ensemble": ["exp1", "exp2"],
    "transfer": False,
}


def test_configs_written_before_still_load_and_are_written_alike():
    for written, name in ((WRITTEN_EXP5, "exp5"), (WRITTEN_EXP3, "exp3")):
        loaded = ExperimentConfig.from_dict(json.loads(json.dumps(written)))
        new_fields = {"temporal_weight": 0.0, "temporal_long_term": False}  # issue 22's, at their defaults
        assert loaded == get_preset(name) and loaded.to_dict() == {**written, **new_fields}
    hand_written = {**WRITTEN_EXP5, "lam": 1, "soft_sigma": 5}  # ints where floats are meant
    lam = ExperimentConfig.from_dict(hand_written).lam
    assert lam == 1.0 and type(lam) is float
    assert ExperimentConfig.from_dict({"name": "exp2"}) == get_preset("exp2")  # a field missing: its default
