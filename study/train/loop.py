"""The Ray Train worker function: train one colorizer configuration, epoch by epoch.

One run trains a colorizer (seed paper "Automatic Colorization of Videos"; Zhang et al. 2016
"Colorful Image Colorization") under Ray Train's ``TorchTrainer``: DDP over the workers, a GPU per
worker when asked (bf16 autocast), CPU otherwise. Each worker

1. sets up (`study.train.run_state.setup_run`): the configs, the shard set, the bin grid with the
   class-rebalancing weights derived from the shard set's ab histogram, the model (from a
   pretrained trunk for exp4/exp5), the optimizer, and the state of ``ray.train.get_checkpoint()``
   when Ray restarts it (worker or node failure, or a relaunched trial whose Train run has the same
   name);
2. trains one epoch (``_train_epoch``): windows of ``train_window`` frames (a whole stored clip for
   the ConvLSTM, its state carried through every frame as at inference and the gradient truncated
   every seq_len + 1 frames; 2 for an image model with the temporal loss; else 1) streamed with its
   rank and world size (the same number of steps on every rank), Lab on the device, ground-truth
   ab at stride 4 (the logits' 1/4 resolution, as Zhang's released code does),
   ``L = lam L_cl + (1 - lam) L_seq + w_t L_temp`` (the loader computes the ground truth's flows
   for L_temp only when w_t > 0);
3. validates, renders sample frames when a study asks for them every k-th epoch (``_epoch_media``,
   rank 0; `study.media.samples.EpochMedia`) and reports (``_validate``, ``_report``): per-video
   metrics merged over ranks, then
   every rank calls ``ray.train.report`` once, rank 0 with a checkpoint (``models.checkpoint``
   safetensors + JSON, which records the frame size; the optimizer state; the loop state in JSON),
   so nothing is ever unpickled.

Deterministic failures (a NaN loss, a bad setting) are caught on every rank together and returned
as rank 0's return value; the launcher (``study.train.launch``) raises them as a ``TrainingError``,
so they fail the run at once instead of being retried like a lost worker.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from models.errors import VidcolorError
from study.train.optim_state import save_optimizer, save_train_weights
from study.train.ranks import all_ranks, mean_over_ranks, rank_context
from study.train.run_state import TRAIN_STATE_FILE, Run, TrainingError, setup_run
from study.train.session import TrainSession

log = logging.getLogger(__name__)

ERROR_KEY = "vidcolor_error"
# What each epoch reports (besides val_<metric> and best_<metric>) is listed in
# study.config.metric_names.LOOP_METRICS, the names a study's objective may use: keep them in step.
TRAIN_PG_KEY = "train_placement_group"  # rank 0 reports the id of the placement group it runs in


def train_loop(config: Mapping[str, Any], session=None) -> dict[str, Any] | None:
    """Ray Train worker function. ``config``: ``experiment`` (ExperimentConfig dict), ``train``
    (TrainConfig dict), ``shards`` (location), ``local_mode`` (bool). ``session``: where it
    reports (`study.train.session`; Ray Train's by default, a `TrialSession` when a Tune trial
    runs the loop in its own process). Returns ``{ERROR_KEY: message}`` on a deterministic failure
    (the same on every rank), else a summary."""
    session = session or TrainSession()
    ctx = rank_context(session)
    try:
        run = setup_run(config, ctx, session)
        return _fit(run)
    except VidcolorError as exc:
        # Raised the same way on every rank (config errors before any collective; NaN decided by
        # all-reduce), so returning keeps the ranks in step and Ray does not retry in vain.
        log.error("rank %d: %s", ctx.rank, exc)
        return {ERROR_KEY: str(exc)}


def _fit(run: Run) -> dict[str, Any]:
    from data_shards.augment import Augment
    from data_shards.reader import train_loader

    tc = run.train
    augment = Augment(flip=tc.flip, min_scale=tc.crop_scale, size=tc.train_size or None)
    loader = train_loader(
        run.shards,
        split="train",
        window=run.experiment.train_window(run.shards.clip_len),
        batch_size=tc.batch_size,
        steps_per_epoch=tc.steps_per_epoch,
        rank=run.ctx.rank,
        world_size=run.ctx.world_size,
        num_workers=tc.loader_workers,
        seed=tc.seed,
        shuffle_buffer=tc.shuffle_buffer,
        augment=augment,
        flows=run.experiment.temporal_weight > 0,
        flows_first=run.experiment.temporal_weight > 0 and run.experiment.temporal_long_term,
    )
    summary: dict[str, Any] = {}
    group = _placement_group(run)
    for epoch in range(run.start_epoch, tc.epochs):
        t0 = time.perf_counter()
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        metrics = {"epoch": epoch + 1, **_train_epoch(run, loader, epoch)}
        metrics.update(_validate(run))
        _epoch_media(run, epoch + 1)
        metrics.update(
            epoch_s=time.perf_counter() - t0, lr=run.optimizer.param_groups[0]["lr"], world_size=run.ctx.world_size
        )
        value = metrics.get(tc.metric)
        if value is None:
            raise TrainingError(
                f"metric: {tc.metric!r} is not reported by the training loop (reported: {', '.join(sorted(metrics))})"
            )
        improved = isinstance(value, float) and run.better(value)
        if improved:
            run.best = value
        metrics["best_" + tc.metric] = run.best if run.best is not None else math.nan
        if group:  # so the study can reclaim it if Ray Train leaves it behind (study.tune.reclaim)
            metrics[TRAIN_PG_KEY] = group
        _report(run, metrics, epoch + 1, improved)
        summary = metrics
    return {"epochs": tc.epochs, "best": run.best, "last": summary}


def _placement_group(run: Run) -> str | None:
    """The id (hex) of the placement group rank 0 runs in; None in local mode and on other ranks."""
    if run.local_mode or run.ctx.rank != 0 or run.session.in_trial:
        return None
    import ray

    return ray.get_runtime_context().get_placement_group_id()


# -- 2. one epoch ----------------------------------------------------------------------------------


def _train_epoch(run: Run, loader, epoch: int) -> dict[str, float]:
    """One epoch of optimizer steps; the mean losses over ranks and the epoch's training time."""
    from models.color import frames_to_lab
    from models.losses import colorization_loss, downsample_ab

    ctx, tc, exp = run.ctx, run.train, run.experiment
    use_amp = tc.amp and ctx.device.type == "cuda"
    t0 = time.perf_counter()
    run.ddp_model.train()
    sums = {"train_loss": 0.0, "l_cl": 0.0, "l_seq": 0.0, "l_temp": 0.0}
    flow_keys = ("flow", "valid", "flow_first", "valid_first")
    steps = 0
    for step, batch in enumerate(loader):
        for group in run.optimizer.param_groups:  # the schedule is a function of the global step
            group["lr"] = tc.lr_at(epoch * tc.steps_per_epoch + step)
        l_norm, ab = frames_to_lab(batch["frames"].to(ctx.device, non_blocking=True))  # (B,T,1,H,W), (B,T,2,H,W)
        ab_gt = downsample_ab(ab)  # (B, T, 2, h, w): stride 4, the logits' resolution
        with torch.autocast(device_type=ctx.device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = run.ddp_model(l_norm, None, exp.window)  # the state carried, the gradient cut every seq_len + 1
            loss, parts = colorization_loss(
                out,
                ab_gt,
                run.gamut,
                run.weights,
                lam=exp.lam,
                soft_k=exp.soft_k,
                soft_sigma=exp.soft_sigma,
                temporal_weight=exp.temporal_weight,
                temperature=exp.temperature,
                flows={k: batch[k].to(ctx.device, non_blocking=True) for k in flow_keys if k in batch},
            )
        if not all_ranks(ctx, bool(torch.isfinite(loss.detach()).item())):
            raise TrainingError(
                f"loss is NaN or infinite at epoch {epoch + 1}, step {step + 1} (lr={tc.lr:g}); the run is stopped"
            )
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), tc.grad_clip)
        run.optimizer.step()
        if run.ema is not None:
            run.ema.update_parameters(run.model)
        sums["train_loss"] += float(loss.detach())
        for k in ("l_cl", "l_seq", "l_temp"):
            v = parts.get(k)
            sums[k] += float(v.detach() if isinstance(v, torch.Tensor) else (v or 0.0))
        steps += 1
    if steps != tc.steps_per_epoch:
        log.warning("rank %d: %d steps in epoch %d, expected %d", ctx.rank, steps, epoch + 1, tc.steps_per_epoch)
    metrics = mean_over_ranks(ctx, {k: v / max(steps, 1) for k, v in sums.items()})
    metrics["train_s"] = time.perf_counter() - t0
    return metrics


