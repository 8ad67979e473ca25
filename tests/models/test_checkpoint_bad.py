"""Checkpoints with bad contents are refused at load with an error naming the file and the tensor or
field: non-finite weights, a floating weight stored with an integer or bool dtype, an unknown
config.json key, gamut centers edited with their digest removed. Good ones still load."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from models.checkpoint import META_KEYS, file_sha256, load_checkpoint, load_ensemble, save_checkpoint
from models.ensemble import Ensemble
from models.errors import VidcolorError
from models.gamut import ABGamut
from models.model import VideoColorizer, create_model
from models.presets import get_preset

HEAD = "colorizer.head.weight"


@pytest.fixture(scope="module")
def gamut():
    return ABGamut(10)


@pytest.fixture
def ck(tmp_path, gamut):
    model = create_model(get_preset("exp2"), gamut)
    return save_checkpoint(tmp_path / "ck", model, model.config, gamut, frame_size=64)


def _rewrite_weights(folder, edit):
    """Apply `edit` to the folder's tensors and record the new file's sha256, as a writer of such weights would."""
    weights = folder / "model.safetensors"
    state = load_file(str(weights))
    edit(state)
    save_file(state, str(weights), metadata={"format": "pt"})
    _edit_meta(folder, lambda meta: meta.update(weights_sha256=file_sha256(weights)))
    return weights


def _edit_meta(folder, edit):
    path = folder / "config.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))
    return path


def _error(folder):
    with pytest.raises(VidcolorError) as err:
        load_checkpoint(folder)
    return str(err.value)


def test_good_checkpoint_loads(ck):
    loaded = load_checkpoint(ck)
    assert isinstance(loaded.model, VideoColorizer) and loaded.frame_size == 64


def test_non_finite_weights_are_refused(ck):
    def poison(state):
        state[HEAD][0, 0, 0, 0] = float("nan")
        state[HEAD][1, 0, 0, 0] = float("nan")
        state["colorizer.trunk.0.0.bias"][3] = float("-inf")

    weights = _rewrite_weights(ck, poison)
    assert _error(ck) == (
        f"{weights}: non-finite weights in 2 tensors: colorizer.trunk.0.0.bias (0 NaN, 1 Inf), {HEAD} (2 NaN, 0 Inf)"
    )


def test_non_finite_weights_as_saved_are_refused(tmp_path, gamut):
    """A diverged model saved as it was (weights_sha256 matches): refused, not decoded to white."""
    model = create_model(get_preset("exp2"), gamut)
    with torch.no_grad():
        model.colorizer.head.bias.fill_(float("inf"))
    ck = save_checkpoint(tmp_path / "ck", model, model.config, gamut)
    assert _error(ck) == (
        f"{ck / 'model.safetensors'}: non-finite weights in 1 tensor: colorizer.head.bias (0 NaN, {gamut.num_bins} Inf)"
    )


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.uint8, torch.bool])
def test_floating_weights_stored_as_integers_are_refused(ck, dtype):
    weights = _rewrite_weights(ck, lambda state: state.update({HEAD: state[HEAD].to(dtype)}))
    name = str(dtype).removeprefix("torch.")
    assert _error(ck) == f"{weights}: tensor {HEAD} is stored as {name}, expected float32 (the model's)"


def test_every_tensor_cast_is_counted(ck):
    def cast_all(state):
        for k, v in state.items():
            state[k] = v.to(torch.int32)

    weights = _rewrite_weights(ck, cast_all)
    floating = sum(v.is_floating_point() for v in create_model(get_preset("exp2"), ABGamut(10)).state_dict().values())
    assert _error(ck) == (
        f"{weights}: tensor colorizer.trunk.0.0.weight is stored as int32, expected float32 (the model's) "
        f"({floating - 1} more tensors likewise)"
    )


def test_integer_buffers_still_load(ck):
    """BatchNorm's num_batches_tracked is an integer in the model too: int32 or int64 in the file both load."""
    key = "colorizer.trunk.0.4.num_batches_tracked"
    _rewrite_weights(ck, lambda state: state.update({key: torch.tensor(7, dtype=torch.int32)}))
    loaded = load_checkpoint(ck)
    assert loaded.model.state_dict()[key].dtype == torch.int64 and int(loaded.model.state_dict()[key]) == 7


