"""Checkpoints: save/load round trips (single, temporal, ensemble), clear errors, transfer of the trunk."""

import json
import logging

import pytest
import torch

from models.checkpoint import load_checkpoint, load_ensemble, load_pretrained_trunk, save_checkpoint
from models.ensemble import Ensemble
from models.errors import VidcolorError
from models.gamut import ABGamut, prior_digest
from models.model import create_model
from models.presets import get_preset


@pytest.fixture(scope="module")
def gamut():
    return ABGamut(10)


def _trained_like(model):
    """Perturb weights and BN statistics so a round trip that drops anything shows."""
    torch.manual_seed(1)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.randn_like(t) * 0.01)
    return model.eval()


def test_round_trip_identical_outputs(tmp_path, gamut):
    cfg = get_preset("exp5").replace(seq_len=2, temperature=0.2)
    model = _trained_like(create_model(cfg, gamut))
    prior = torch.softmax(torch.randn(gamut.num_bins), 0)
    save_checkpoint(tmp_path / "ck", model, cfg, gamut, prior=prior, extra={"epoch": 3})
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.config == cfg and loaded.gamut == gamut and not loaded.model.training
    assert loaded.meta["extra"] == {"epoch": 3} and loaded.meta["prior_digest"] == prior_digest(prior)
    assert torch.allclose(loaded.prior, prior)
    x = torch.rand(1, 3, 1, 16, 16) - 0.5
    with torch.no_grad():
        a, b = model(x), loaded.model(x)
    assert torch.equal(a.ab_logits, b.ab_logits) and torch.equal(a.seq_logits, b.seq_logits)
    assert torch.equal(model.predict_ab(x)[0], loaded.model.predict_ab(x)[0])


def test_ensemble_round_trip(tmp_path, gamut):
    members = [_trained_like(create_model(get_preset(n), gamut)) for n in ("exp1", "exp2")]
    for i, m in enumerate(members):
        save_checkpoint(tmp_path / f"m{i}", m, m.config, gamut, frame_size=32)
    assembled = load_ensemble([tmp_path / "m0", tmp_path / "m1"])
    ens = assembled.model
    assert assembled.frame_size == 32
    save_checkpoint(tmp_path / "ens", ens, ens.config, gamut, frame_size=assembled.frame_size)
    meta = json.loads((tmp_path / "ens" / "config.json").read_text())
    assert meta["kind"] == "ensemble" and [m["name"] for m in meta["members"]] == ["exp1", "exp2"]
    loaded = load_checkpoint(tmp_path / "ens")
    assert isinstance(loaded.model, Ensemble) and loaded.config.name == "exp3"
    assert loaded.frame_size == 32
    x = torch.rand(2, 1, 1, 16, 16) - 0.5
    with torch.no_grad():
        assert torch.equal(loaded.model(x).ab_logits, ens(x).ab_logits)


def test_ensemble_members_must_share_a_frame_size(tmp_path, gamut):
    for i, (name, size) in enumerate((("exp1", 32), ("exp2", 64))):
        m = create_model(get_preset(name), gamut)
        save_checkpoint(tmp_path / f"m{i}", m, m.config, gamut, frame_size=size)
    with pytest.raises(VidcolorError, match=r"different frame sizes \[32, 64\]"):
        load_ensemble([tmp_path / "m0", tmp_path / "m1"])


@pytest.mark.parametrize("size", [0, 7, 100_000, "64", True])
def test_frame_size_is_bounded(tmp_path, gamut, size):
    model = create_model(get_preset("exp2"), gamut)
    save_checkpoint(tmp_path / "ck", model, model.config, gamut, frame_size=64)
    path = tmp_path / "ck" / "config.json"
    meta = json.loads(path.read_text())
    assert meta["frame_size"] == 64 and load_checkpoint(tmp_path / "ck").frame_size == 64
    meta["frame_size"] = size
    path.write_text(json.dumps(meta))
    with pytest.raises(VidcolorError, match="frame_size: must be an integer in"):
        load_checkpoint(tmp_path / "ck")


def test_mismatched_config_is_a_clear_error(tmp_path, gamut):
    model = create_model(get_preset("exp2"), gamut)
    save_checkpoint(tmp_path / "ck", model, model.config, gamut)
    path = tmp_path / "ck" / "config.json"
    meta = json.loads(path.read_text())
    meta["config"]["size"] = "small"
    path.write_text(json.dumps(meta))
    with pytest.raises(VidcolorError, match=r"model.safetensors: weights do not match config.json.*other shapes"):
        load_checkpoint(tmp_path / "ck")
    meta["config"]["size"] = "tiny"
    meta["config"]["temporal"] = "convlstm"
    path.write_text(json.dumps(meta))
    with pytest.raises(VidcolorError, match=r"missing \d+ \(e.g. temporal"):
        load_checkpoint(tmp_path / "ck")
    meta["config"]["temporal"] = "bogus"
    path.write_text(json.dumps(meta))
    with pytest.raises(VidcolorError) as err:
        load_checkpoint(tmp_path / "ck")
    assert str(err.value) == f"{path}: field config.temporal: must be one of none, convlstm, got 'bogus'"
    meta["config"]["temporal"], meta["config"]["grid"] = "none", 10.5
    path.write_text(json.dumps(meta))
    with pytest.raises(VidcolorError) as err:
        load_checkpoint(tmp_path / "ck")
    assert str(err.value) == f"{path}: field config.grid: must be an integer, got 10.5"
    meta["config"]["grid"] = 10
    meta["format"] = "other/9"
    path.write_text(json.dumps(meta))
    with pytest.raises(VidcolorError, match="format is 'other/9'"):
        load_checkpoint(tmp_path / "ck")


