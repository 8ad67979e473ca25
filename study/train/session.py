"""Where the training loop reports and resumes: Ray Train's session, or a Tune trial's own process.

`TrainSession` is a ``TorchTrainer`` worker's (``vidcolor train``, the experiments, multi-worker
or GPU trials): ``ray.train.report`` with a checkpoint, which Ray Train copies to the run's storage
and ranks, and ``ray.train.get_checkpoint`` to resume.

`TrialSession` runs the loop in the Tune trial's own process, with no TorchTrainer, controller or
worker group to start (a single-worker CPU trial: most of a short trial's wall time was Ray Train
starting and stopping). It keeps the same layout as a Train run, ``{train_storage}/train-{trial}/``,
local or a URI: each epoch's checkpoint is copied there as ``checkpoint_epochNNNN`` and its path
reported to Tune as ``checkpoint_path`` (what Ray Train's ``TuneReportCallback`` reports); the best
epoch's and the latest are kept, older ones removed. A restarted trial (a Tune retry, a resumed
study) continues from the latest.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TRAIN_STATE_FILE = "train_state.json"
CHECKPOINT_PATH_KEY = "checkpoint_path"  # the key Ray Train's TuneReportCallback uses
_NAME = re.compile(r"^checkpoint_epoch(\d{4,})$")


class TrainSession:
    """A Ray Train worker's session (see the module docstring)."""

    in_trial = False

    def world(self) -> tuple[int, int, int]:
        """(world rank, world size, local rank)."""
        import ray.train

        ctx = ray.train.get_context()
        return ctx.get_world_rank(), ctx.get_world_size(), ctx.get_local_rank()

    def report(self, metrics: Mapping[str, Any], folder: str | None, improved: bool = False) -> None:
        import ray.train
        from ray.train import Checkpoint

        ray.train.report(dict(metrics), checkpoint=None if folder is None else Checkpoint.from_directory(folder))

    @contextlib.contextmanager
    def latest(self) -> Iterator[Path | None]:
        """The checkpoint to resume from, as a local folder (None: start afresh)."""
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            yield None
            return
        with checkpoint.as_directory() as folder:
            yield Path(folder)


class TrialSession:
    """The loop in a Tune trial's process; checkpoints under ``run_dir`` (a folder or a URI)."""

    in_trial = True

    def __init__(self, run_dir: str):
        self.run_dir = run_dir.rstrip("/")
        self.best: str | None = None  # the name of the best epoch's checkpoint, kept

    def world(self) -> tuple[int, int, int]:
        return 0, 1, 0

    # -- storage: a local folder or a pyarrow filesystem (the ones Ray's storage uses) -------------

    def _fs(self):
        from pyarrow import fs

        if "://" not in self.run_dir or self.run_dir.startswith("file://"):
            return fs.LocalFileSystem(), self.run_dir.removeprefix("file://")
        return fs.FileSystem.from_uri(self.run_dir)

    def _uri(self, name: str) -> str:
        return f"{self.run_dir}/{name}"

    def _names(self) -> list[str]:
        """The checkpoints under run_dir, oldest epoch first."""
        from pyarrow import fs

        remote, root = self._fs()
        infos = remote.get_file_info(fs.FileSelector(root, allow_not_found=True))
        found = [
            (int(m.group(1)), i.base_name)
            for i in infos
            if i.type == fs.FileType.Directory and (m := _NAME.match(i.base_name))
        ]
        return [name for _, name in sorted(found)]

    def report(self, metrics: Mapping[str, Any], folder: str | None, improved: bool = False) -> None:
        """Copy ``folder`` (the epoch's checkpoint) to run_dir, then report to Tune with its path."""
        from pyarrow import fs
        from ray import tune

        out = dict(metrics)
        if folder is not None:
            name = f"checkpoint_epoch{int(metrics['epoch']):04d}"
            remote, root = self._fs()
            target = f"{root}/{name}"
            with contextlib.suppress(FileNotFoundError):
                remote.delete_dir(target)  # a rerun of this epoch (after a retry) replaces it
            remote.create_dir(target, recursive=True)
            fs.copy_files(folder, target, source_filesystem=fs.LocalFileSystem(), destination_filesystem=remote)
            if improved or self.best is None:
                self.best = name
            for old in self._names():
                if old not in (name, self.best):
                    with contextlib.suppress(OSError):
                        remote.delete_dir(f"{root}/{old}")
            out[CHECKPOINT_PATH_KEY] = self._uri(name) if "://" in self.run_dir else target
        tune.report(out)

    @contextlib.contextmanager
    def latest(self) -> Iterator[Path | None]:
        """The latest checkpoint under run_dir as a local folder (a URI's fetched to a temporary
        copy), or None. The best one so far stays kept."""
        names = self._names()
        if not names:
            yield None
            return
        latest = names[-1]
        best = _best_of(self, names)
        self.best = best or latest
        from study.remote import local_checkpoint

        with local_checkpoint(self._uri(latest)) as folder:
            yield folder


def _best_of(session: TrialSession, names: list[str]) -> str | None:
    """The checkpoint whose recorded value is the run's best (its loop state says both)."""
    from study.remote import local_checkpoint

    with local_checkpoint(session._uri(names[-1])) as folder:
        state = json.loads((Path(folder) / TRAIN_STATE_FILE).read_text())
    best, metric = state.get("best"), state.get("metric")
    if best is None:
        return None
    for name in reversed(names):
        with local_checkpoint(session._uri(name)) as folder:
            value = (json.loads((Path(folder) / TRAIN_STATE_FILE).read_text()).get("metrics") or {}).get(metric)
        if value == best:
            return name
    return None
