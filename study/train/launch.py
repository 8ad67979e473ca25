"""Launching one training run on Ray Train: ``vidcolor train``, the seed experiments and Tune trials.

``make_trainer`` builds the ``TorchTrainer`` of one configuration (its Train run named so that a
second trainer with the same name resumes from the run's latest checkpoint); ``run_training``
fits it and leaves the best checkpoint at ``OUT/best/``; ``check_run_folder`` checks ``OUT`` before
any work (an earlier run there is continued with ``--resume`` or deleted with ``--overwrite``,
else refused). ``check_training_splits`` refuses, before
Ray starts, a shard set without the splits a run reads (``train``, and ``val_split``, which
validation reads after every epoch: without it the loop would fail only after a whole epoch).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_shards import outdir
from models.errors import VidcolorError
from study.train.loop import ERROR_KEY, TRAIN_STATE_FILE, TrainingError, train_loop

RUN_NAME = "train"  # the Train run in OUT/ray/: a second trainer of this name continues it
RUN_HOLDS = ("ray", "best")  # what a run folder of `run_training` holds
HISTORY_FILE = "metrics.jsonl"  # --workers 0: each epoch's metrics, one JSON object per line


@dataclass(frozen=True)
class Placement:
    """Where a run's Ray Train workers go: how many, and what each one reserves."""

    workers: int = 1
    """DDP workers; 0 runs the loop in the calling process (Ray Train's local mode, for tests)."""
    cpus_per_worker: float = 1.0
    use_gpu: bool = False
    """One GPU per worker (bf16 autocast in the loop)."""

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise VidcolorError(f"--workers: must be an integer >= 0, got {self.workers!r}")
        if not self.cpus_per_worker > 0:
            raise VidcolorError(f"cpus_per_worker: must be > 0, got {self.cpus_per_worker!r}")


def make_trainer(
    experiment,
    train,
    shards: str,
    placement: Placement = Placement(),
    *,
    storage_path: str | None = None,
    name: str = "train",
    max_failures: int = 0,
    callbacks: list | None = None,
    history_file: str | None = None,
    media: dict | None = None,
):
    """A ``TorchTrainer`` for one configuration. The Train run is named ``name`` under
    ``storage_path``: a second trainer with the same name resumes from that run's latest checkpoint.
    ``history_file``: rank 0 appends each epoch's metrics there (JSON lines; for local mode, whose
    result has no metrics history). ``media``: sample frames every k-th epoch
    (`study.media.samples.EpochMedia`'s config), or None."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    workers = placement.workers
    resources = {"CPU": placement.cpus_per_worker}
    if placement.use_gpu:
        resources["GPU"] = 1
    scaling = ScalingConfig(
        num_workers=workers, use_gpu=placement.use_gpu, resources_per_worker=resources if workers > 0 else None
    )
    run_config = RunConfig(
        name=name,
        storage_path=None if storage_path is None else str(storage_path),
        failure_config=FailureConfig(max_failures=max_failures),
        checkpoint_config=CheckpointConfig(
            num_to_keep=1, checkpoint_score_attribute=train.metric, checkpoint_score_order=train.mode
        ),
        callbacks=callbacks or None,
    )
    loop_config = {
        "experiment": experiment.to_dict(),
        "train": train.to_dict(),
        "shards": str(shards),
        "local_mode": workers == 0,
        "history_file": history_file,
        "media": media,
    }
    return TorchTrainer(train_loop, train_loop_config=loop_config, scaling_config=scaling, run_config=run_config)


def raise_for_error(result) -> None:
    """Turn a deterministic failure returned by the workers into a TrainingError."""
    value = getattr(result, "return_value", None)
    if isinstance(value, dict) and value.get(ERROR_KEY):
        raise TrainingError(value[ERROR_KEY])


def best_checkpoint_path(result, metric: str, mode: str) -> str | None:
    """The folder of the best checkpoint of a finished Train run (local path or URI)."""
    best = None
    for ckpt, metrics in getattr(result, "best_checkpoints", None) or []:
        value = metrics.get(metric)
        if value is None or not math.isfinite(float(value)):
            continue
        if best is None or (value < best[1] if mode == "min" else value > best[1]):
            best = (ckpt, value)
    if best is not None:
        return best[0].path
    return result.checkpoint.path if result.checkpoint is not None else None


def check_training_splits(shard_set, train, name: str | None = None) -> None:
    """Refuse a shard set (a `data_shards.reader.ShardSet`; called ``name`` in the message, default
    its location) that has no ``train`` split or no ``train.val_split`` (a split without shards
    counts as missing)."""
    splits = shard_set.manifest["splits"]
    have = [s for s, v in splits.items() if v.get("shards")]
    where = name or shard_set.location
    make = "make one with vidcolor shard --split ... or --split-file"
    if "train" not in have:
        raise VidcolorError(f"{where}: no 'train' split (it has: {', '.join(have) or 'none'}); {make}")
    if train.val_split not in have:
        raise VidcolorError(
            f"{where}: no {train.val_split!r} split for validation, which runs after every epoch "
            f"(it has: {', '.join(have)}); {make}, or validate on another split with "
            "--set val_split=NAME"
        )


EPOCH_MEDIA_DIR = "samples/epochs"  # under a `vidcolor train` run folder: frames every --media-every epochs


def run_training(
    experiment,
    train,
    shards: str,
    out: str | Path,
    *,
    workers: int = 1,
    use_gpu: bool = False,
    address: str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    media_every: int = 0,
) -> dict[str, Any]:
    """Train one configuration on Ray; leaves the best checkpoint at ``OUT/best/``. With
    ``media_every``, one validation clip's frames every that many epochs at ``OUT/samples/epochs``
    (`study.media.samples.EpochMedia`). ``OUT`` is
    checked first (`check_run_folder`: an earlier run there is refused unless ``resume``, which
    continues it, or ``overwrite``, which deletes it once the shard set has been checked too).

    Returns ``{"best": path, "metrics": best metrics, "last": last metrics, "history": every epoch's
    metrics, "run": Train run path}``."""
    from data_shards.reader import ShardSet
    from study.ray_runtime import init_ray

    placement = Placement(workers=workers, use_gpu=use_gpu)
    out = check_run_folder(out, overwrite=overwrite, resume=resume)
    shard_set = ShardSet(shards)  # a clear error before Ray starts
    check_training_splits(shard_set, train, str(shards))
    shards = shard_set.location  # local paths made absolute
    experiment = absolute_pretrained(experiment)
    if resume:
        out.mkdir(parents=True, exist_ok=True)
    else:  # a Train run records absolute paths: it is written in place, never beside and moved
        outdir.empty_folder(out)
    if workers > 0:
        init_ray(address)
    history_file = out / HISTORY_FILE if workers == 0 else None  # in this process: a local path
    trainer = make_trainer(
        experiment,
        train,
        shards,
        placement,
        storage_path=str(out / "ray"),
        name=RUN_NAME,
        history_file=None if history_file is None else str(history_file),
        media={"dir": str(out / EPOCH_MEDIA_DIR), "every": media_every, "clips": 1} if media_every > 0 else None,
    )
    result = trainer.fit()
    raise_for_error(result)
    path = best_checkpoint_path(result, train.metric, train.mode)
    if path is None:
        raise VidcolorError(f"training in {out} reported no checkpoint")
    best_dir = _publish_best(path, out)
    if workers == 0 and "://" not in path:  # local mode: the loop's temporary folder, now copied
        shutil.rmtree(path, ignore_errors=True)
    best_metrics = next(
        (dict(m) for ckpt, m in getattr(result, "best_checkpoints", None) or [] if ckpt.path == path), {}
    )
    if not best_metrics:
        state = json.loads((best_dir / TRAIN_STATE_FILE).read_text())
        best_metrics = {"epoch": state["epoch"], train.metric: state.get("best")}
    return {
        "best": str(best_dir),
        "metrics": best_metrics,
        "last": dict(result.metrics or {}),
        "history": _history(result, history_file),
        "run": str(result.path) if result.path else None,
    }


def _history(result, history_file: Path | None) -> list[dict[str, Any]]:
    """Every epoch's reported metrics, in order: Ray Train's record of them, or in local mode the
    loop's ``history_file`` (a resumed epoch reported again counts once, the later report)."""
    if history_file is not None and history_file.is_file():
        by_epoch: dict[Any, dict[str, Any]] = {}
        for line in history_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                metrics = json.loads(line)
                by_epoch[metrics.get("epoch", len(by_epoch))] = metrics
        return list(by_epoch.values())
    try:
        frame = result.metrics_dataframe
    except Exception:  # a run that wrote no metrics file
        frame = None
    if frame is None or frame.empty:
        return [dict(result.metrics)] if result.metrics else []
    return frame.to_dict("records")


