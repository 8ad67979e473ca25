"""What one Ray Train worker's epochs share (`Run`): built from the run's configs (`setup_run`), and
restored from Ray's checkpoint when Ray restarts the run (`restore`).

`setup_run` checks the configs and the shard set, derives the bin grid's class-rebalancing weights
from the shard set's ab histogram, builds the model (from a pretrained trunk for exp4 - exp6), the
optimizer and the weight average, and resumes from the session's latest checkpoint (a worker or
node failure, a relaunched trial whose Train run has the same name, a retried trial: see
`study.train.session`). The epochs themselves are `study.train.loop`'s.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.errors import VidcolorError
from study.train.optim_state import ema_avg_fn, load_optimizer, load_train_weights, load_trained_only
from study.train.ranks import RankContext
from study.train.session import TRAIN_STATE_FILE

log = logging.getLogger(__name__)


class TrainingError(VidcolorError):
    """A deterministic failure of the run (NaN loss, bad setting): retrying would not help."""


@dataclass
class Run:
    """What one worker's epochs share, built once by `setup_run`."""

    ctx: RankContext
    experiment: Any  # models.presets.ExperimentConfig
    train: Any  # study.config.train.TrainConfig
    shards: Any  # data_shards.reader.ShardSet
    gamut: Any  # models.gamut.ABGamut
    prior: torch.Tensor
    weights: torch.Tensor | None  # rebalancing weights on the device, None without rebalancing
    model: torch.nn.Module  # the plain model (checkpoints, validation)
    ddp_model: torch.nn.Module  # what the steps call: DDP-wrapped under more than one rank
    optimizer: torch.optim.Optimizer
    local_mode: bool  # Ray Train's local mode: the reported checkpoint folder is kept as is
    start_epoch: int = 0
    best: float | None = None
    gray: Any = None  # the validation split's gray baseline (study.evaluation.metrics.VideoMetrics), once
    local_best: str | None = None  # local mode: the folder of the best checkpoint reported so far
    ema: Any = None  # torch.optim.swa_utils.AveragedModel of `model` when train.ema > 0
    session: Any = None  # study.train.session: where the loop reports and resumes from
    history_file: str | None = None  # local mode: rank 0 appends each epoch's metrics here (JSON lines)
    media: Any = None  # study.media.samples.EpochMedia: sample frames every k-th epoch (rank 0), or None

    @property
    def evaluated(self) -> torch.nn.Module:
        """What validation, checkpoints and inference use: the weight average, or the model."""
        return self.model if self.ema is None else self.ema.module

    def better(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self.train.mode == "min" else value > self.best


def setup_run(config: Mapping[str, Any], ctx: RankContext, session) -> Run:
    from data_shards.reader import ShardSet
    from models.gamut import ABGamut
    from models.losses import loss_weights
    from models.model import check_frame_size, create_model
    from models.presets import ExperimentConfig
    from study.config.train import TrainConfig

    experiment = ExperimentConfig.from_dict(config["experiment"], "training loop config", ("experiment",))
    tc = TrainConfig.from_dict(config["train"], "training loop config", ("train",))
    if experiment.is_ensemble:
        raise TrainingError(f"ensemble: {experiment.name} averages trained models and is not trained itself")
    experiment.check_ready()
    torch.manual_seed(tc.seed)

    shards = ShardSet(config["shards"])
    # checked on every rank before any collective: the checkpoint records it (a failure there,
    # on rank 0 only, would leave the others waiting in ray.train.report)
    check_frame_size(shards.size, f"shard set {shards.location}: size")
    if experiment.window > shards.clip_len:  # the truncation window must fit in a training window (a clip)
        raise TrainingError(
            f"seq_len {experiment.seq_len}: window of seq_len + 1 = {experiment.window} frames is longer than "
            f"the clips of {shards.location} ({shards.clip_len} frames)"
        )
    gamut = ABGamut(experiment.grid)
    prior = gamut.prior_from_histogram(shards.ab_histogram())
    weights = loss_weights(experiment.rebalance, gamut, prior, experiment.gamma)
    model = create_model(experiment, gamut)
    if experiment.pretrained:
        _load_pretrained(model, experiment.pretrained)
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    run = Run(
        ctx,
        experiment,
        tc,
        shards,
        gamut,
        prior,
        None if weights is None else weights.to(ctx.device),
        model,
        model,
        optimizer,
        local_mode=bool(config.get("local_mode")),
        session=session,
        history_file=config.get("history_file"),
    )
    if ctx.rank == 0 and config.get("media"):
        from study.media.samples import EpochMedia

        run.media = EpochMedia.from_config(config["media"])
    if tc.ema > 0:
        from torch.optim.swa_utils import AveragedModel

        run.ema = AveragedModel(model, multi_avg_fn=ema_avg_fn(tc.ema), use_buffers=True)
    _resume(run)
    model.to(ctx.device)
    if run.ema is not None:
        run.ema.to(ctx.device)
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        run.ddp_model = DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    return run


def _load_pretrained(model: torch.nn.Module, folder: str) -> None:
    """Transfer learning (exp4, exp5): the colorizer trunk (and the head and ConvLSTM where they
    fit) from a trained checkpoint (a folder, made absolute by the driver, or a URI), via
    ``models.checkpoint.load_pretrained_trunk``."""
    from models.checkpoint import load_pretrained_trunk
    from study.remote import is_uri, local_checkpoint

    if not is_uri(folder) and not Path(folder).exists():
        raise TrainingError(f"pretrained: checkpoint folder {folder} does not exist")
    with local_checkpoint(folder) as local:  # an s3:// checkpoint is fetched for the load
        info = load_pretrained_trunk(model, local)
    log.info(
        "initialised from %s: %s trunk tensors, head %s, temporal %s",
        folder,
        info.get("trunk"),
        info.get("head"),
        info.get("temporal"),
    )


def _resume(run: Run) -> None:
    """Continue from the session's checkpoint of this run, if it has one."""
    with run.session.latest() as folder:
        if folder is None:
            return
        run.start_epoch, run.best = restore(folder, run.model, run.optimizer, run.ctx.device, run.ema)
        resumed_metrics = json.loads((Path(folder) / TRAIN_STATE_FILE).read_text()).get("metrics")
    log.info("rank %d: resumed after epoch %d", run.ctx.rank, run.start_epoch)
    if resumed_metrics:
        # Report the checkpoint's epoch again (every rank, no checkpoint): if the failure came
        # between saving it and the report reaching Tune, its metrics are not lost; a duplicate
        # is harmless (the store keys epochs by number; ASHA's rungs by epoch).
        run.session.report({**{k: v for k, v in resumed_metrics.items() if v is not None}, "resumed": 1}, None)


def restore(
    folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device, ema=None
) -> tuple[int, float | None]:
    """Load a training checkpoint's weights and optimizer state (and the weight average's, with
    `ema`; without it, the trained weights a checkpoint made with one keeps beside the average);
    returns (epochs done, best value)."""
    from models.checkpoint import load_checkpoint

    loaded = load_checkpoint(folder)
    if ema is None:  # resumed without the average: go on with the trained weights where it kept them
        if not load_trained_only(model, folder):
            model.load_state_dict(loaded.model.state_dict())
    elif not load_train_weights(model, ema, loaded.model, folder):
        # a checkpoint made without the average: both start from its weights
        model.load_state_dict(loaded.model.state_dict())
        ema.module.load_state_dict(loaded.model.state_dict())
    load_optimizer(optimizer, folder, device=device)
    state = json.loads((Path(folder) / TRAIN_STATE_FILE).read_text())
    return int(state["epoch"]), state.get("best")
