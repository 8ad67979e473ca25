"""The Ray Train training loop of one configuration, and ``vidcolor train``.

One run trains a colorizer (seed paper "Automatic Colorization of Videos"; Zhang et al. 2016
"Colorful Image Colorization") with Ray Train's ``TorchTrainer``: DDP over the workers, a GPU per
worker when asked (bf16 autocast), CPU otherwise. Each worker

1. streams windows of ``window`` frames (seq_len + 1 for the ConvLSTM, else 1) from the shard set
   with its rank and world size (``data_shards.reader.train_loader``: the same number of steps on
   every rank, so DDP never waits on a rank that ran out of data);
2. converts the uint8 frames to Lab on the device, takes ground-truth ab at stride 4 (the logits'
   1/4 resolution, as Zhang's released code does) and computes ``L = lam L_cl + (1 - lam) L_seq``
   with the class-rebalancing weights derived from the shard set's ab histogram for this bin grid;
3. validates at the end of every epoch (``study.evaluate.evaluate_model``: per-video metrics,
   merged over ranks), then every rank calls ``ray.train.report`` once, rank 0 with a checkpoint:
   ``models.checkpoint`` (safetensors + JSON) plus the optimizer state in safetensors and the loop
   state in JSON, so nothing is ever unpickled;
4. resumes from ``ray.train.get_checkpoint()`` when Ray restarts it (worker or node failure, or a
   relaunched trial whose Train run has the same name).

Deterministic failures (a NaN loss, a bad setting) are caught on every rank together and returned
as rank 0's return value; the caller (``run_training`` or the Tune trial driver) raises them as a
``VidcolorError``, so they fail the run at once instead of being retried like a lost worker.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from models.errors import VidcolorError

log = logging.getLogger(__name__)

# Token authentication (Ray >= 2.59 turns it on for every local cluster): a client joining one
# with an address needs RAY_AUTH_MODE=token, and Ray reads it once, at import. Set before any
# Ray import of ours; an explicit setting (e.g. "disabled" for a cluster without auth) wins.
os.environ.setdefault("RAY_AUTH_MODE", "token")

OPTIMIZER_FILE = "optimizer.safetensors"
OPTIMIZER_META = "optimizer.json"
TRAIN_STATE_FILE = "train_state.json"
ERROR_KEY = "vidcolor_error"


# ---------------------------------------------------------------------------------------------
# Optimizer state without pickle
# ---------------------------------------------------------------------------------------------


def save_optimizer(optimizer: torch.optim.Optimizer, folder: str | Path) -> None:
    """Optimizer state as safetensors (tensors) + JSON (everything else)."""
    from safetensors.torch import save_file

    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for pid, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                plain.setdefault(str(pid), {})[name] = value
    save_file(tensors, str(Path(folder) / OPTIMIZER_FILE))
    meta = {"param_groups": state["param_groups"], "plain": plain, "type": type(optimizer).__name__}
    (Path(folder) / OPTIMIZER_META).write_text(json.dumps(meta, default=_json_default))


def load_optimizer(optimizer: torch.optim.Optimizer, folder: str | Path) -> bool:
    """Restore what ``save_optimizer`` wrote; False when the folder has no optimizer state."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / OPTIMIZER_FILE).is_file() or not (folder / OPTIMIZER_META).is_file():
        return False
    meta = json.loads((folder / OPTIMIZER_META).read_text())
    if meta.get("type") != type(optimizer).__name__:
        raise VidcolorError(f"{folder / OPTIMIZER_META}: optimizer {meta.get('type')!r}, expected "
                            f"{type(optimizer).__name__!r}")
    state: dict[int, dict[str, Any]] = {}
    for key, tensor in load_file(str(folder / OPTIMIZER_FILE)).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = tensor
    for pid, entry in meta["plain"].items():
        state.setdefault(int(pid), {}).update(entry)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return True


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, torch.Tensor):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# ---------------------------------------------------------------------------------------------
# The worker function
# ---------------------------------------------------------------------------------------------


