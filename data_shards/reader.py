"""Read shard sets for training and evaluation: equal batch counts on every rank.

- `ShardSet(location)` (from `data_shards.shardset`): a local folder or a URL prefix, its
  manifest, ab histogram and checksums.
- `train_loader(...)`: an endless, resampled stream of random windows of ``window`` consecutive
  frames, cut from the stored clips at load time (so the sequence length never needs
  re-sharding). Shards are split by Ray Train rank and DataLoader worker (rank and world size are
  passed in; torch.distributed need not be initialised); with fewer shards than rank x worker
  slots the split falls back to clips, so slots stay disjoint. Shuffling uses a bounded buffer of
  *undecoded* clips. The `WebLoader` gets ``with_epoch(steps_per_epoch)``: every rank yields
  exactly that many batches per epoch, which DDP and `ray.train.report` need. With ``flows=True``
  each window also gets its ground truth's DIS flows and matched pixels at the logits' 1/4
  resolution (`data_shards.flows`), for the temporal loss; without it nothing is computed.
- `eval_loader(...)`: one ordered pass; whole videos are dealt to ranks (balanced by windows),
  each video's frames come in order as non-overlapping windows, and every rank yields the same
  number of batches, padded with items whose ``valid`` is False. A video's last
  ``frames % window`` frames are not evaluated.

``start`` in a batch is the window's first stored-frame position within its video. Corrupt
samples (unreadable tars, bad images, bad json, missing members) are counted, logged and skipped.
Both loaders count the samples of each shard against the manifest (`data_shards.integrity`) and
log a warning naming every shard that falls short; after a full pass, an `EvalLoader`'s
``shortfalls`` lists them (and the split's missing windows), for `vidcolor evaluate` to report.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from data_shards import integrity
from data_shards.augment import Augment
from data_shards.flows import window_flows
from data_shards.samples import CORRUPT, clip_meta, collate, decode_frame, frame_members, stack_frames
from data_shards.shardset import ShardSet
from models.errors import VidcolorError

log = logging.getLogger(__name__)


def _as_shardset(shards: ShardSet | str | Path) -> ShardSet:
    return shards if isinstance(shards, ShardSet) else ShardSet(shards)


def _check_window(window: int, clip_len: int) -> None:
    if not 1 <= window <= clip_len:
        raise VidcolorError(f"window {window}: must be between 1 and the shard set's clip_len {clip_len}")


# ----------------------------------------------------------------------------- training


class _TrainStream(IterableDataset):
    """The per-(rank, worker) endless stream of batches; ``epoch`` is set by `TrainLoader`."""

    def __init__(
        self,
        shards: ShardSet,
        split: str,
        *,
        window: int,
        batch_size: int,
        rank: int,
        world_size: int,
        seed: int,
        shuffle_buffer: int,
        augment: Augment | None = None,
        flows: bool = False,
        flows_first: bool = False,
    ):
        super().__init__()
        self.flows, self.flows_first = flows, flows_first
        self.augment = augment if augment is not None and not augment.identity else None
        self.urls, self.ordinals = shards.urls(split), _clip_ordinals(shards, split)
        self.tally = integrity.ShardTally(shards, shards.manifest["splits"][split]["shards"])
        self.window, self.clip_len, self.size = window, shards.clip_len, shards.size
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.seed, self.shuffle_buffer = seed, shuffle_buffer
        self.epoch = 0

    def assignment(self, worker: int, num_workers: int) -> tuple[list[str], set[str] | None]:
        """(shards this slot resamples from, clip keys it keeps or None for all)."""
        slots, slot = self.world_size * num_workers, self.rank * num_workers + worker
        if len(self.urls) >= slots:
            return self.urls[slot::slots], None
        if len(self.ordinals) >= slots:  # few shards: split by clip instead, every slot reads every shard
            return self.urls, {k for k, i in self.ordinals.items() if i % slots == slot}
        log.warning("%d clips for %d rank x worker slots: slots share clips", len(self.ordinals), slots)
        return self.urls, None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        urls, keep = self.assignment(worker, num_workers)
        rng = random.Random(f"{self.seed}/{self.epoch}/{self.rank}/{worker}")
        good, read = [0], [0]  # samples decoded into a window / read from the tars

        def shard_stream() -> Iterator[str]:
            opened, mark = 0, (0, 0)  # shards opened since the last good sample; (good, read) then
            while True:  # resampled: shards drawn with replacement, forever
                if good[0] > mark[0]:
                    opened, mark = 0, (good[0], read[0])
                # Spinning: nothing readable in the tars, or more read than the shuffle buffer holds
                # (so it has been decoded) and none of it good. A small split only fills the buffer.
                stale = read[0] - mark[1]
                if opened > 2 * len(urls) + 8 and (stale == 0 or stale > self.shuffle_buffer):
                    raise VidcolorError(f"no readable samples in {len(urls)} shard(s), e.g. {urls[0]}")
                yield rng.choice(urls)
                opened += 1

        def counted(samples: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            for sample in samples:
                read[0] += 1
                yield sample

        samples = self.tally.stream(shard_stream())  # a shard short of its manifest count: warned once
        if keep is not None:
            samples = (s for s in samples if s.get("__key__") in keep)
        samples = counted(samples)
        # shuffle *before* decoding: the buffer holds compressed clips, not decoded frames
        samples = wds.filters._shuffle(
            samples, bufsize=max(1, self.shuffle_buffer), initial=max(1, self.shuffle_buffer // 2), rng=rng
        )
        # frames are decoded straight into the batch's array (no per-window stack, no collate copy);
        # with augmentation each window is decoded into its own array first and augmented into the batch
        out_size = (self.augment.size or self.size) if self.augment is not None else self.size
        shape = (self.batch_size, self.window, out_size, out_size, 3)
        frames = np.empty(shape, np.uint8)
        window = np.empty((self.window, self.size, self.size, 3), np.uint8) if self.augment is not None else None
        ids: list[str] = []
        starts: list[int] = []
        flows: list[dict[str, torch.Tensor]] = []
        for sample in samples:
            slot = frames[len(ids)] if window is None else window
            try:
                names = frame_members(sample, self.clip_len)
                meta = clip_meta(sample)
                offset = rng.randint(0, self.clip_len - self.window)
                for k, name in enumerate(names[offset : offset + self.window]):
                    decode_frame(sample, name, self.size, out=slot[k])
                if window is not None:
                    frames[len(ids)] = self.augment(window, rng)
            except ValueError as exc:
                CORRUPT(exc)
                continue
            if self.flows:  # after the augmentation: the flows of the frames the model sees
                flows.append(window_flows(frames[len(ids)], first=self.flows_first))
            good[0] += 1
            ids.append(meta["video_id"])
            starts.append(int(meta["start"]) + offset)
            if len(ids) == self.batch_size:
                batch = {
                    "frames": torch.from_numpy(frames),
                    "video_id": ids,
                    "start": torch.tensor(starts, dtype=torch.int64),
                }
                batch.update({k: torch.stack([f[k] for f in flows]) for k in (flows[0] if flows else ())})
                yield batch
                frames, ids, starts, flows = np.empty(shape, np.uint8), [], [], []


class TrainLoader:
    """Iterable over epochs of exactly ``steps_per_epoch`` batches; each new iteration is a new epoch
    (fresh, deterministic randomness from ``seed`` and the epoch number)."""

    def __init__(self, stream: _TrainStream, steps_per_epoch: int, num_workers: int):
        self.stream, self.steps_per_epoch = stream, steps_per_epoch
        # with_epoch on the *loader*: on the dataset it would be multiplied by the worker count
        self.loader = wds.WebLoader(
            stream, batch_size=None, num_workers=num_workers, persistent_workers=False
        ).with_epoch(steps_per_epoch)
        self.epoch = -1

    def set_epoch(self, epoch: int) -> None:
        """The next iteration runs this epoch (e.g. after resuming from a checkpoint)."""
        self.epoch = epoch - 1

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.epoch += 1
        self.stream.epoch = self.epoch  # copied into the workers when the DataLoader starts them
        return iter(self.loader)


def _clip_ordinals(shards: ShardSet, split: str) -> dict[str, int]:
    ordinals, i = {}, 0
    for video in shards.videos(split):
        for c in range(int(video["clips"])):
            ordinals[f"{video['id']}_clip{c:05d}"] = i
            i += 1
    return ordinals


def train_loader(
    shards: ShardSet | str | Path,
    split: str = "train",
    window: int = 1,
    batch_size: int = 8,
    steps_per_epoch: int = 100,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    seed: int = 0,
    shuffle_buffer: int = 64,
    augment: Augment | None = None,
    flows: bool = False,
    flows_first: bool = False,
) -> TrainLoader:
    """Batches ``{"frames": uint8 (B, window, H, W, 3), "video_id": [str], "start": int64 (B,)}``,
    exactly ``steps_per_epoch`` per epoch on every rank; ``augment`` (`data_shards.augment`) is
    applied to every window (H = W = its size then). With ``flows`` (window >= 2) also "flow"
    float32 (B, window-1, 2, h, w) and "valid" bool (B, window-1, h, w), h = ceil(H / 4): frame
    t's flow to frame t-1 and its matched pixels (`data_shards.flows.window_flows`); with
    ``flows_first`` too "flow_first" and "valid_first", to the window's first frame."""
    shards = _as_shardset(shards)
    _check_window(window, shards.clip_len)
    if (flows or flows_first) and window < 2:
        raise VidcolorError(f"flows: need windows of 2 frames or more, got window {window}")
    if batch_size < 1 or steps_per_epoch < 1:
        raise VidcolorError(f"batch_size {batch_size} and steps_per_epoch {steps_per_epoch} must be at least 1")
    if not 0 <= rank < world_size:
        raise VidcolorError(f"rank {rank} outside world_size {world_size}")
    stream = _TrainStream(
        shards,
        split,
        window=window,
        batch_size=batch_size,
        rank=rank,
        world_size=world_size,
        seed=seed,
        shuffle_buffer=shuffle_buffer,
        augment=augment,
        flows=flows or flows_first,
        flows_first=flows_first,
    )
    if not stream.urls:
        raise VidcolorError(f"{shards.location}: split {split!r} has no shards")
    return TrainLoader(stream, steps_per_epoch, num_workers)


