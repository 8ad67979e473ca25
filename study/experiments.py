"""``vidcolor experiments``: the seed paper's experiments 1-5 and exp6 with one budget, and their table.

Seed paper ("Automatic Colorization of Videos", Sahay and Choudhary), chained as there:

- exp1: classification on the quantized color space (no rebalancing);
- exp2: the same with class rebalancing;
- exp3: the ensemble of the exp1 and exp2 models (nothing to train);
- exp4: transfer learning with rebalancing, from ``--pretrained`` (a checkpoint folder, e.g. from
  ``vidcolor import-eccv16``) or else from the exp2 model;
- exp5: exp4's start plus the ConvLSTM, L = lam L_cl + (1 - lam) L_seq;
- exp6 (beyond the seed, issue 22): exp5 plus the temporal loss, + w_t L_temp, from the same start.

Every trained experiment gets the same training budget (``TrainConfig`` with the ``--set``
overrides), runs through ``study.train.launch.run_training`` (Ray Train) into ``OUT/expN/`` and
is then evaluated on the test split (``study.evaluation.evaluate.evaluate_checkpoint``), or on
``--split`` of another shard set with ``--test-shards`` (e.g. a benchmark set made of test videos
only, ``vidcolor shard --split 0,0,100``), so every experiment is trained on one set and scored on
the same held-out videos. Both sets are checked before Ray starts: the training set must have a
train split and the validation split, the test set the evaluated split. The
table reports RMSE (RGB 0-255, the seed's metric), the colorfulness ratio (prediction over ground
truth: below 1 is desaturated) and temporal stability (error of the frame-to-frame color change)
per experiment; ``--json`` writes the figures (with ``shards``, ``test_shards`` and ``split``).

``OUT`` is a workspace: the folders of experiments not chosen are kept (exp3, exp4 and exp5 use
them). A chosen experiment's folder holding an earlier run, and an existing ``--json`` file, are
refused before anything trains, unless ``--overwrite``, which deletes that folder just before the
experiment is redone and replaces the JSON file whole.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from data_shards import outdir
from models.errors import VidcolorError
from models.presets import get_preset
from study.config.settings import apply_settings, parse_sets
from study.config.train import TrainConfig
from study.evaluation.evaluate import GRAY, evaluate_checkpoint, open_split
from study.ray_runtime import init_ray
from study.report import fmt, format_table, write_json

log = logging.getLogger(__name__)

EXPERIMENTS = ("exp1", "exp2", "exp3", "exp4", "exp5", "exp6")
TRANSFER = ("exp4", "exp5", "exp6")  # start from --pretrained, else from the exp2 model
COLUMNS = (
    ("rmse_rgb", "RMSE"),
    ("rmse_ratio", "RMSE/gray"),
    ("psnr", "PSNR"),
    ("ssim", "SSIM"),
    ("colorfulness_ratio", "colorful"),
    ("temporal_error", "temporal"),
    ("cdc", "CDC"),
    ("warp_error", "warp err"),
)


def parse_only(text: str | None) -> list[str]:
    """``--only exp3,exp1`` -> the chosen experiments in their chain order (all six by default)."""
    if not text:
        return list(EXPERIMENTS)
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in EXPERIMENTS]
    if bad or not names:
        raise VidcolorError(
            f"--only: unknown experiment(s) {', '.join(bad) or text!r} (choose from {', '.join(EXPERIMENTS)})"
        )
    return [e for e in EXPERIMENTS if e in names]


def best_dir(out: Path, name: str) -> Path:
    """Where experiment `name`'s checkpoint lands: ``OUT/{name}/best``."""
    return out / name / "best"


def check_inputs(chosen: list[str], out: Path, pretrained: str | None) -> None:
    """Refuse, before anything trains, a chain that cannot finish: a missing ``--pretrained``
    folder, or an experiment whose source model (exp3: exp1 and exp2; exp4 - exp6 without
    ``--pretrained``: exp2) is neither chosen nor already in ``OUT`` (for each of the ``seeds``:
    seed k's exp3 averages seed k's exp1 and exp2, seed k's exp4 starts from seed k's exp2)."""
    if pretrained is not None and not Path(pretrained).exists():
        raise VidcolorError(f"--pretrained: checkpoint folder {pretrained} does not exist")
    for name in chosen:
        if name == "exp3":
            needs, why = ("exp1", "exp2"), "exp3"
        elif name in TRANSFER and pretrained is None:
            needs, why = ("exp2",), f"{name} without --pretrained"
        else:
            continue
        for need in needs:
            if need not in chosen and not (best_dir(out, need) / "config.json").is_file():
                raise VidcolorError(
                    f"{why} needs {need}'s model: run it too (--only ...,{need}) or keep {best_dir(out, need)}"
                )


def check_shard_sets(chosen: list[str], settings: Mapping[str, str], shards: str, test_shards: str, split: str) -> None:
    """Refuse, before Ray starts, a training set without the splits training reads (when a chosen
    experiment trains) and a test set without `split`."""
    from data_shards.reader import ShardSet
    from study.train.launch import check_training_splits

    trained = [name for name in chosen if name != "exp3"]
    if trained:
        _, train = apply_settings(get_preset(trained[0]), TrainConfig(), settings)
        check_training_splits(ShardSet(shards), train, f"--shards {shards}")
    open_split(test_shards, split)


def build_ensemble(members: list[Path], out: Path) -> Path:
    """exp3: save the ensemble of trained members as a checkpoint at ``out`` (``best/``)."""
    from models.checkpoint import load_ensemble, save_checkpoint

    assembled = load_ensemble([str(m) for m in members])
    save_checkpoint(
        out,
        assembled.model,
        assembled.config,
        assembled.gamut,
        prior=assembled.meta.get("prior"),
        extra=assembled.meta["extra"],
        frame_size=assembled.frame_size,
    )
    return out