@dataclass
class _Ctx:
    rank: int
    world_size: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()


def _context() -> _Ctx:
    import ray.train

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    if torch.cuda.is_available():
        try:
            import ray.train.torch

            device = ray.train.torch.get_device()
        except Exception:  # local mode: no Ray-assigned GPU
            device = torch.device("cuda", ctx.get_local_rank() % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    return _Ctx(rank, world, device)


def _all_ranks(ctx: _Ctx, flag: bool) -> bool:
    """True when ``flag`` holds on every rank (one tiny all-reduce under DDP)."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
    return bool(t.item() > 0.5)


def _mean_over_ranks(ctx: _Ctx, values: Mapping[str, float]) -> dict[str, float]:
    if not ctx.distributed or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], device=ctx.device, dtype=torch.float64)
    torch.distributed.all_reduce(t)
    return {k: float(v) / ctx.world_size for k, v in zip(keys, t.tolist())}


class TrainingError(VidcolorError):
    """A deterministic failure of the run (NaN loss, bad setting): retrying would not help."""


def train_loop(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """Ray Train worker function. ``config``: ``experiment`` (ExperimentConfig dict), ``train``
    (TrainConfig dict), ``shards`` (location). Returns ``{ERROR_KEY: message}`` on a deterministic
    failure (the same on every rank), else a summary."""
    ctx = _context()
    try:
        return _train(config, ctx)
    except VidcolorError as exc:
        # Raised the same way on every rank (config errors before any collective; NaN decided by
        # all-reduce), so returning keeps the ranks in step and Ray does not retry in vain.
        log.error("rank %d: %s", ctx.rank, exc)
        return {ERROR_KEY: str(exc)}


def _train(config: Mapping[str, Any], ctx: _Ctx) -> dict[str, Any]:
    import ray.train

    from data_shards.reader import ShardSet, train_loader
    from models.color import frames_to_lab
    from models.gamut import ABGamut
    from models.losses import colorization_loss, downsample_ab, loss_weights
    from models.presets import ExperimentConfig
    from study.config.spec import TrainConfig

    experiment = ExperimentConfig.from_dict(config["experiment"])
    tc = TrainConfig.from_dict(config["train"])
    if experiment.is_ensemble:
        raise TrainingError(f"ensemble: {experiment.name} averages trained models and is not trained itself")
    experiment.check_ready()
    torch.manual_seed(tc.seed)

    shards = ShardSet(config["shards"])
    gamut = ABGamut(experiment.grid)
    prior = gamut.prior_from_histogram(shards.ab_histogram())
    weights = loss_weights(experiment.rebalance, gamut, prior, experiment.gamma)
    weights = weights.to(ctx.device) if weights is not None else None

    model = _build_model(experiment, gamut, ctx)
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    start_epoch, best, resumed_metrics = 0, None, None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            start_epoch, best = _restore(folder, model, optimizer, ctx)
            resumed_metrics = json.loads((Path(folder) / TRAIN_STATE_FILE).read_text()).get("metrics")
        log.info("rank %d: resumed after epoch %d", ctx.rank, start_epoch)
        if resumed_metrics:
            # Report the checkpoint's epoch again (every rank, no checkpoint): if the failure came
            # between saving it and the report reaching Tune, its metrics are not lost; a
            # duplicate is harmless (the store keys epochs by number; ASHA's rungs by epoch).
            ray.train.report({**{k: v for k, v in resumed_metrics.items() if v is not None}, "resumed": 1},
                             checkpoint=None)
    model.to(ctx.device)
    ddp_model = model
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        ddp_model = DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)

    loader = train_loader(shards, split="train",
                          window=experiment.window, batch_size=tc.batch_size, steps_per_epoch=tc.steps_per_epoch,
                          rank=ctx.rank, world_size=ctx.world_size, num_workers=tc.loader_workers,
                          seed=tc.seed, shuffle_buffer=tc.shuffle_buffer)
    use_amp = tc.amp and ctx.device.type == "cuda"
    better = (lambda a, b: a < b) if tc.mode == "min" else (lambda a, b: a > b)
    summary: dict[str, Any] = {}

    for epoch in range(start_epoch, tc.epochs):
        t0 = time.perf_counter()
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        ddp_model.train()
        sums = {"train_loss": 0.0, "l_cl": 0.0, "l_seq": 0.0}
        steps = 0
        for step, batch in enumerate(loader):
            l_norm, ab = frames_to_lab(batch["frames"].to(ctx.device, non_blocking=True))  # (B,T,1,H,W), (B,T,2,H,W)
            ab_gt = downsample_ab(ab)  # (B, T, 2, h, w): stride 4, the logits' resolution
            with torch.autocast(device_type=ctx.device.type, dtype=torch.bfloat16, enabled=use_amp):
                out = ddp_model(l_norm)
                loss, parts = colorization_loss(out, ab_gt, gamut, weights, lam=experiment.lam,
                                                soft_k=experiment.soft_k, soft_sigma=experiment.soft_sigma)
            finite = _all_ranks(ctx, bool(torch.isfinite(loss.detach()).item()))
            if not finite:
                raise TrainingError(f"loss is NaN or infinite at epoch {epoch + 1}, step {step + 1} "
                                    f"(lr={tc.lr:g}); the run is stopped")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimizer.step()
            sums["train_loss"] += float(loss.detach())
            for k in ("l_cl", "l_seq"):
                v = parts.get(k)
                sums[k] += float(v.detach() if isinstance(v, torch.Tensor) else (v or 0.0))
            steps += 1
        if steps != tc.steps_per_epoch:
            log.warning("rank %d: %d steps in epoch %d, expected %d", ctx.rank, steps, epoch + 1, tc.steps_per_epoch)
        train_metrics = _mean_over_ranks(ctx, {k: v / max(steps, 1) for k, v in sums.items()})
        train_s = time.perf_counter() - t0

        val = _validate(model, experiment, gamut, shards, tc, ctx)
        metrics: dict[str, Any] = {"epoch": epoch + 1, **train_metrics, **val,
                                   "train_s": train_s, "epoch_s": time.perf_counter() - t0,
                                   "lr": optimizer.param_groups[0]["lr"], "world_size": ctx.world_size}
        value = metrics.get(tc.metric)
        if value is None:
            raise TrainingError(f"metric: {tc.metric!r} is not reported by the training loop "
                                f"(reported: {', '.join(sorted(metrics))})")
        if isinstance(value, float) and math.isfinite(value) and (best is None or better(value, best)):
            best = value
        metrics["best_" + tc.metric] = best if best is not None else math.nan
        _report(metrics, model, optimizer, experiment, gamut, prior, tc, epoch + 1, best, ctx, config)
        summary = metrics
    return {"epochs": tc.epochs, "best": best, "last": summary}


def _build_model(experiment, gamut, ctx: _Ctx):
    from models.model import create_model

    model = create_model(experiment, gamut)
    if experiment.pretrained:
        _load_pretrained(model, experiment.pretrained)
    return model


def _load_pretrained(model: torch.nn.Module, folder: str) -> None:
    """Transfer learning (exp4, exp5): the colorizer trunk (and the head and ConvLSTM where they
    fit) from a trained checkpoint, via ``models.checkpoint.load_pretrained_trunk``."""
    from models.checkpoint import load_pretrained_trunk

    if not Path(folder).exists():
        raise TrainingError(f"pretrained: checkpoint folder {folder} does not exist")
    info = load_pretrained_trunk(model, folder)
    log.info("initialised from %s: %s trunk tensors, head %s, temporal %s", folder, info.get("trunk"),
             info.get("head"), info.get("temporal"))


def _restore(folder: str, model, optimizer, ctx: _Ctx) -> tuple[int, float | None]:
    from models.checkpoint import load_checkpoint

    loaded = load_checkpoint(folder)
    model.load_state_dict(loaded.model.state_dict())
    load_optimizer(optimizer, folder)
    for group in optimizer.param_groups:  # optimizer tensors to the device
        for p in group["params"]:
            for k, v in optimizer.state.get(p, {}).items():
                if isinstance(v, torch.Tensor) and k != "step":
                    optimizer.state[p][k] = v.to(ctx.device)
    state = json.loads((Path(folder) / TRAIN_STATE_FILE).read_text())
    return int(state["epoch"]), state.get("best")


@torch.no_grad()
def _validate(model, experiment, gamut, shards, tc, ctx: _Ctx) -> dict[str, float]:
    """Validation metrics of this epoch, merged over ranks, keys prefixed ``val_``."""
    from data_shards.reader import eval_loader
    from study.evaluation.evaluate import evaluate_model

    loader = eval_loader(shards, split=tc.val_split, window=experiment.window, batch_size=tc.val_batch_size,
                         rank=ctx.rank, world_size=ctx.world_size)
    amp = torch.bfloat16 if tc.amp and ctx.device.type == "cuda" else None
    result = evaluate_model(model, gamut, loader, experiment.temperature, ctx.device, amp_dtype=amp,
                            max_batches=tc.val_batches or None)
    metrics = {f"val_{k}": float(v) for k, v in result["mean"].items()}
    metrics["val_frames"] = float(result["num_frames"])
    return metrics


def _report(metrics, model, optimizer, experiment, gamut, prior, tc, epoch, best, ctx: _Ctx, config) -> None:
    """Every rank reports once per epoch; rank 0 attaches the checkpoint."""
    import ray.train
    from ray.train import Checkpoint

    from models.checkpoint import save_checkpoint

    if ctx.rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    folder = tempfile.mkdtemp(prefix="vidcolor-ckpt-")
    extra = {"epoch": epoch, "metrics": _plain(metrics), "train": tc.to_dict(), "shards": str(config["shards"])}
    save_checkpoint(folder, model, experiment, gamut, prior=prior, extra=extra)
    save_optimizer(optimizer, folder)
    Path(folder, TRAIN_STATE_FILE).write_text(json.dumps({"epoch": epoch, "best": best, "metric": tc.metric,
                                                          "metrics": _plain(metrics)}))
    ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder))
    if _is_ray_worker():  # Ray copied it to the run's storage; in local mode it *is* the checkpoint
        shutil.rmtree(folder, ignore_errors=True)


def _is_ray_worker() -> bool:
    from ray.train.v2._internal.execution.train_fn_utils import LocalTrainFnUtils, get_train_fn_utils

    try:
        return not isinstance(get_train_fn_utils(), LocalTrainFnUtils)
    except RuntimeError:
        return False


def _plain(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in metrics.items()}


# ---------------------------------------------------------------------------------------------
# Launching a run (``vidcolor train`` and the Tune trial driver)
# ---------------------------------------------------------------------------------------------


def make_trainer(experiment, train, shards: str, *, workers: int = 1, use_gpu: bool = False,
                 cpus_per_worker: float = 1.0, storage_path: str | None = None, name: str = "train",
                 max_failures: int = 0, callbacks: list | None = None):
    """A ``TorchTrainer`` for one configuration. ``workers=0`` runs the loop in this process
    (Ray Train's local mode, for tests). The Train run is named ``name`` under ``storage_path``:
    a second trainer with the same name resumes from that run's latest checkpoint."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    resources = {"CPU": cpus_per_worker}
    if use_gpu:
        resources["GPU"] = 1
    scaling = ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                            resources_per_worker=resources if workers > 0 else None)
    run_config = RunConfig(
        name=name,
        storage_path=None if storage_path is None else str(storage_path),
        failure_config=FailureConfig(max_failures=max_failures),
        checkpoint_config=CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=train.metric,
                                           checkpoint_score_order=train.mode),
        callbacks=callbacks or None,
    )
    loop_config = {"experiment": experiment.to_dict(), "train": train.to_dict(), "shards": str(shards)}
    return TorchTrainer(train_loop, train_loop_config=loop_config, scaling_config=scaling, run_config=run_config)