# ----------------------------------------------------------------------------- evaluation


def deal_videos(windows: dict[str, int], world_size: int) -> list[list[str]]:
    """Whole videos to ranks, largest first to the least-loaded rank (deterministic)."""
    load = [0] * world_size
    ranks: list[list[str]] = [[] for _ in range(world_size)]
    for vid in sorted(windows, key=lambda v: (-windows[v], v)):
        r = min(range(world_size), key=lambda i: (load[i], i))
        ranks[r].append(vid)
        load[r] += windows[vid]
    return ranks


class EvalLoader:
    """One ordered pass over a split; ``len()`` batches on every rank (see `eval_loader`)."""

    def __init__(self, shards: ShardSet, split: str, window: int, batch_size: int, rank: int, world_size: int):
        _check_window(window, shards.clip_len)
        if batch_size < 1:
            raise VidcolorError(f"batch_size {batch_size} must be at least 1")
        if not 0 <= rank < world_size:
            raise VidcolorError(f"rank {rank} outside world_size {world_size}")
        self.shards, self.split, self.window, self.batch_size = shards, split, window, batch_size
        videos = shards.videos(split)
        windows = {v["id"]: int(v["frames"]) // window for v in videos}
        dealt = deal_videos(windows, world_size)
        self.num_batches = max((math.ceil(sum(windows[v] for v in ids) / batch_size) for ids in dealt), default=0)
        mine = set(dealt[rank])
        self.video_ids = [v["id"] for v in videos if v["id"] in mine]  # manifest (= shard) order
        names = shards.manifest["splits"][split]["shards"]
        if any("shards" not in v for v in videos if v["id"] in mine):
            needed = set(names)  # an older manifest without per-video shards: read them all
        else:
            needed = {name for v in videos if v["id"] in mine for name in v["shards"]}
        self.names = [n for n in names if n in needed]
        self.urls = [shards.url(n) for n in self.names]
        self.expected_windows = sum(windows[v] for v in mine)  # this rank's, when the data is whole
        self.windows_read = 0
        # after a full pass: what fell short of the manifest (see `_check`); empty when all is there
        self.shortfalls: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return self.num_batches

    def _windows(self) -> Iterator[tuple[np.ndarray, str, int]]:
        mine = set(self.video_ids)
        size, window, clip_len = self.shards.size, self.window, self.shards.clip_len
        current, next_pos = None, 0
        buf: list[np.ndarray] = []
        buf_start = 0
        tally = integrity.ShardTally(self.shards, self.names)
        self.windows_read, self.shortfalls = 0, []
        for sample in tally.stream(self.urls, warn=False):
            try:
                meta = clip_meta(sample)
                if meta["video_id"] not in mine:
                    continue
                names = frame_members(sample, clip_len)
                start = int(meta["start"])
                if meta["video_id"] != current:
                    current, next_pos, buf = meta["video_id"], 0, []
                first = max(next_pos, start)  # the last clip of a video overlaps the one before
                new = [decode_frame(sample, names[p - start], size) for p in range(first, start + clip_len)]
            except ValueError as exc:
                CORRUPT(exc)
                tally.failed(sample)
                continue
            if first != next_pos:  # a clip went missing: restart windows after the gap
                buf = []
            if not buf:
                buf_start = first
            buf.extend(new)
            next_pos = start + clip_len
            while len(buf) >= window:
                self.windows_read += 1
                yield stack_frames(buf[:window]), current, buf_start
                buf, buf_start = buf[window:], buf_start + window
        self._check(tally)

    def _check(self, tally: integrity.ShardTally) -> None:
        """After a full pass: each shard short of its manifest count, and the split's windows short
        of `expected_windows`, go to `shortfalls` and are logged as warnings naming them."""
        shortfalls = tally.shortfalls()
        if self.windows_read < self.expected_windows:
            got, want, w = self.windows_read, self.expected_windows, self.window
            shortfalls.append(
                {
                    "shard": None,
                    "expected": want,
                    "read": got,
                    "unreadable": 0,
                    "message": (
                        f"{self.shards.location} split {self.split!r}: {got} of the {want} windows of {w} frame(s) the "
                        f"manifest promises were read ({got * w} of {want * w} frames); results are incomplete"
                    ),
                }
            )
        for item in shortfalls:
            log.warning("%s", item["message"])
        self.shortfalls = shortfalls

    def __iter__(self) -> Iterator[dict[str, Any]]:
        size, b = self.shards.size, self.batch_size
        pad = (np.zeros((self.window, size, size, 3), np.uint8), "", -1)
        items: list[tuple[np.ndarray, str, int]] = []
        emitted = 0

        def batch(items: list, n_valid: int) -> dict[str, Any]:
            out = collate(items + [pad] * (b - len(items)))
            out["valid"] = torch.arange(b) < n_valid
            return out

        for item in self._windows():
            if emitted == self.num_batches:
                log.warning("more windows than the manifest promises; extra windows dropped")
                break
            items.append(item)
            if len(items) == b:
                yield batch(items, b)
                emitted, items = emitted + 1, []
        if items and emitted < self.num_batches:
            yield batch(items, len(items))
            emitted += 1
        while emitted < self.num_batches:  # padding keeps every rank in step
            yield batch([], 0)
            emitted += 1


def eval_loader(
    shards: ShardSet | str | Path,
    split: str = "val",
    window: int = 1,
    batch_size: int = 8,
    rank: int = 0,
    world_size: int = 1,
) -> EvalLoader:
    """Ordered batches ``{"frames", "video_id", "start", "valid": bool (B,)}``; same count on every rank."""
    return EvalLoader(_as_shardset(shards), split, window, batch_size, rank, world_size)
