"""The training loop's settings of one run (the model's settings are ``ExperimentConfig``'s).

A frozen pydantic model (``models.config.Config``): types, ranges and choices are checked on
construction, and an error names the field, what is allowed and the value."""

from __future__ import annotations

import math
from typing import ClassVar, Literal, get_args

from pydantic import Field, field_validator

from models.config import Config

Schedule = Literal["constant", "cosine"]
SCHEDULES = get_args(Schedule)


class TrainConfig(Config):
    """Settings of the training loop of one run; validated on construction (an error names the field)."""

    KIND: ClassVar[str] = "training setting"

    lr: float = Field(3e-3, gt=0.0, allow_inf_nan=False)
    """Adam learning rate (the peak of the schedule)."""
    schedule: Schedule = "cosine"
    """Learning-rate schedule over all epochs x steps_per_epoch steps: ``constant``, or ``cosine``
    (decay to ``lr * min_lr_ratio`` along a half cosine); either after ``warmup``."""
    warmup: float = Field(0.05, ge=0.0, lt=1.0)
    """Fraction of all steps over which the learning rate ramps up linearly from lr/100."""
    min_lr_ratio: float = Field(0.05, ge=0.0, le=1.0)
    """The cosine schedule's final learning rate, as a fraction of ``lr``."""
    weight_decay: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    """Adam weight decay (L2)."""
    epochs: int = Field(2, gt=0)
    """Epochs; each ends with a validation pass, a report and a checkpoint."""
    steps_per_epoch: int = Field(20, gt=0)
    """Optimizer steps per epoch, the same on every rank (shards are streamed, resampled)."""
    batch_size: int = Field(8, gt=0)
    """Windows per step on each rank."""
    val_batches: int = Field(0, ge=0)
    """Validation batches per rank and epoch; 0 = the whole validation split."""
    val_batch_size: int = Field(8, gt=0)
    """Clips per validation batch: validation reads whole clips (the shard set's clip_len frames)
    whatever the model's window, so every trial is scored on the same frames."""
    val_split: str = Field("val", min_length=1)
    """Split that validation reads."""
    grad_clip: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    """Clip the gradient norm to this value; 0 = no clipping."""
    ema: float = Field(0.995, ge=0.0, lt=1.0)
    """Decay of an exponential moving average of the weights, updated after every step
    (``torch.optim.swa_utils``) and warmed up over the first steps (``study.train.optim_state.ema_decay``);
    validation, checkpoints and inference use the average. 0 = off."""
    amp: bool = True
    """bf16 autocast when training on a GPU (ignored on CPU)."""
    seed: int = 0
    """Seed of the model's initialisation and of the loader's shuffling."""
    loader_workers: int = Field(0, ge=0)
    """DataLoader worker processes per rank."""
    shuffle_buffer: int = Field(64, gt=0)
    """Shuffle buffer of the shard reader (clips, before decoding)."""
    flip: bool = True
    """Augmentation: flip each training window horizontally with probability 1/2."""
    crop_scale: float = Field(0.7, gt=0.0, le=1.0)
    """Augmentation: crop each training window to a random square of side U(crop_scale, 1) x the
    stored side, resized to ``train_size``; 1 = no crop."""
    train_size: int = 0
    """Side of the training frames after augmentation; 0 = the shard set's size. Validation and
    inference use whole frames."""
    metric: str = Field("val_rmse_ratio", min_length=1)
    """Validation metric that picks the best checkpoint. The default, each validation video's RMSE
    over its gray (ab = 0) RMSE averaged over videos, weighs every video alike: with plain RMSE one
    very saturated video (an aquarium: gray RMSE 74 against 10 to 28 for the rest of the real
    validation split) decides which epoch is kept."""
    mode: Literal["min", "max"] = "min"
    """``min`` or ``max`` for ``metric``."""

    @field_validator("train_size")
    @classmethod
    def _check_train_size(cls, size: int) -> int:
        if size != 0 and not 8 <= size <= 4096:
            raise ValueError("must be 0 (the shard set's size) or in [8, 4096]")
        return size

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
