"""``vidcolor experiments``: the seed paper's experiments 1-5 with one budget, and their table.

Seed paper ("Automatic Colorization of Videos", Sahay and Choudhary), chained as there:

- exp1: classification on the quantized color space (no rebalancing);
- exp2: the same with class rebalancing;
- exp3: the ensemble of the exp1 and exp2 models (nothing to train);
- exp4: transfer learning with rebalancing, from ``--pretrained`` (a checkpoint folder, e.g. from
  ``vidcolor import-eccv16``) or else from the exp2 model;
- exp5: exp4's start plus the ConvLSTM, L = lam L_cl + (1 - lam) L_seq.

Every trained experiment gets the same training budget (``TrainConfig`` with the ``--set``
overrides), runs through ``study.train.run_training`` (Ray Train) into ``OUT/expN/`` and is then
evaluated on the test split. The table reports RMSE (RGB 0-255, the seed's metric), the
colorfulness ratio (prediction over ground truth: below 1 is desaturated) and temporal stability
(error of the frame-to-frame color change) per experiment; ``--json`` writes the figures.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import study.train.loop  # noqa: F401  (sets RAY_AUTH_MODE before Ray is imported)
from models.errors import VidcolorError

log = logging.getLogger(__name__)

EXPERIMENTS = ("exp1", "exp2", "exp3", "exp4", "exp5")
COLUMNS = (("rmse_rgb", "RMSE"), ("rmse_ab", "RMSE ab"), ("psnr", "PSNR"),
           ("colorfulness_ratio", "colorfulness ratio"), ("temporal_error", "temporal error"))


def parse_only(text: str | None) -> list[str]:
    if not text:
        return list(EXPERIMENTS)
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in EXPERIMENTS]
    if bad or not names:
        raise VidcolorError(f"--only: unknown experiment(s) {', '.join(bad) or text!r} "
                            f"(choose from {', '.join(EXPERIMENTS)})")
    return [e for e in EXPERIMENTS if e in names]


def evaluate_checkpoint(folder: str | Path, shards: str, split: str = "test", batch_size: int = 8) -> dict[str, Any]:
    """`study.evaluate.evaluate_model` of a checkpoint on a split (CPU or the first GPU)."""
    import torch

    from data_shards.reader import ShardSet, eval_loader
    from models.checkpoint import load_checkpoint
    from study.evaluation.evaluate import check_split, default_device, evaluate_model

    device = default_device(None)
    ckpt = load_checkpoint(folder, device=str(device))
    shard_set = ShardSet(shards)
    check_split(shard_set.manifest, split, shards)
    loader = eval_loader(shard_set, split=split, window=ckpt.config.window, batch_size=batch_size)
    amp = torch.bfloat16 if device.type == "cuda" else None
    return evaluate_model(ckpt.model, ckpt.gamut, loader, float(ckpt.config.temperature), device, amp_dtype=amp)


def build_ensemble(members: list[Path], out: Path) -> Path:
    """exp3: save the ensemble of trained members as a checkpoint at ``out`` (``best/``)."""
    from models.checkpoint import load_ensemble, save_checkpoint

    assembled = load_ensemble([str(m) for m in members])
    save_checkpoint(out, assembled.model, assembled.config, assembled.gamut, prior=assembled.meta.get("prior"),
                    extra=assembled.meta["extra"], frame_size=assembled.frame_size)
    return out


def run_experiments(shards: str, out: str | Path, sets: list[str], *, pretrained: str | None = None,
                    only: str | None = None, workers: int = 1, split: str = "test") -> dict[str, Any]:
    """Train (1, 2, 4, 5) or assemble (3) the chosen experiments and evaluate each; returns the figures."""
    import ray

    from models.presets import get_preset
    from study.config.spec import TrainConfig, apply_settings, parse_sets
    from study.train.loop import init_ray, run_training

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    chosen = parse_only(only)
    settings = parse_sets(sets)
    if pretrained is not None and not Path(pretrained).exists():
        raise VidcolorError(f"--pretrained: checkpoint folder {pretrained} does not exist")

    def best(name: str) -> Path:
        return out / name / "best"

    def need(name: str, why: str) -> Path:
        if name not in chosen and not (best(name) / "config.json").is_file():
            raise VidcolorError(f"{why} needs {name}'s model: run it too (--only ...,{name}) or keep {best(name)}")
        return best(name)

    started = not ray.is_initialized()
    init_ray(None)
    results: dict[str, Any] = {"shards": shards, "split": split, "out": str(out), "settings": dict(settings),
                               "experiments": {}}
    try:
        for name in chosen:
            t0 = time.monotonic()
            experiment, train = apply_settings(get_preset(name), TrainConfig(), settings)
            if name == "exp3":
                folder = build_ensemble([need("exp1", "exp3"), need("exp2", "exp3")], best(name))
                trained = None
            else:
                if name in ("exp4", "exp5"):
                    start = pretrained or str(need("exp2", f"{name} without --pretrained"))
                    experiment = experiment.replace(pretrained=start)
                print(f"training {name} ({experiment.size}, {train.epochs} epochs x {train.steps_per_epoch} steps)",
                      flush=True)
                trained = run_training(experiment, train, shards, out / name, workers=workers)
                folder = Path(trained["best"])
            figures = evaluate_checkpoint(folder, shards, split=split)
            results["experiments"][name] = {
                "checkpoint": str(folder), "config": experiment.to_dict(), "train": train.to_dict(),
                "mean": figures["mean"], "videos": figures["videos"], "num_frames": figures["num_frames"],
                "val": None if trained is None else trained["metrics"], "seconds": time.monotonic() - t0}
            log.info("%s: %s", name, figures["mean"])
    finally:
        if started:
            ray.shutdown()
    return results


def format_table(results: dict[str, Any]) -> str:
    head = ["exp", *(label for _, label in COLUMNS), "frames"]
    rows = []
    for name, r in results["experiments"].items():
        rows.append([name, *(_fmt(r["mean"].get(key)) for key, _ in COLUMNS), str(r["num_frames"])])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(head, widths))),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def main(args) -> int:
    results = run_experiments(args.shards, args.out, args.set, pretrained=args.pretrained, only=args.only)
    print(f"\nseed experiments on the {results['split']} split of {args.shards} "
          "(RMSE on RGB 0-255; colorfulness ratio = prediction / ground truth; lower temporal error = steadier):")
    print(format_table(results))
    if args.json:
        from study.evaluation.evaluate import json_ready

        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(json_ready(results), indent=2, default=str) + "\n")
        print(f"wrote {path}")
    return 0
