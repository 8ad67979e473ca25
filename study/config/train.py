"""The training loop's settings of one run (the model's settings are ``ExperimentConfig``'s)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from models.fields import TypedConfig, field_error


SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig(TypedConfig):
    """Settings of the training loop of one run; validated on construction (an error names the field)."""

    KIND: ClassVar[str] = "training setting"

    lr: float = 3e-3
    """Adam learning rate (the peak of the schedule)."""
    schedule: str = "cosine"
    """Learning-rate schedule over all epochs x steps_per_epoch steps: ``constant``, or ``cosine``
    (decay to ``lr * min_lr_ratio`` along a half cosine); either after ``warmup``."""
    warmup: float = 0.05
    """Fraction of all steps over which the learning rate ramps up linearly from lr/100."""
    min_lr_ratio: float = 0.05
    """The cosine schedule's final learning rate, as a fraction of ``lr``."""
    weight_decay: float = 0.0
    """Adam weight decay (L2)."""
    epochs: int = 2
    """Epochs; each ends with a validation pass, a report and a checkpoint."""
    steps_per_epoch: int = 20
    """Optimizer steps per epoch, the same on every rank (shards are streamed, resampled)."""
    batch_size: int = 8
    """Windows per step on each rank."""
    val_batches: int = 0
    """Validation batches per rank and epoch; 0 = the whole validation split."""
    val_batch_size: int = 8
    """Windows per validation batch."""
    val_split: str = "val"
    """Split that validation reads."""
    grad_clip: float = 0.0
    """Clip the gradient norm to this value; 0 = no clipping."""
    ema: float = 0.995
    """Decay of an exponential moving average of the weights, updated after every step
    (``torch.optim.swa_utils``) and warmed up over the first steps (``study.train.optim_state.ema_decay``);
    validation, checkpoints and inference use the average. 0 = off."""
    amp: bool = True
    """bf16 autocast when training on a GPU (ignored on CPU)."""
    seed: int = 0
    """Seed of the model's initialisation and of the loader's shuffling."""
    loader_workers: int = 0
    """DataLoader worker processes per rank."""
    shuffle_buffer: int = 64
    """Shuffle buffer of the shard reader (clips, before decoding)."""
    flip: bool = True
    """Augmentation: flip each training window horizontally with probability 1/2."""
    crop_scale: float = 0.7
    """Augmentation: crop each training window to a random square of side U(crop_scale, 1) x the
    stored side, resized to ``train_size``; 1 = no crop."""
    train_size: int = 0
    """Side of the training frames after augmentation; 0 = the shard set's size. Validation and
    inference use whole frames."""
    metric: str = "val_rmse_ratio"
    """Validation metric that picks the best checkpoint. The default, each validation video's RMSE
    over its gray (ab = 0) RMSE averaged over videos, weighs every video alike: with plain RMSE one
    very saturated video (an aquarium: gray RMSE 74 against 10 to 28 for the rest of the real
    validation split) decides which epoch is kept."""
    mode: str = "min"
    """``min`` or ``max`` for ``metric``."""

    def validate(self) -> None:
        """Ranges of the fields (their types are checked by TypedConfig)."""
        for name in ("lr", "epochs", "steps_per_epoch", "batch_size", "val_batch_size", "shuffle_buffer"):
            if not getattr(self, name) > 0:
                raise field_error(name, "must be > 0", getattr(self, name))
        for name in ("weight_decay", "val_batches", "grad_clip", "loader_workers"):
            if not getattr(self, name) >= 0:
                raise field_error(name, "must be >= 0", getattr(self, name))
        for name in ("lr", "weight_decay", "grad_clip"):
            if not math.isfinite(getattr(self, name)):
                raise field_error(name, "must be finite", getattr(self, name))
        if self.schedule not in SCHEDULES:
            raise field_error("schedule", f"must be one of {', '.join(SCHEDULES)}", self.schedule)
        if not 0.0 <= self.ema < 1.0:
            raise field_error("ema", "must be in [0, 1) (0 = no weight average)", self.ema)
        if not 0.0 <= self.warmup < 1.0:
            raise field_error("warmup", "must be in [0, 1)", self.warmup)
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise field_error("min_lr_ratio", "must be in [0, 1]", self.min_lr_ratio)
        if not 0.0 < self.crop_scale <= 1.0:
            raise field_error("crop_scale", "must be in (0, 1]", self.crop_scale)
        if self.train_size != 0 and not 8 <= self.train_size <= 4096:
            raise field_error("train_size", "must be 0 (the shard set's size) or in [8, 4096]", self.train_size)
        if self.mode not in ("min", "max"):
            raise field_error("mode", "must be 'min' or 'max'", self.mode)
        if not self.metric:
            raise field_error("metric", "must not be empty", self.metric)
        if not self.val_split:
            raise field_error("val_split", "must not be empty", self.val_split)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def lr_at(self, step: int) -> float:
        """The learning rate of optimizer step ``step`` (0-based, counted over all epochs): a linear
        warm-up from lr/100 over the first ``warmup`` fraction of the steps, then ``lr`` (constant)
        or a half cosine from ``lr`` to ``lr * min_lr_ratio`` at the last step (cosine). A pure
        function of the step, so a resumed run continues the same curve."""
        total = self.total_steps
        warm = int(round(self.warmup * total))
        if step < warm:
            return self.lr * (0.01 + 0.99 * (step + 1) / warm)
        if self.schedule == "constant":
            return self.lr
        progress = (step - warm) / max(1, total - warm - 1)
        low = self.lr * self.min_lr_ratio
        return low + (self.lr - low) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
