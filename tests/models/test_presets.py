"""Presets exp1..exp5 and ExperimentConfig validation, settings and serialization."""

import dataclasses
import json
import pickle

import pytest

from models.errors import VidcolorError
from models.presets import FIELDS, PRESETS, ExperimentConfig, get_preset


def test_presets_match_the_seed_experiments():
    assert list(PRESETS) == ["exp1", "exp2", "exp3", "exp4", "exp5"]
    e1, e2, e3, e4, e5 = (get_preset(n) for n in PRESETS)
    assert not e1.rebalance and e2.rebalance and not e1.is_temporal and not e2.is_temporal
    assert e3.ensemble == ("exp1", "exp2") and e3.is_ensemble
    assert e4.rebalance and e4.transfer and not e4.is_temporal
    assert e5.rebalance and e5.transfer and e5.temporal == "convlstm" and e5.seq_len == 6 and 0 < e5.lam < 1
    assert e5.window == 7 and e2.window == 1


def test_every_preset_round_trips_json_and_pickle():
    for cfg in PRESETS.values():
        assert ExperimentConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
        assert pickle.loads(pickle.dumps(cfg)) == cfg


@pytest.mark.parametrize("field,value", [("size", "huge"), ("grid", 1), ("gamma", 0.0), ("temporal", "gru"),
                                         ("seq_len", 0), ("lam", 1.5), ("soft_k", 0), ("soft_sigma", -1.0),
                                         ("temperature", -0.1), ("rebalance", "yes"), ("grid", 10.5),
                                         ("ensemble", ("exp1",)), ("ensemble", ("exp1", "")),
                                         ("pretrained", ""), ("pretrained", 3), ("name", "a b"),
                                         ("ensemble", "exp1,exp4")])
def test_invalid_values_name_the_field(field, value):
    with pytest.raises(VidcolorError, match=rf"^{field}: .*{value!r}"):
        get_preset("exp2").replace(**{field: value})


def test_frozen_and_int_to_float():
    cfg = get_preset("exp5").replace(lam=1)
    assert cfg.lam == 1.0 and isinstance(cfg.lam, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lam = 0.2  # type: ignore[misc]


def test_with_settings_parses_text_and_rejects_unknown_keys():
    cfg = get_preset("exp5").with_settings(
        {"lam": "0.25", "grid": "20", "rebalance": "false", "size": "small", "pretrained": "runs/exp2/best",
         "ensemble": "exp1, exp2", "seq_len": 3})
    assert (cfg.lam, cfg.grid, cfg.rebalance, cfg.size, cfg.seq_len) == (0.25, 20, False, "small", 3)
    assert cfg.pretrained == "runs/exp2/best" and cfg.ensemble == ("exp1", "exp2")
    assert get_preset("exp4").with_settings({"pretrained": "none"}).pretrained is None
    assert get_preset("exp4").with_settings({"pretrained": ""}).pretrained is None
    with pytest.raises(VidcolorError, match="grid: expected int, got 'ten'"):
        get_preset("exp2").with_settings({"grid": "ten"})
    # the training loop's keys are not dropped: they are an error (study.config.settings routes them)
    with pytest.raises(VidcolorError, match=r"unknown experiment setting\(s\) epochs, lr \(valid: name, size"):
        get_preset("exp5").with_settings({"lam": "0.25", "lr": "1e-3", "epochs": "3"})


def test_replace_rejects_unknown_keys_listing_valid_ones():
    with pytest.raises(VidcolorError, match="unknown experiment setting.*lr.*valid: " + ", ".join(FIELDS[:3])):
        get_preset("exp2").replace(lr=0.1)
    with pytest.raises(VidcolorError, match="ckpt.json: unknown experiment setting"):
        ExperimentConfig.from_dict({"name": "x", "bogus": 1}, where="ckpt.json")


def test_transfer_presets_need_a_pretrained_checkpoint():
    with pytest.raises(VidcolorError, match="pretrained: exp4"):
        get_preset("exp4").check_ready()
    get_preset("exp4").replace(pretrained="some/dir").check_ready()
    get_preset("exp2").check_ready()


def test_unknown_preset():
    with pytest.raises(VidcolorError, match="exp9.*exp1, exp2"):
        get_preset("exp9")


def test_ensemble_list_becomes_a_tuple_and_own_name_is_refused():
    cfg = get_preset("exp3").replace(ensemble=["exp1", "exp4"])
    assert cfg.ensemble == ("exp1", "exp4") and cfg.to_dict()["ensemble"] == ["exp1", "exp4"]
    with pytest.raises(VidcolorError, match="ensemble: must not contain the config's own name 'exp3'"):
        get_preset("exp3").replace(ensemble=("exp3", "exp1"))