def absolute_pretrained(experiment):
    """The config with a local ``pretrained`` folder as an absolute path (Ray Train's workers run
    in folders of their own), refused here, before Ray starts, when it does not exist."""
    from study.remote import is_uri

    pretrained = experiment.pretrained
    if not pretrained or is_uri(pretrained):
        return experiment
    if not Path(pretrained).is_dir():
        raise VidcolorError(
            f"pretrained: checkpoint folder {pretrained} does not exist (relative paths are taken from {Path.cwd()})"
        )
    return experiment.replace(pretrained=str(Path(pretrained).resolve()))


def check_run_folder(out: str | Path, *, overwrite: bool = False, resume: bool = False) -> Path:
    """The run folder ``--out`` (absolute), or a clear error naming it before any work
    (`data_shards.outdir.check_folder`): a file in its place or on its path, a folder this process
    cannot write, an earlier run without ``overwrite`` or ``resume`` (a folder holding neither
    ``ray/`` nor ``best/`` is never replaced), or ``resume`` with no run to continue."""
    if overwrite and resume:
        raise VidcolorError("--overwrite and --resume: choose one (replace the run in --out, or continue it)")
    if not resume:
        return outdir.check_folder(out, "--out", overwrite, holds=RUN_HOLDS, what="run")
    out = outdir.check_place(out, "--out", folder=True)
    if not (out / "ray" / RUN_NAME).is_dir():
        raise VidcolorError(
            f"--resume: {out} holds no run to continue (no {Path('ray', RUN_NAME)}); leave --resume out to start one"
        )
    return out


def _publish_best(path: str, out: Path) -> Path:
    """Copy the best checkpoint to ``OUT/best/``, replacing an older one only once the copy is whole."""
    best_dir = out / "best"
    tmp = out / ".best.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(path, tmp)
    shutil.rmtree(best_dir, ignore_errors=True)
    tmp.rename(best_dir)
    return best_dir