def test_unknown_config_key_is_refused(ck):
    path = _edit_meta(ck, lambda meta: meta.update(temprature=0.2))
    assert _error(ck) == (
        f"{path}: unknown field 'temprature' (allowed: config, created, extra, format, frame_size, gamut_centers, "
        "gamut_digest, grid, kind, members, num_bins, prior, prior_digest, versions, weights_sha256)"
    )
    _edit_meta(ck, lambda meta: meta.update(notes=""))
    assert _error(ck).startswith(f"{path}: unknown fields 'notes', 'temprature' (allowed: config, ")


def test_writer_keys_are_the_allowed_keys(tmp_path, ck, gamut):
    """What save_checkpoint writes (single and ensemble) is exactly META_KEYS: a new field must be allowed too."""
    single = set(json.loads((ck / "config.json").read_text()))
    ens = load_ensemble([ck, ck])
    folder = save_checkpoint(tmp_path / "ens", ens.model, ens.config, gamut)
    assert single | set(json.loads((folder / "config.json").read_text())) == META_KEYS


def test_edited_centers_without_digest_are_refused(ck):
    def edit(meta):
        del meta["gamut_digest"]
        meta["gamut_centers"][5][1] += 3.0

    path = _edit_meta(ck, edit)
    assert _error(ck) == (
        f"{path}: field gamut_centers: center 5 is (-80, 23), grid 10 has (-80, 20), "
        "and there is no gamut_digest to record other centers (edited file?)"
    )
    _edit_meta(ck, lambda meta: meta.update(gamut_centers=meta["gamut_centers"][:-1], num_bins=308))
    assert _error(ck) == (
        f"{path}: field gamut_centers: 308 centers, grid 10 has 309 bins, "
        "and there is no gamut_digest to record other centers (edited file?)"
    )


def test_edited_centers_with_digest_are_refused(ck):
    path = _edit_meta(ck, lambda meta: meta["gamut_centers"][5].__setitem__(1, 23.0))
    assert _error(ck) == f"{path}: gamut_centers do not match gamut_digest (edited file?)"
    _edit_meta(ck, lambda meta: meta.update(gamut_digest=""))
    assert _error(ck) == f"{path}: gamut_centers do not match gamut_digest (edited file?)"


def test_centers_of_the_grid_load_without_digest(ck, gamut):
    _edit_meta(ck, lambda meta: meta.pop("gamut_digest"))
    assert load_checkpoint(ck).gamut == gamut


def test_other_centers_with_their_digest_load(tmp_path):
    """Centers that are not the grid's own (as the ECCV16 import's 313) load when their digest is recorded."""
    own = ABGamut(10).centers
    other = ABGamut(10, centers=torch.cat([own, torch.tensor([[200.0, 200.0]])]))
    model = create_model(get_preset("exp2"), other)
    ck = save_checkpoint(tmp_path / "ck", model, model.config, other)
    assert load_checkpoint(ck).gamut == other


def test_ensembles_load_and_a_bad_member_is_named(tmp_path, gamut):
    members = [create_model(get_preset(n), gamut) for n in ("exp1", "exp2")]
    folders = [save_checkpoint(tmp_path / f"m{i}", m, m.config, gamut) for i, m in enumerate(members)]
    ens = load_ensemble(folders)
    saved = save_checkpoint(tmp_path / "ens", ens.model, ens.config, gamut)
    assert isinstance(load_checkpoint(saved).model, Ensemble)
    weights = _rewrite_weights(saved, lambda state: state[f"members.1.{HEAD}"].view(-1)[0].fill_(float("nan")))
    assert _error(saved) == f"{weights}: non-finite weights in 1 tensor: members.1.{HEAD} (1 NaN, 0 Inf)"
    weights = _rewrite_weights(folders[1], lambda state: state[HEAD].view(-1)[0].fill_(float("nan")))
    with pytest.raises(VidcolorError) as err:
        load_ensemble(folders)
    assert str(err.value) == f"{weights}: non-finite weights in 1 tensor: {HEAD} (1 NaN, 0 Inf)"