def raise_for_error(result) -> None:
    """Turn a deterministic failure returned by the workers into a VidcolorError."""
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


def run_training(experiment, train, shards: str, out: str | Path, *, workers: int = 1, use_gpu: bool = False,
                 address: str | None = None) -> dict[str, Any]:
    """Train one configuration on Ray; leaves the best checkpoint at ``OUT/best/``.

    Returns ``{"best": path, "metrics": best metrics, "last": last metrics, "run": Train run path}``."""
    import ray

    from data_shards.reader import ShardSet

    shards = ShardSet(shards).location  # a clear error before Ray starts; local paths made absolute
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if workers > 0 and not ray.is_initialized():
        init_ray(address)
    trainer = make_trainer(experiment, train, shards, workers=workers, use_gpu=use_gpu,
                           storage_path=str(out / "ray"), name="train")
    result = trainer.fit()
    raise_for_error(result)
    path = best_checkpoint_path(result, train.metric, train.mode)
    if path is None:
        raise VidcolorError(f"training in {out} reported no checkpoint")
    best_dir = out / "best"
    tmp = out / ".best.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(path, tmp)
    shutil.rmtree(best_dir, ignore_errors=True)
    tmp.rename(best_dir)
    best_metrics = {}
    for ckpt, metrics in getattr(result, "best_checkpoints", None) or []:
        if ckpt.path == path:
            best_metrics = dict(metrics)
    if not best_metrics:
        state = json.loads((best_dir / TRAIN_STATE_FILE).read_text())
        best_metrics = {"epoch": state["epoch"], train.metric: state.get("best")}
    return {"best": str(best_dir), "metrics": best_metrics, "last": dict(result.metrics or {}),
            "run": str(result.path) if result.path else None}


