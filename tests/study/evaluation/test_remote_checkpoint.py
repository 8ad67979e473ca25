"""Checkpoints under remote storage (s3://, on moto's S3 server): fetched to a temporary folder
for loading, the same weights as the local folder, nothing left behind; missing ones are named."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

from models.checkpoint import load_checkpoint
from models.errors import VidcolorError
from study.colorize.inference import FilmInference
from study.remote import local_checkpoint


def _temp_copies() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("vidcolor-ckpt-*"))


def test_s3_checkpoint_loads_like_the_folder_and_leaves_nothing(s3_server, tiny_checkpoint):
    url = "s3://vidcolor-ckpts/runs/exp2/best"
    s3_server.upload(tiny_checkpoint, url)
    before = _temp_copies()
    with local_checkpoint(tiny_checkpoint) as same:
        assert same == tiny_checkpoint  # a local folder is used in place
    with local_checkpoint(url + "/") as fetched:
        assert fetched != tiny_checkpoint and sorted(p.name for p in fetched.iterdir()) == sorted(
            p.name for p in tiny_checkpoint.iterdir()
        )
        remote = load_checkpoint(fetched)
    assert not fetched.exists() and _temp_copies() == before
    local = load_checkpoint(tiny_checkpoint)
    for (name, a), (_, b) in zip(local.model.state_dict().items(), remote.model.state_dict().items()):
        assert torch.equal(a, b), name
    film = FilmInference.from_checkpoint(url, device="cpu", size=32)  # vidcolor colorize takes the URI too
    assert film.size == 32 and _temp_copies() == before


def test_missing_s3_checkpoint_is_named(s3_server):
    s3_server.make_bucket("vidcolor-ckpts")
    with pytest.raises(VidcolorError, match="s3://vidcolor-ckpts/none/best: no such checkpoint folder"):
        with local_checkpoint("s3://vidcolor-ckpts/none/best"):
            pass
    with pytest.raises(VidcolorError, match="s3://vidcolor-ckpts/none/best: no such checkpoint folder"):
        FilmInference.from_checkpoint("s3://vidcolor-ckpts/none/best", device="cpu", size=32)
