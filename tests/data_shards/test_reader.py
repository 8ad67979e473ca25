"""The shard reader: windows, equal batch counts per rank, disjoint slots, corrupt data, URLs."""

from __future__ import annotations

import functools
import io
import shutil
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from data_shards import reader
from data_shards.reader import ShardSet, deal_videos, eval_loader, train_loader
from data_shards.video import iter_frames
from data_shards.writer import write_shard_set
from models.errors import VidcolorError

JPEG_MEAN_TOL = 2.5  # as in test_writer: q95 JPEG vs the decoded source, mean |error| per value


@functools.cache
def _source(path: str) -> np.ndarray:
    return np.stack(list(iter_frames(path, 64)))


def _sources(shards: ShardSet) -> dict[str, str]:
    return {v["id"]: v["source"] for v in shards.manifest["videos"]}


def test_shardset_basics_and_errors(demo_shards, tmp_path):
    s = ShardSet(demo_shards)
    assert (s.size, s.clip_len, s.num_videos("train"), s.num_clips("train")) == (64, 8, 4, 12)
    assert s.urls("val") == [str(demo_shards / "val-000000.tar")]
    hist = s.ab_histogram()
    assert hist.dtype == np.int64 and hist.shape == (256, 256) and hist.sum() == 4 * 24 * 64 * 64
    with pytest.raises(VidcolorError, match="no split 'nope'"):
        s.urls("nope")
    with pytest.raises(VidcolorError, match="no such shard set"):
        ShardSet(tmp_path / "missing")
    with pytest.raises(VidcolorError, match="no manifest|not found"):
        ShardSet(tmp_path)
    with pytest.raises(VidcolorError, match="window 9.*clip_len 8"):
        train_loader(s, window=9)
    with pytest.raises(VidcolorError, match="rank 2 outside world_size 2"):
        eval_loader(s, rank=2, world_size=2)


@pytest.mark.parametrize("window", [1, 3, 8])
def test_train_windows_are_consecutive_source_frames(demo_shards, window):
    s = ShardSet(demo_shards)
    loader = train_loader(s, window=window, batch_size=4, steps_per_epoch=3, seed=1)
    batches = list(loader)
    assert len(batches) == len(loader) == 3
    sources = _sources(s)
    for b in batches:
        assert b["frames"].dtype == torch.uint8 and b["frames"].shape == (4, window, 64, 64, 3)
        assert b["start"].dtype == torch.int64 and len(b["video_id"]) == 4
        for frames, vid, start in zip(b["frames"].numpy(), b["video_id"], b["start"].tolist()):
            assert 0 <= start <= 24 - window
            expected = _source(sources[vid])[start : start + window]
            assert np.abs(frames.astype(int) - expected.astype(int)).mean() < JPEG_MEAN_TOL


def test_epochs_differ_and_a_seed_reproduces(demo_shards):
    def starts(seed):
        loader = train_loader(demo_shards, window=2, batch_size=4, steps_per_epoch=4, seed=seed)
        return [
            [(v, int(t)) for b in epoch for v, t in zip(b["video_id"], b["start"])]
            for epoch in (list(loader), list(loader))
        ]

    a, b = starts(5), starts(5)
    assert a == b and a[0] != a[1] and starts(6) != a


def _slot_clips(shards, rank, world_size, num_workers, steps, clip_len):
    """{slot: set of clip keys}, relying on DataLoader's round-robin order of worker batches."""
    loader = train_loader(
        shards,
        window=clip_len,
        batch_size=2,
        steps_per_epoch=steps,
        rank=rank,
        world_size=world_size,
        num_workers=num_workers,
        shuffle_buffer=4,
    )
    batches = list(loader)
    slots: dict[int, set] = {}
    for i, b in enumerate(batches):
        for vid, start in zip(b["video_id"], b["start"].tolist()):
            assert start % clip_len == 0  # window == clip_len: each item is one whole clip
            slots.setdefault(rank * num_workers + i % num_workers, set()).add((vid, start))
    return len(batches), slots


@pytest.mark.parametrize("shard_size", [None, 0.03], ids=["split-by-clip", "split-by-shard"])
def test_two_ranks_two_workers_disjoint_and_equal(demo_videos, demo_shards, tmp_path, shard_size):
    if shard_size is None:
        location = demo_shards  # one train shard: slots split the clips
    else:
        location = tmp_path / "small"
        write_shard_set([demo_videos], location, size=64, clip_len=8, shard_size=shard_size, show_progress=False)
    s = ShardSet(location)
    if shard_size:
        assert len(s.urls("train")) >= 4
    counts, slots = [], {}
    for rank in (0, 1):
        n, got = _slot_clips(s, rank, 2, 2, steps=6, clip_len=8)
        counts.append(n)
        slots.update(got)
    assert counts == [6, 6]
    assert sorted(slots) == [0, 1, 2, 3]
    keys = list(slots.values())
    for i in range(4):
        for j in range(i + 1, 4):
            assert not keys[i] & keys[j], (i, j)
    all_clips = {(v["id"], 8 * c) for v in s.videos("train") for c in range(v["clips"])}
    assert set().union(*keys) <= all_clips