def run_experiment(
    name: str,
    settings: Mapping[str, str],
    shards: str,
    out: Path,
    *,
    pretrained: str | None,
    workers: int,
    split: str,
    test_shards: str | None = None,
) -> dict[str, Any]:
    """Train (1, 2, 4, 5) on `shards` or assemble (3) one experiment into ``OUT/{name}/`` and
    evaluate its best checkpoint on `split` of `test_shards` (default `shards`); returns its entry
    of the figures."""
    from study.train.launch import run_training

    t0 = time.monotonic()
    experiment, train = apply_settings(get_preset(name), TrainConfig(), settings)
    if name == "exp3":
        folder = build_ensemble([best_dir(out, "exp1"), best_dir(out, "exp2")], best_dir(out, name))
        val = None
    else:
        if name in TRANSFER:
            experiment = experiment.replace(pretrained=pretrained or str(best_dir(out, "exp2")))
        log.info("training %s (%s, %d epochs x %d steps)", name, experiment.size, train.epochs, train.steps_per_epoch)
        trained = run_training(experiment, train, shards, out / name, workers=workers)
        folder, val = Path(trained["best"]), trained["metrics"]
    figures = evaluate_checkpoint(folder, test_shards or shards, split=split)
    log.info("%s: %s", name, figures["mean"])
    return {
        "checkpoint": str(folder),
        "config": experiment.to_dict(),
        "train": train.to_dict(),
        "mean": figures["mean"],
        "videos": figures["videos"],
        "num_frames": figures["num_frames"],
        "gray": figures.get("gray"),
        "val": val,
        "seconds": time.monotonic() - t0,
    }


def check_outputs(chosen: list[str], out: Path, overwrite: bool) -> None:
    """Refuse, before anything trains, an ``OUT`` that cannot hold the runs, and a chosen
    experiment's folder ``OUT/{name}`` that holds an earlier run, unless ``overwrite``
    (`study.train.launch.check_run_folder`); the other experiments' folders are inputs and kept."""
    from study.train.launch import check_run_folder

    outdir.check_place(out, "--out", folder=True)
    for name in chosen:
        check_run_folder(out / name, overwrite=overwrite)


def run_experiments(
    shards: str,
    out: str | Path,
    sets: list[str],
    *,
    pretrained: str | None = None,
    only: str | None = None,
    workers: int = 1,
    split: str = "test",
    test_shards: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run the chosen experiments in chain order on one Ray (started here unless one is running),
    trained on `shards` and evaluated on `split` of `test_shards` (default `shards`); returns the
    figures: shards, test_shards, split, out, settings and ``experiments: {name: entry}``. With
    ``overwrite`` a chosen experiment's earlier folder is deleted just before it is redone."""
    out = Path(out).resolve()
    test_shards = test_shards or shards
    chosen = parse_only(only)
    settings = parse_sets(sets)
    check_outputs(chosen, out, overwrite)
    check_inputs(chosen, out, pretrained)
    check_shard_sets(chosen, settings, shards, test_shards, split)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "shards": shards,
        "test_shards": test_shards,
        "split": split,
        "out": str(out),
        "settings": dict(settings),
        "experiments": {},
    }
    started = init_ray()
    import ray

    try:
        for name in chosen:
            outdir.empty_folder(out / name)  # checked above: new, empty, or an earlier run to replace
            results["experiments"][name] = run_experiment(
                name,
                settings,
                shards,
                out,
                pretrained=pretrained,
                workers=workers,
                split=split,
                test_shards=test_shards,
            )
    finally:
        if started:
            ray.shutdown()
    return results


def experiments_table(results: Mapping[str, Any]) -> str:
    """One row per experiment: the means of `COLUMNS` over the split's videos, and its frames; then
    the gray row (ab = 0 on the same videos, `evaluate_model`'s baseline), the reference of RMSE/gray."""

    def cells(mean: Mapping[str, Any]) -> list[Any]:  # CDC and warping error are small: significant digits
        return [fmt(mean.get(k), 3, style="g") if k in ("cdc", "warp_error") else mean.get(k) for k, _ in COLUMNS]

    head = ["exp", *(label for _, label in COLUMNS), "frames"]
    rows = [[name, *cells(r["mean"]), r["num_frames"]] for name, r in results["experiments"].items()]
    gray = next((r for r in results["experiments"].values() if r.get("gray")), None)
    footer = [[GRAY, *cells(gray["gray"]["mean"]), gray["num_frames"]]] if gray else []
    return format_table(head, rows, footer=footer)


def main(args) -> int:
    """``vidcolor experiments --shards DIR --out DIR [--test-shards DIR] [--split S] [--set K=V ...]
    [--pretrained CKPT] [--only ...] [--json FILE] [--overwrite]``."""
    overwrite = getattr(args, "overwrite", False)
    if args.json:
        outdir.check_file(args.json, "--json", overwrite)  # before the work, which a bad path would lose
    results = run_experiments(
        args.shards,
        args.out,
        args.set,
        pretrained=args.pretrained,
        only=args.only,
        split=args.split,
        test_shards=args.test_shards,
        overwrite=overwrite,
    )
    trained_on = "" if results["test_shards"] == args.shards else f", trained on {args.shards}"
    print(
        f"\nseed experiments on the {results['split']} split of {results['test_shards']}{trained_on} "
        "(RMSE on RGB 0-255; colorfulness ratio = prediction / ground truth; lower temporal error = steadier):"
    )
    print(experiments_table(results))
    if args.json:
        print(f"wrote {write_json(args.json, results)}")
    return 0