def test_missing_and_corrupt_files(tmp_path, gamut):
    with pytest.raises(VidcolorError, match="checkpoint folder not found"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VidcolorError, match=r"no config.json"):
        load_checkpoint(tmp_path / "empty")
    model = create_model(get_preset("exp2"), gamut)
    save_checkpoint(tmp_path / "ck", model, model.config, gamut)
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(VidcolorError, match="model.safetensors: unreadable"):
        load_checkpoint(tmp_path / "ck")


def test_pretrained_trunk_other_grid_keeps_trunk_new_head(tmp_path, gamut, caplog):
    src = _trained_like(create_model(get_preset("exp2"), gamut))
    save_checkpoint(tmp_path / "src", src, src.config, gamut)
    g20 = ABGamut(20)
    torch.manual_seed(5)
    dst = create_model(get_preset("exp5").replace(grid=20, pretrained=str(tmp_path / "src")), g20)
    head_before = dst.colorizer.head.weight.clone()
    with caplog.at_level(logging.INFO, logger="models.checkpoint"):
        info = load_pretrained_trunk(dst, tmp_path / "src")
    assert info["head"] is False and info["temporal"] is False
    assert "new head" in caplog.text
    for k, v in src.trunk_state_dict().items():
        assert torch.equal(dst.state_dict()[k], v)
    assert torch.equal(dst.colorizer.head.weight, head_before)
    same = create_model(get_preset("exp4"), gamut)
    assert load_pretrained_trunk(same, tmp_path / "src")["head"] is True
    assert torch.equal(same.colorizer.head.weight, src.colorizer.head.weight)
    small = create_model(get_preset("exp4").replace(size="small"), gamut)
    with pytest.raises(VidcolorError, match="size 'tiny', the model 'small'"):
        load_pretrained_trunk(small, tmp_path / "src")


def test_weights_digest_is_recorded_and_checked(tmp_path, gamut, caplog):
    import hashlib

    model = create_model(get_preset("exp2"), gamut)
    ck = save_checkpoint(tmp_path / "ck", model, model.config, gamut)
    weights, config = ck / "model.safetensors", ck / "config.json"
    meta = json.loads(config.read_text())
    assert meta["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    load_checkpoint(ck)
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01  # one bit of one weight: safetensors still parses it
    weights.write_bytes(bytes(data))
    with pytest.raises(VidcolorError) as err:
        load_checkpoint(ck)
    assert str(err.value) == f"{weights}: sha256 does not match config.json (damaged or edited?)"
    # an older checkpoint (no field) still loads, saying so at debug level
    del meta["weights_sha256"]
    config.write_text(json.dumps(meta))
    with caplog.at_level(logging.DEBUG, logger="models.checkpoint"):
        loaded = load_checkpoint(ck)
    assert "records no weights_sha256" in caplog.text and loaded.config == model.config


# config.json's "config" of an exp2 checkpoint as the TypedConfig dataclass wrote it, before configs
# became pydantic models (pinned: such checkpoints must keep loading)
WRITTEN_EXP2 = {
    "name": "exp2",
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
    "ensemble": [],
    "transfer": False,
}
# what is written now: the same, plus the temporal loss's fields (issue 22), which older files lack
WRITTEN_NOW = {**WRITTEN_EXP2, "temporal_weight": 0.0, "temporal_long_term": False}


def test_checkpoints_written_before_still_load(tmp_path, gamut):
    """The config as written before, and an older file without frame_size, weights_sha256, gamut_digest
    and prior_digest; an ensemble's members likewise."""
    model = _trained_like(create_model(get_preset("exp2"), gamut))
    ck = save_checkpoint(tmp_path / "ck", model, model.config, gamut, frame_size=64)
    meta = json.loads((ck / "config.json").read_text())
    assert meta["config"] == WRITTEN_NOW  # written as before, plus the new fields
    for key in ("frame_size", "weights_sha256", "gamut_digest", "prior_digest"):
        del meta[key]
    (ck / "config.json").write_text(json.dumps({**meta, "config": WRITTEN_EXP2}))
    loaded = load_checkpoint(ck)
    assert loaded.config == get_preset("exp2") and loaded.frame_size is None
    members = [create_model(get_preset(n), gamut) for n in ("exp1", "exp2")]
    ens = load_ensemble([save_checkpoint(tmp_path / f"m{i}", m, m.config, gamut) for i, m in enumerate(members)])
    ck = save_checkpoint(tmp_path / "ens", ens.model, ens.config, gamut)
    meta = json.loads((ck / "config.json").read_text())
    assert meta["members"][1] == WRITTEN_NOW
    meta["members"][1] = {**WRITTEN_EXP2, "grid": "10"}
    (ck / "config.json").write_text(json.dumps(meta))
    with pytest.raises(VidcolorError) as err:
        load_checkpoint(ck)
    assert str(err.value) == f"{ck / 'config.json'}: field members[1].grid: must be an integer, got '10'"
