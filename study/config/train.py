"""The training loop's settings of one run (the model's settings are ``ExperimentConfig``'s)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from models.fields import TypedConfig, field_error


@dataclass(frozen=True)
class TrainConfig(TypedConfig):
    """Settings of the training loop of one run; validated on construction (an error names the field)."""

    KIND: ClassVar[str] = "training setting"

    lr: float = 1e-3
    """Adam learning rate."""
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
    amp: bool = True
    """bf16 autocast when training on a GPU (ignored on CPU)."""
    seed: int = 0
    """Seed of the model's initialisation and of the loader's shuffling."""
    loader_workers: int = 0
    """DataLoader worker processes per rank."""
    shuffle_buffer: int = 64
    """Shuffle buffer of the shard reader (clips, before decoding)."""
    metric: str = "val_rmse_rgb"
    """Validation metric that picks the best checkpoint."""
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
        if self.mode not in ("min", "max"):
            raise field_error("mode", "must be 'min' or 'max'", self.mode)
        if not self.metric:
            raise field_error("metric", "must not be empty", self.metric)
        if not self.val_split:
            raise field_error("val_split", "must not be empty", self.val_split)