# -- 3. validate and report ------------------------------------------------------------------------


@torch.no_grad()
def _validate(run: Run) -> dict[str, float]:
    """Validation metrics of this epoch, merged over ranks, keys prefixed ``val_``. Whole clips
    (`clip_loader`), the temporal state carried through each: every model of a study, whatever its
    window, is scored on the same frames (``val_frames``), and so is the gray baseline."""
    from study.devices import autocast_dtype
    from study.evaluation.evaluate import clip_loader, evaluate_model, gray_baseline

    tc, ctx = run.train, run.ctx

    def loader():
        return clip_loader(run.shards, tc.val_split, tc.val_batch_size, rank=ctx.rank, world_size=ctx.world_size)

    if run.gray is None:  # the gray baseline depends on the frames only: once per run
        run.gray = gray_baseline(loader(), max_batches=tc.val_batches or None)
    result = evaluate_model(
        run.evaluated,
        loader(),
        run.experiment.temperature,
        ctx.device,
        amp_dtype=autocast_dtype(ctx.device, tc.amp),
        max_batches=tc.val_batches or None,
        baseline=run.gray,
    )
    metrics = {f"val_{k}": float(v) for k, v in result["mean"].items()}
    metrics["val_gray_rmse_rgb"] = float(result["gray"]["mean"]["rmse_rgb"])
    metrics["val_frames"] = float(result["num_frames"])
    return metrics