def init_ray(address: str | None = None, *, num_cpus: int | None = None, **kwargs) -> None:
    """Connect to ``address`` or start a local Ray sized to the machine, dashboard on (its State
    API frees the placement groups of stopped trials; PITFALLS)."""
    import ray

    if ray.is_initialized():
        return
    logging.getLogger("ray").setLevel(logging.WARNING)
    if address:
        # Token auth: RAY_AUTH_MODE=token is set at import (above); the token comes from
        # ~/.ray/auth_token (on another machine copy the head's there, or set RAY_AUTH_TOKEN).
        ray.init(address=address, log_to_driver=False, **kwargs)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=True, log_to_driver=False, **kwargs)


def main(args) -> int:
    """``vidcolor train``: one configuration, best checkpoint at OUT/best/, a summary table."""
    from models.presets import get_preset
    from study.config.spec import TrainConfig, apply_settings, parse_sets

    experiment, train = apply_settings(get_preset(args.preset), TrainConfig(), parse_sets(args.set))
    experiment.check_ready()
    from data_shards.reader import ShardSet

    ShardSet(args.shards)  # fail early with the reader's message on a bad location
    summary = run_training(experiment, train, args.shards, args.out, workers=args.workers, use_gpu=args.gpu,
                           address=args.address)
    print(f"trained {experiment.name} ({experiment.size}, grid {experiment.grid}, window {experiment.window}) "
          f"for {train.epochs} epochs x {train.steps_per_epoch} steps")
    rows = [(k, summary["metrics"].get(k)) for k in sorted(summary["metrics"]) if not k.startswith("checkpoint")]
    width = max(len(k) for k, _ in rows) if rows else 10
    print(f"{'metric (best epoch)':<{width}}  value")
    for k, v in rows:
        print(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    print(f"best checkpoint: {summary['best']}")
    return 0
