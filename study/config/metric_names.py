"""The names of the metrics a training run reports: what a study's ``[objective]`` may name.

They live in the config layer, below the code that computes them (`study.evaluation.metrics`
scores the videos, `study.train.loop` reports every epoch), so the study spec can check an
objective without importing either.
"""

from __future__ import annotations

#: metric -> the direction that is better ("min"/"max"); colorfulness_ratio is best at 1 (rank on
#: colorfulness_gap = |ratio - 1| instead), added_warp / added_cdc (the flicker the color adds to the
#: gray input's own) at 0 or below.
#: Each epoch reports ``val_<name>`` for every one of them (`study.evaluation.metrics.VideoMetrics`).
METRICS = {
    "rmse_rgb": "min",
    "rmse_ab": "min",
    "psnr": "max",
    "colorfulness_pred": "max",
    "colorfulness_gt": "max",
    "colorfulness_ratio": "max",
    "colorfulness_gap": "min",
    "temporal_error": "min",
    "ssim": "max",
    "cdc": "min",
    "warp_error": "min",
    "rmse_ratio": "min",
    "added_warp": "min",
    "added_cdc": "min",
}

#: What every epoch's report holds besides ``val_<name>`` for each of `METRICS` (and ``epoch``,
#: ``best_<metric>``): the training loop's losses, times and sizes (`study.train.loop`).
LOOP_METRICS = (
    "train_loss",
    "l_cl",
    "l_seq",
    "train_s",
    "val_frames",
    "val_gray_rmse_rgb",
    "epoch_s",
    "l_temp",
    "lr",
    "world_size",
)