def _epoch_media(run: Run, epoch: int) -> None:
    """Rank 0 renders the sample clips at this epoch's weights when it is due (`EpochMedia`), before
    the epoch is reported, so the study's callback finds them with the result. A failure to render
    is logged and training goes on: the frames are for looking at, not for the run."""
    if run.media is None or not run.media.due(epoch, run.train.epochs):
        return
    try:
        run.media.render(
            run.evaluated, run.shards, run.train.val_split, epoch, run.experiment.temperature, run.ctx.device
        )
    except Exception as exc:  # out of memory, a codec...: the frames are not what the run is for
        log.warning("sample frames of epoch %d not rendered: %s", epoch, exc)


def _report(run: Run, metrics: dict[str, Any], epoch: int, improved: bool) -> None:
    """Every rank reports once per epoch; rank 0 attaches the checkpoint. Ray Train keeps the best
    by ``metric``; its local mode (``--workers 0``) ranks none and its result's checkpoint is the
    one of the last report, so there an epoch that did not improve reports the best folder again
    (in local mode a folder *is* the checkpoint: nothing is copied), and a new best replaces it."""
    from models.checkpoint import save_checkpoint

    if run.ctx.rank != 0:
        run.session.report(metrics, None)
        return
    if run.history_file:  # Ray Train's local mode keeps no metrics history of its own
        with open(run.history_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(_finite_or_none(metrics)) + "\n")
    if run.local_mode and not improved and run.local_best is not None:
        run.session.report(metrics, str(run.local_best))
        return
    folder = tempfile.mkdtemp(prefix="vidcolor-ckpt-")
    plain = _finite_or_none(metrics)
    extra = {"epoch": epoch, "metrics": plain, "train": run.train.to_dict(), "shards": run.shards.location}
    save_checkpoint(
        folder, run.evaluated, run.experiment, run.gamut, prior=run.prior, extra=extra, frame_size=run.shards.size
    )
    save_optimizer(run.optimizer, folder)
    if run.ema is not None:  # the checkpoint holds the average; resuming needs the trained weights too
        save_train_weights(run.model, run.ema, folder)
    Path(folder, TRAIN_STATE_FILE).write_text(
        json.dumps({"epoch": epoch, "best": run.best, "metric": run.train.metric, "metrics": plain})
    )
    try:  # Tune may stop the trial inside the report (sys.exit): the temporary copy goes anyway
        run.session.report(metrics, folder, improved)
    finally:
        if not run.local_mode:  # copied to the run's storage; in local mode it *is* the checkpoint
            shutil.rmtree(folder, ignore_errors=True)
    if run.local_mode:
        if run.local_best is not None:
            shutil.rmtree(run.local_best, ignore_errors=True)
        run.local_best = folder


def _finite_or_none(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in metrics.items()}
