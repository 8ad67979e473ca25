"""Damaged checkpoints into `vidcolor colorize` and `vidcolor evaluate`, and damaged or ill-formed
weight files into `vidcolor import-eccv16`.

A checkpoint's config.json is damaged as bytes or field by field; its model.safetensors as bytes or
through its JSON header (dtype, shape, offsets), with config.json's weights_sha256 kept, updated to
the damaged file (so the damage reaches the loader past the digest check) or dropped.
"""

from __future__ import annotations

import hashlib
import json

import torch
from hypothesis import given
from hypothesis import strategies as st


def _damaged_checkpoint(fz, data, folder):
    ckpt = fz.copy(fz.base.ckpt, folder)
    config, weights = ckpt / "config.json", ckpt / "model.safetensors"
    target = data.draw(st.sampled_from(["config bytes", "config fields", "weights bytes", "weights header"]))
    if target == "config bytes":
        config.write_bytes(fz.damage(data, config.read_bytes(), "config"))
        return ckpt
    meta = json.loads(config.read_text())
    if target == "config fields":
        meta = fz.mutate_json(data, meta, "config")
    else:
        raw = weights.read_bytes()
        raw = fz.damage(data, raw, "weights") if target == "weights bytes" else fz.damage_safetensors(data, raw)
        weights.write_bytes(raw)
        digest = data.draw(st.sampled_from(["keep", "update", "drop"]), "weights_sha256")
        if digest == "update":
            meta["weights_sha256"] = hashlib.sha256(raw).hexdigest()
        elif digest == "drop":
            meta.pop("weights_sha256", None)
    config.write_text(json.dumps(meta))
    return ckpt


@given(data=st.data())
def test_damaged_checkpoint_into_colorize(fz, data):
    with fz.case() as case:
        ckpt = _damaged_checkpoint(fz, data, case / "ckpt")
        fz.check(
            ["colorize", ckpt, fz.base.gray, case / "out.mp4", "--device", "cpu"],
            watch=[case, fz.base.root],
            out=case / "out.mp4",
        )


@given(data=st.data())
def test_damaged_checkpoint_into_evaluate(fz, data):
    with fz.case() as case:
        ckpt = _damaged_checkpoint(fz, data, case / "ckpt")
        fz.check(
            ["evaluate", ckpt, "--shards", fz.base.shards, "--device", "cpu", "--json", case / "m.json"],
            watch=[case, fz.base.root],
            out=case / "m.json",
            allowed=(0, 1, 2),
        )


@given(data=st.data())
def test_damaged_weights_file_into_import_eccv16(fz, data):
    with fz.case() as case:
        pth = case / "weights.pth"
        pth.write_bytes(fz.damage(data, fz.base.pth.read_bytes()))
        fz.check(["import-eccv16", pth, "--out", case / "ck"], watch=[case, fz.base.root], out=case / "ck")


def _tensor(shape, dtype, fill):
    return torch.full(shape, fill, dtype=dtype) if dtype.is_floating_point else torch.zeros(shape, dtype=dtype)


_TENSORS = st.builds(
    _tensor,
    st.sampled_from([(), (0,), (2, 0, 1, 1), (2, 3, 1, 1), (2, 313, 1, 1), (1, 313, 1, 1), (2, 3), (4, 1, 3, 3)]),
    st.sampled_from([torch.float32, torch.float16, torch.int64, torch.bool, torch.uint8]),
    st.sampled_from([0.0, 0.5, 1.0, float("nan"), float("inf")]),
)
_VALUES = st.one_of(_TENSORS, st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=3))
_KEYS = st.one_of(
    st.sampled_from(["model_out.weight", "model1.0.weight", "model8.6.bias", "model9.0.weight", "state_dict", ""]),
    st.text(max_size=8),
    st.integers(-2, 2),
)


@given(
    state=st.one_of(
        st.dictionaries(_KEYS, _VALUES, max_size=4),
        st.dictionaries(st.just("state_dict"), st.dictionaries(_KEYS, _VALUES, max_size=3), min_size=1),
        st.lists(_VALUES, max_size=3),
        _VALUES,
    )
)
def test_ill_formed_state_dict_into_import_eccv16(fz, state):
    """Weights-only .pth files that load but hold the wrong things: no traceback, no folder left."""
    with fz.case() as case:
        pth = case / "weights.pth"
        torch.save(state, pth)
        rc, _ = fz.check(["import-eccv16", pth, "--out", case / "ck"], watch=[case, fz.base.root], out=case / "ck")
        if rc == 2:
            assert not (case / "ck").exists()