@pytest.mark.parametrize("window, world_size", [(1, 2), (3, 2), (8, 3)])
def test_eval_covers_each_video_once_in_order_with_equal_counts(demo_shards, window, world_size):
    s = ShardSet(demo_shards)
    sources = _sources(s)
    per_rank = [
        list(eval_loader(s, "train", window=window, batch_size=4, rank=r, world_size=world_size))
        for r in range(world_size)
    ]
    assert len({len(b) for b in per_rank}) == 1  # same number of batches on every rank
    seen: dict[str, list[int]] = {}
    owner: dict[str, int] = {}
    for rank, batches in enumerate(per_rank):
        for b in batches:
            assert b["frames"].shape == (4, window, 64, 64, 3) and b["valid"].dtype == torch.bool
            for frames, vid, start, valid in zip(
                b["frames"].numpy(), b["video_id"], b["start"].tolist(), b["valid"].tolist()
            ):
                if not valid:
                    assert vid == "" and start == -1 and not frames.any()
                    continue
                assert owner.setdefault(vid, rank) == rank  # a video lives on one rank
                seen.setdefault(vid, []).append(start)
                expected = _source(sources[vid])[start : start + window]
                assert np.abs(frames.astype(int) - expected.astype(int)).mean() < JPEG_MEAN_TOL
    assert sorted(seen) == sorted(v["id"] for v in s.videos("train"))
    for starts in seen.values():
        assert starts == list(range(0, (24 // window) * window, window))  # in order, non-overlapping


def test_deal_videos_balances():
    assert deal_videos({"a": 10, "b": 6, "c": 5, "d": 1}, 2) == [["a", "d"], ["b", "c"]]
    assert deal_videos({"a": 3}, 3) == [["a"], [], []]


def _damage(shard_dir: Path) -> None:
    """Replace one JPEG of the first train clip by garbage and cut the val shard in half."""
    tar_path = shard_dir / "train-000000.tar"
    with tarfile.open(tar_path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar]
    with tarfile.open(tar_path, "w") as tar:
        for m, data in members:
            if m.name.endswith("clip00000.003.jpg"):
                data = b"this is not a jpeg" * 10
                m.size = len(data)
            tar.addfile(m, io.BytesIO(data))
    val = shard_dir / "val-000000.tar"
    val.write_bytes(val.read_bytes()[: val.stat().st_size // 2])


def test_corrupt_samples_are_counted_and_skipped(demo_shards, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(demo_shards, damaged)
    _damage(damaged)
    before = reader.CORRUPT.count
    batches = list(train_loader(damaged, window=8, batch_size=4, steps_per_epoch=6))
    assert len(batches) == 6 and reader.CORRUPT.count > before
    assert all(b["frames"].shape == (4, 8, 64, 64, 3) for b in batches)
    before = reader.CORRUPT.count
    clean = list(eval_loader(demo_shards, "val", window=2, batch_size=4))
    hurt = list(eval_loader(damaged, "val", window=2, batch_size=4))
    assert len(hurt) == len(clean)  # still the promised number of batches, padded
    n_valid = sum(int(b["valid"].sum()) for b in hurt)
    assert 0 < n_valid < sum(int(b["valid"].sum()) for b in clean) == 12
    assert reader.CORRUPT.count > before


def test_all_shards_unreadable_raises_instead_of_spinning(demo_shards, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(demo_shards, broken)
    (broken / "train-000000.tar").write_bytes(b"\0" * 3000)
    with pytest.raises(VidcolorError, match="no readable samples"):
        list(train_loader(broken, batch_size=2, steps_per_epoch=2))


def test_every_image_corrupt_raises_instead_of_spinning(demo_shards, tmp_path):
    broken = tmp_path / "bad_images"
    shutil.copytree(demo_shards, broken)
    tar_path = broken / "train-000000.tar"
    with tarfile.open(tar_path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar]
    with tarfile.open(tar_path, "w") as tar:  # readable tars, every frame member garbage
        for m, data in members:
            if m.name.endswith(".jpg"):
                data = b"this is not a jpeg" * 10
                m.size = len(data)
            tar.addfile(m, io.BytesIO(data))
    with pytest.raises(VidcolorError, match="no readable samples"):
        list(train_loader(broken, batch_size=2, steps_per_epoch=2, shuffle_buffer=4))


def test_split_smaller_than_the_shuffle_buffer_still_trains(demo_videos, tmp_path):
    """One video of 2 clips, batches of 8: the shuffle buffer (64) takes many passes over the shard
    to fill before the first sample comes out, which is no reason to stop."""
    write_shard_set(
        [demo_videos / "scene_000.mp4"], tmp_path / "s", size=32, clip_len=12, split="100,0,0", show_progress=False
    )
    batches = list(train_loader(tmp_path / "s", window=4, batch_size=8, steps_per_epoch=2))
    assert len(batches) == 2 and batches[0]["frames"].shape == (8, 4, 32, 32, 3)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_reads_over_http(demo_shards):
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(demo_shards)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        s = ShardSet(url)
        assert s.urls("val") == [f"{url}/val-000000.tar"]
        assert np.array_equal(s.ab_histogram(), ShardSet(demo_shards).ab_histogram())
        assert s.verify() == ["train-000000.tar", "val-000000.tar", "test-000000.tar", "legacy-000000.tar"]
        remote = list(eval_loader(s, "val", window=4, batch_size=2))
        local = list(eval_loader(demo_shards, "val", window=4, batch_size=2))
        assert len(remote) == len(local) == 3
        for a, b in zip(remote, local):
            assert torch.equal(a["frames"], b["frames"]) and a["start"].tolist() == b["start"].tolist()
        assert len(list(train_loader(s, batch_size=2, steps_per_epoch=2))) == 2
    finally:
        server.shutdown()
        server.server_close()


def test_relative_location_becomes_absolute(demo_shards, monkeypatch):
    # Ray runs trials in their own folders: a relative --shards must not depend on the cwd
    monkeypatch.chdir(demo_shards.parent)
    s = ShardSet(demo_shards.name)
    assert Path(s.location).is_absolute() and Path(s.location) == demo_shards.resolve()


def test_flows_only_when_asked_with_their_shapes(demo_shards):
    from data_shards.flows import window_flows

    plain = next(iter(train_loader(demo_shards, window=3, batch_size=2, steps_per_epoch=1, seed=1)))
    assert set(plain) == {"frames", "video_id", "start"}  # nothing computed without flows=True
    batch = next(
        iter(train_loader(demo_shards, window=3, batch_size=2, steps_per_epoch=1, seed=1, flows=True, flows_first=True))
    )
    assert torch.equal(batch["frames"], plain["frames"])  # the same windows, with their flows
    assert batch["flow"].dtype == torch.float32 and batch["flow"].shape == (2, 2, 2, 16, 16)
    assert batch["valid"].dtype == torch.bool and batch["valid"].shape == (2, 2, 16, 16)
    assert batch["flow_first"].shape == (2, 2, 2, 16, 16) and batch["valid_first"].shape == (2, 2, 16, 16)
    assert torch.equal(batch["flow_first"][:, 0], batch["flow"][:, 0])  # frame 1's pair is the same either way
    again = window_flows(batch["frames"][1].numpy())  # computed on the frames in the batch (after augmentation)
    assert torch.equal(again["flow"], batch["flow"][1]) and torch.equal(again["valid"], batch["valid"][1])
    with pytest.raises(VidcolorError, match="flows: need windows of 2 frames or more"):
        train_loader(demo_shards, window=1, flows=True)


def test_window_flows_follow_a_known_shift():
    import cv2

    from data_shards.flows import window_flows

    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur((rng.random((64, 128, 3)) * 255).astype(np.float32), (0, 0), 3)  # a texture DIS follows
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    frames = np.stack([base[:, 8 * (4 - k) : 8 * (4 - k) + 64] for k in range(3)])  # moving 8 px right per frame
    out = window_flows(frames)
    flow, valid = out["flow"], out["valid"]  # frame t -> t-1 is 8 px left: -2 on the 1/4 grid
    assert flow.shape == (2, 2, 16, 16) and valid.shape == (2, 16, 16)
    inner = valid[:, 2:-2, 4:-2]
    assert inner.float().mean() > 0.95 and not valid[:, :, :2].any()  # the columns that came in: no match
    assert torch.allclose(flow[:, 0, 2:-2, 4:-2][inner], torch.tensor(-2.0), atol=0.1)
    assert flow[:, 1].abs().mean() < 0.05
