"""Where the training loop reports and resumes: Ray Train's session, or a Tune trial's own process.

`TrainSession` is a ``TorchTrainer`` worker's (``vidcolor train``, the experiments, multi-worker
or GPU trials): ``ray.train.report`` with a checkpoint, which Ray Train copies to the run's storage
and ranks, and ``ray.train.get_checkpoint`` to resume.

`TrialSession` runs the loop in the Tune trial's own process, with no TorchTrainer, controller or
worker group to start (a single-worker CPU trial: most of a short trial's wall time was Ray Train
starting and stopping). It keeps its checkpoints where a Train run of the trial would,
``{train_storage}/train-{trial}/``, local or a URI: each epoch's is copied there as
``checkpoint_epochNNNN`` (its loop state last, so a copy cut short is no checkpoint) and its path
reported to Tune as ``checkpoint_path`` (what Ray Train's ``TuneReportCallback`` reports); the
best epoch's and the latest are kept, older ones removed. A restarted trial (a Tune retry, a
resumed study) continues from the latest; a deterministic failure is marked there too, so a retry
fails at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TRAIN_STATE_FILE = "train_state.json"
CHECKPOINT_PATH_KEY = "checkpoint_path"  # the key Ray Train's TuneReportCallback uses
ERROR_MARK = "vidcolor_error.txt"  # a deterministic failure of the run: a retry fails at once


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
        self.resumed_from: str | None = None  # the checkpoint `latest` gave, reported with "resumed"

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

    def _path(self, name: str) -> str:
        """What is reported: the URI under a remote storage, else the local path."""
        return (
            self._uri(name)
            if "://" in self.run_dir and not self.run_dir.startswith("file://")
            else f"{self._fs()[1]}/{name}"
        )

    def _read(self, path: str) -> str | None:
        remote, _ = self._fs()
        try:
            with remote.open_input_stream(path) as stream:
                return stream.read().decode()
        except (FileNotFoundError, OSError):
            return None

    def _states(self) -> dict[str, dict[str, Any]]:
        """The complete checkpoints under run_dir (their loop state written, which is copied last)
        by name, oldest epoch first, with that state. A Train run's ``checkpoint_<time>`` folders
        (a study started before trials trained in their own process) count too."""
        from pyarrow import fs

        remote, root = self._fs()
        found = []
        for info in remote.get_file_info(fs.FileSelector(root, allow_not_found=True)):
            if info.type != fs.FileType.Directory or not info.base_name.startswith("checkpoint_"):
                continue
            text = self._read(f"{root}/{info.base_name}/{TRAIN_STATE_FILE}")
            try:
                state = json.loads(text) if text else None
            except json.JSONDecodeError:
                state = None
            if isinstance(state, dict) and isinstance(state.get("epoch"), int):
                found.append((state["epoch"], info.base_name, state))
        return {name: state for _, name, state in sorted(found)}

    def _delete(self, path: str) -> None:
        from pyarrow import fs

        remote, _ = self._fs()
        if remote.get_file_info(path).type != fs.FileType.NotFound:
            remote.delete_dir(path)

    def _copy(self, folder: str, target: str) -> None:
        """Copy a local checkpoint folder to ``target``, its loop state last: a copy cut short has
        none and is not a checkpoint (`_states`); the next report removes it."""
        from pyarrow import fs

        remote, _ = self._fs()
        local = fs.LocalFileSystem()
        self._delete(target)  # a rerun of this epoch (after a retry) replaces it
        remote.create_dir(target, recursive=True)
        files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
        for path in sorted(files, key=lambda p: p.name == TRAIN_STATE_FILE):
            dest = f"{target}/{path.relative_to(folder).as_posix()}"
            if path.parent != Path(folder):
                remote.create_dir(dest.rsplit("/", 1)[0], recursive=True)
            fs.copy_files(str(path), dest, source_filesystem=local, destination_filesystem=remote)

    # -- the session ---------------------------------------------------------------------------

    def report(self, metrics: Mapping[str, Any], folder: str | None, improved: bool = False) -> None:
        """Copy ``folder`` (the epoch's checkpoint) to run_dir, then report to Tune with its path.
        The report after a resume carries the path of the checkpoint it resumed from."""
        from pyarrow import fs
        from ray import tune

        out = dict(metrics)
        if folder is not None:
            name = f"checkpoint_epoch{int(metrics['epoch']):04d}"
            remote, root = self._fs()
            self._copy(folder, f"{root}/{name}")
            if improved or self.best is None:
                self.best = name
            keep = {name, self.best}
            for info in remote.get_file_info(fs.FileSelector(root, allow_not_found=True)):
                if info.type == fs.FileType.Directory and info.base_name.startswith("checkpoint_"):
                    if info.base_name not in keep:  # older ones, and copies cut short
                        with contextlib.suppress(OSError):
                            remote.delete_dir(info.path)
            out[CHECKPOINT_PATH_KEY] = self._path(name)
        elif metrics.get("resumed") and self.resumed_from:
            out[CHECKPOINT_PATH_KEY] = self._path(self.resumed_from)
        tune.report(out)

    @contextlib.contextmanager
    def latest(self) -> Iterator[Path | None]:
        """The latest complete checkpoint under run_dir as a local folder (a URI's fetched to a
        temporary copy), or None. The best one so far stays kept."""
        states = self._states()
        if not states:
            yield None
            return
        latest = list(states)[-1]
        best, metric = states[latest].get("best"), states[latest].get("metric")
        self.best = next(
            (n for n in reversed(states) if best is not None and (states[n].get("metrics") or {}).get(metric) == best),
            latest,
        )
        self.resumed_from = latest
        from study.remote import local_checkpoint

        with local_checkpoint(self._uri(latest)) as folder:
            yield folder

    # -- a deterministic failure, kept where a retry of the trial finds it ----------------------

    def failed(self) -> str | None:
        """The message of a deterministic failure marked in run_dir, if any."""
        return self._read(f"{self._fs()[1]}/{ERROR_MARK}")

    def mark_failed(self, message: str) -> None:
        remote, root = self._fs()
        remote.create_dir(root, recursive=True)
        with remote.open_output_stream(f"{root}/{ERROR_MARK}") as stream:
            stream.write(message.encode())
