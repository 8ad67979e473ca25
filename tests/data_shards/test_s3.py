"""A shard set on an S3-compatible server (moto, on localhost): what the readers get from it is what
they get from the same set on disk, checksums are verified over S3, and missing or changed objects
are named."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from data_shards.reader import ShardSet, eval_loader, train_loader
from models.errors import VidcolorError


@pytest.fixture(scope="module")
def s3_shards(s3_server, demo_shards) -> str:
    url = "s3://vidcolor-data/sets/demo"
    s3_server.upload(demo_shards, url)
    return url


def _frames(loader) -> dict[tuple[str, int], np.ndarray]:
    out = {}
    for batch in loader:
        for frames, vid, start, valid in zip(
            batch["frames"].numpy(), batch["video_id"], batch["start"].tolist(), batch["valid"].tolist()
        ):
            if valid:
                out[(vid, start)] = frames
    return out


def test_s3_shard_set_reads_like_the_local_one(s3_shards, demo_shards):
    remote, local = ShardSet(s3_shards), ShardSet(demo_shards)
    assert remote.scheme == "s3" and remote.manifest == local.manifest
    assert remote.urls("val") == [f"{s3_shards}/{n}" for n in local.manifest["splits"]["val"]["shards"]]
    np.testing.assert_array_equal(remote.ab_histogram(), local.ab_histogram())
    assert remote.verify() == local.verify()  # every shard's sha256, read over S3
    for split in ("val", "test"):
        got, want = _frames(eval_loader(remote, split, window=4)), _frames(eval_loader(local, split, window=4))
        assert got.keys() == want.keys() and len(got) == local.num_frames(split) // 4
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])
    batches = list(train_loader(remote, window=3, batch_size=2, steps_per_epoch=2, seed=0))
    assert len(batches) == 2 and tuple(batches[0]["frames"].shape) == (2, 3, 64, 64, 3)


def test_s3_missing_set_and_changed_shard_are_named(s3_server, demo_shards, tmp_path):
    with pytest.raises(
        VidcolorError,
        match=r"s3://vidcolor-data/nothing-here/\.manifest\.json: not found|"
        r"s3://vidcolor-data/nothing-here/.*not found",
    ):
        ShardSet("s3://vidcolor-data/nothing-here")
    with pytest.raises(VidcolorError, match="s3://no-such-bucket-vc/x/"):
        ShardSet("s3://no-such-bucket-vc/x")
    damaged = tmp_path / "damaged"
    shutil.copytree(demo_shards, damaged)
    name = sorted(damaged.glob("val-*.tar"))[0]
    data = bytearray(name.read_bytes())
    data[len(data) // 2] ^= 0xFF
    name.write_bytes(bytes(data))
    s3_server.upload(damaged, "s3://vidcolor-data/sets/damaged")
    with pytest.raises(
        VidcolorError, match=f"1 of .* fail their checksum.*s3://vidcolor-data/sets/damaged/{name.name}"
    ):
        ShardSet("s3://vidcolor-data/sets/damaged").verify()


def test_shard_refuses_an_s3_out_instead_of_making_a_local_folder(demo_videos, tmp_path, monkeypatch):
    from data_shards.writer import write_shard_set

    monkeypatch.chdir(tmp_path)
    with pytest.raises(VidcolorError, match=r"^--out s3://vidcolor/sets/a: vidcolor shard writes a local folder"):
        write_shard_set(sorted(demo_videos.glob("*.mp4")), "s3://vidcolor/sets/a", size=32)
    assert list(tmp_path.iterdir()) == []  # no folder named "s3:" left behind
