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
table reports RMSE (RGB 0-255, the seed's metric) and its ratio to the gray input's, the
colorfulness ratio (prediction over ground truth: below 1 is desaturated) and its gap |ratio - 1|,
and temporal stability: the warping error and CDC, and what the color adds to the gray input's
(``added_warp``, ``added_cdc``: ratio - 1); ``--json`` writes the figures (with ``shards``,
``test_shards`` and ``split``).

``--seeds N`` trains each chosen experiment N times, seeds 0 ... N-1 (``TrainConfig.seed``), into
``OUT/expN/seed{k}/`` (N = 1 keeps ``OUT/expN/``); the tables show the mean ± sd over the seeds and
each experiment's paired bootstrap 95% interval of its difference to ``--reference`` (default
exp1, else the first chosen), marked ``*`` where it excludes 0 (`study.seeds`). The JSON keeps
every seed's figures.

``OUT`` is a workspace: the folders of experiments not chosen are kept (exp3 and exp4 - exp6 use
them). A chosen experiment's folder holding an earlier run, and an existing ``--json`` file, are
refused before anything trains, unless ``--overwrite``, which deletes that folder just before the
experiment is redone and replaces the JSON file whole.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from data_shards import outdir
from models.errors import VidcolorError
from models.presets import get_preset
from models.stabilize import check_strength
from study.config.settings import apply_settings, parse_sets
from study.config.train import TrainConfig
from study.evaluation.evaluate import GRAY, TRUTH, evaluate_checkpoint, open_split
from study.ray_runtime import init_ray
from study.report import fmt, format_table, write_json
from study.seeds import combine_seeds, differences, seeds_summary
from study.train.run_state import TRAIN_STATE_FILE

log = logging.getLogger(__name__)

EXPERIMENTS = ("exp1", "exp2", "exp3", "exp4", "exp5", "exp6")
TRANSFER = ("exp4", "exp5", "exp6")  # start from --pretrained, else from the exp2 model
COLUMNS = (
    ("rmse_rgb", "RMSE"),
    ("rmse_ratio", "RMSE/gray"),
    ("psnr", "PSNR"),
    ("ssim", "SSIM"),
    ("colorfulness_ratio", "colorful"),
    ("colorfulness_gap", "cf gap"),
    ("temporal_error", "temporal"),
    ("cdc", "CDC"),
    ("added_cdc", "+CDC"),
    ("warp_error", "warp err"),
    ("added_warp", "+warp"),
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


def scoped_settings(settings: Mapping[str, str]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """``--set KEY=VALUE`` (every experiment) and ``--set expN.KEY=VALUE`` (expN alone, over the
    former) -> (common, {expN: its own}); a scope that is not an experiment is refused, naming it."""
    common: dict[str, str] = {}
    own: dict[str, dict[str, str]] = {}
    for key, value in settings.items():
        scope, dot, name = key.partition(".")
        if not dot:
            common[key] = value
        elif scope in EXPERIMENTS and name:
            own.setdefault(scope, {})[name] = value
        else:
            raise VidcolorError(
                f"--set {key}={value}: a setting for one experiment is expN.KEY=VALUE with expN one of "
                f"{', '.join(EXPERIMENTS)}, got scope {scope!r}"
            )
    return common, own


def run_dir(out: Path, name: str, seed: int = 0, seeds: int = 1) -> Path:
    """Experiment `name`'s run folder: ``OUT/{name}``, or ``OUT/{name}/seed{k}`` with ``--seeds`` N > 1."""
    return out / name if seeds == 1 else out / name / f"seed{seed}"


def best_dir(out: Path, name: str, seed: int = 0, seeds: int = 1) -> Path:
    """Where experiment `name`'s checkpoint lands: ``OUT/{name}/best`` (``OUT/{name}/seed{k}/best``)."""
    return run_dir(out, name, seed, seeds) / "best"


def check_seeds(seeds: int, settings: Mapping[str, str], chosen: list[str], reference: str | None) -> str:
    """Refuse a bad ``--seeds`` (below 1, or beside ``--set seed=``) or a ``--reference`` that is
    not chosen; returns the reference: ``--reference``, else exp1 when chosen, else the first chosen."""
    if seeds < 1:
        raise VidcolorError(f"--seeds must be at least 1, got {seeds}")
    if seeds > 1 and "seed" in settings:
        raise VidcolorError(f"--seeds {seeds} trains seeds 0 ... {seeds - 1}: leave out --set seed={settings['seed']}")
    if reference is None:
        return "exp1" if "exp1" in chosen else chosen[0]
    if reference not in chosen:
        raise VidcolorError(f"--reference {reference}: not among the chosen experiments ({', '.join(chosen)})")
    return reference


def check_inputs(chosen: list[str], out: Path, pretrained: str | None, seeds: int = 1) -> None:
    """Refuse, before anything trains, a chain that cannot finish: a missing ``--pretrained``
    folder, or an experiment whose source model (exp3: exp1 and exp2; exp4 - exp6 without
    ``--pretrained``: exp2) is neither chosen nor already in ``OUT`` (for each of the ``seeds``:
    seed k's exp3 averages seed k's exp1 and exp2, seed k's exp4 - exp6 start from seed k's exp2)."""
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
            for seed in range(seeds):
                kept = best_dir(out, need, seed, seeds)
                if need not in chosen and not (kept / "config.json").is_file():
                    raise VidcolorError(f"{why} needs {need}'s model: run it too (--only ...,{need}) or keep {kept}")


def check_shard_sets(
    chosen: list[str], settings: Mapping[str, Mapping[str, str]], shards: str, test_shards: str, split: str
) -> None:
    """Refuse, before Ray starts, a chosen experiment's bad settings (``settings``: {name: its
    settings}, `scoped_settings` merged; "": the common ones), a training set without the splits training reads (when
    a chosen experiment trains) and a test set without `split`."""
    from data_shards.reader import ShardSet
    from study.train.launch import check_training_splits

    shard_set = None
    for name in chosen:
        apply_settings(get_preset(name), TrainConfig(), settings.get("", {}))  # a common setting's error: --set
        _, train = apply_settings(get_preset(name), TrainConfig(), settings[name], f"--set (for {name})")
        if name != "exp3":
            shard_set = shard_set or ShardSet(shards)
            check_training_splits(shard_set, train, f"--shards {shards}")
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
    seed: int = 0,
    seeds: int = 1,
    rescore: bool = False,
) -> dict[str, Any]:
    """Train (1, 2, 4, 5, 6) on `shards` or assemble (3) one experiment into its `run_dir` and
    evaluate its best checkpoint on `split` of `test_shards` (default `shards`); returns its entry
    of the figures. With ``seeds`` > 1 this is seed `seed`'s run (TrainConfig.seed), in
    ``OUT/{name}/seed{seed}``, chained to the same seed's exp1 and exp2. With ``rescore`` nothing
    trains: the checkpoint already in the run folder is evaluated (`rescored`)."""
    from study.train.launch import run_training

    t0 = time.monotonic()
    if seeds > 1:
        settings = {**settings, "seed": str(seed)}
    experiment, train = apply_settings(get_preset(name), TrainConfig(), settings)
    config, train_config = experiment.to_dict(), train.to_dict()
    if rescore and name != "exp3":
        folder = best_dir(out, name, seed, seeds)
        config, train_config, val = trained_as(folder)
    elif name == "exp3":
        members = [best_dir(out, "exp1", seed, seeds), best_dir(out, "exp2", seed, seeds)]
        folder = build_ensemble(members, best_dir(out, name, seed, seeds))
        val = None
    else:
        if name in TRANSFER:
            experiment = experiment.replace(pretrained=pretrained or str(best_dir(out, "exp2", seed, seeds)))
        log.info("training %s (%s, %d epochs x %d steps)", name, experiment.size, train.epochs, train.steps_per_epoch)
        trained = run_training(experiment, train, shards, run_dir(out, name, seed, seeds), workers=workers)
        folder, val = Path(trained["best"]), trained["metrics"]
    figures = evaluate_checkpoint(folder, test_shards or shards, split=split)
    log.info("%s: %s", name, figures["mean"])
    return {
        "checkpoint": str(folder),
        "config": config,
        "train": train_config,
        "mean": figures["mean"],
        "videos": figures["videos"],
        "num_frames": figures["num_frames"],
        "gray": figures.get("gray"),
        "truth": figures.get("truth"),
        "val": val,
        "seconds": time.monotonic() - t0,
    }


def trained_as(folder: Path) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]:
    """A trained checkpoint folder's (experiment config, training config, validation metrics of its
    epoch), as its training recorded them (``config.json``, ``train_state.json``): what ``--rescore``
    reports beside the new figures."""
    meta = json.loads((folder / "config.json").read_text())
    state = folder / TRAIN_STATE_FILE
    val = json.loads(state.read_text()).get("metrics") if state.is_file() else None
    return meta["config"], (meta.get("extra") or {}).get("train"), val


def stabilized(entry: Mapping[str, Any], test_shards: str, split: str, strength: float) -> dict[str, Any]:
    """An experiment's entry (`run_experiment`) scored again through ``--stabilize strength``: the
    same checkpoint and frames, the filter on each clip's predicted colors (`evaluate_checkpoint`);
    ``val`` is None (the filter is not what validation chose)."""
    t0 = time.monotonic()
    figures = evaluate_checkpoint(entry["checkpoint"], test_shards, split=split, stabilize=strength)
    return {
        **entry,
        "mean": figures["mean"],
        "videos": figures["videos"],
        "num_frames": figures["num_frames"],
        "gray": figures.get("gray"),
        "truth": figures.get("truth"),
        "val": None,
        "stabilize": strength,
        "seconds": time.monotonic() - t0,
    }


def check_outputs(chosen: list[str], out: Path, overwrite: bool, seeds: int = 1) -> None:
    """Refuse, before anything trains, an ``OUT`` that cannot hold the runs, and a chosen
    experiment's run folder (`run_dir`: ``OUT/{name}``, or each ``OUT/{name}/seed{k}``) that holds
    an earlier run, unless ``overwrite`` (`study.train.launch.check_run_folder`); the other
    experiments' folders are inputs and kept."""
    from study.train.launch import check_run_folder

    outdir.check_place(out, "--out", folder=True)
    for name in chosen:
        for seed in range(seeds):
            check_run_folder(run_dir(out, name, seed, seeds), overwrite=overwrite)


def check_trained(chosen: list[str], out: Path, seeds: int = 1) -> None:
    """``--rescore``: refuse, before anything is scored, a chosen experiment (exp3 aside: it is
    assembled again) whose checkpoint is not in ``OUT`` for every seed, naming the folder."""
    for name in chosen:
        for seed in range(seeds):
            folder = best_dir(out, name, seed, seeds)
            if name != "exp3" and not (folder / "config.json").is_file():
                raise VidcolorError(f"--rescore: {name} has no trained checkpoint in {folder}: train it first")


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
    seeds: int = 1,
    reference: str | None = None,
    stabilize: float | None = None,
    rescore: bool = False,
) -> dict[str, Any]:
    """Run the chosen experiments in chain order on one Ray (started here unless one is running),
    trained on `shards` and evaluated on `split` of `test_shards` (default `shards`); returns the
    figures: shards, test_shards, split, out, settings, seeds, reference and ``experiments: {name:
    entry}``. With ``overwrite`` a chosen experiment's earlier folder is deleted just before it is
    redone. With ``seeds`` N > 1 each experiment is trained N times (seeds 0 ... N-1, `run_dir`);
    its entry is `combine_seeds` of theirs, and ``differences`` holds each experiment's paired
    bootstrap interval against ``reference`` (`differences`). With ``stabilize`` (a `--stabilize`
    strength) each experiment also gets a row ``{name}+stab``: the same models scored through the
    temporal filter (`stabilized`). With ``rescore`` nothing trains and Ray does not start: each
    chosen experiment's checkpoint already in ``OUT`` (every seed's) is evaluated again, with the
    configs and validation figures its training recorded (`trained_as`); exp3 is assembled again
    from them."""
    if stabilize is not None:
        stabilize = check_strength(stabilize, "--stabilize")
    out = Path(out).resolve()
    test_shards = test_shards or shards
    chosen = parse_only(only)
    settings = parse_sets(sets)
    common, own = scoped_settings(settings)
    each = {"": common} | {name: {**common, **own.get(name, {})} for name in chosen}
    reference = check_seeds(seeds, common, chosen, reference)
    scoped_seed = next((name for name in chosen if "seed" in own.get(name, {})), None)
    if seeds > 1 and scoped_seed:
        setting = f"{scoped_seed}.seed={own[scoped_seed]['seed']}"
        raise VidcolorError(f"--seeds {seeds} trains seeds 0 ... {seeds - 1}: leave out --set {setting}")
    if rescore:
        check_trained(chosen, out, seeds)
    else:
        check_outputs(chosen, out, overwrite, seeds)
    check_inputs(chosen, out, pretrained, seeds)
    check_shard_sets(chosen, each, shards, test_shards, split)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "shards": shards,
        "test_shards": test_shards,
        "split": split,
        "out": str(out),
        "settings": dict(settings),
        "seeds": seeds,
        "reference": reference,
        "stabilize": stabilize,
        "experiments": {},
    }
    started = False if rescore else init_ray()

    try:
        for name in chosen:
            runs = []
            for seed in range(seeds):
                if not rescore or name == "exp3":  # checked above: new, empty, or an earlier run to replace
                    outdir.empty_folder(run_dir(out, name, seed, seeds))
                runs.append(
                    run_experiment(
                        name,
                        each[name],
                        shards,
                        out,
                        pretrained=pretrained,
                        workers=workers,
                        split=split,
                        test_shards=test_shards,
                        seed=seed,
                        seeds=seeds,
                        rescore=rescore,
                    )
                )
            results["experiments"][name] = runs[0] if seeds == 1 else combine_seeds(runs)
            if stabilize is not None:
                steady = [stabilized(r, test_shards, split, stabilize) for r in runs]
                results["experiments"][f"{name}+stab"] = steady[0] if seeds == 1 else combine_seeds(steady)
    finally:
        if started:
            import ray

            ray.shutdown()
    if seeds > 1:
        results["differences"] = differences(results["experiments"], reference)
    return results


def experiments_table(results: Mapping[str, Any]) -> str:
    """One row per experiment: the means of `COLUMNS` over the split's videos, and its frames; then
    the gray row (ab = 0 on the same videos, `evaluate_model`'s baseline), the reference of RMSE/gray,
    and the ground truth's row (its true ab: the flicker correct colour adds, the scale of +warp and +CDC)."""

    def cells(mean: Mapping[str, Any]) -> list[Any]:  # CDC and warping error are small: significant digits
        return [fmt(mean.get(k), 3, style="g") if k in ("cdc", "warp_error") else mean.get(k) for k, _ in COLUMNS]

    head = ["exp", *(label for _, label in COLUMNS), "frames"]
    rows = [[name, *cells(r["mean"]), r["num_frames"]] for name, r in results["experiments"].items()]
    gray = next((r for r in results["experiments"].values() if r.get("gray")), None)
    footer = [[GRAY, *cells(gray["gray"]["mean"]), gray["num_frames"]]] if gray else []
    true = next((r for r in results["experiments"].values() if r.get("truth")), None)
    footer += [[TRUTH, *cells(true["truth"]["mean"]), true["num_frames"]]] if true else []
    return format_table(head, rows, footer=footer)


def summary(results: Mapping[str, Any]) -> str:
    """What `vidcolor experiments` and bench/real.py print: `experiments_table` (means over the seeds),
    and with several seeds `seeds_table` and `differences_table` with their headings (`seeds_summary`)."""
    return "\n".join([experiments_table(results), *seeds_summary(results)])


def main(args) -> int:
    """``vidcolor experiments --shards DIR --out DIR [--test-shards DIR] [--split S] [--set K=V ...]
    [--pretrained CKPT] [--only ...] [--seeds N] [--reference NAME] [--stabilize [S]] [--json FILE]
    [--overwrite] [--rescore]``."""
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
        rescore=getattr(args, "rescore", False),
        seeds=getattr(args, "seeds", 1),
        reference=getattr(args, "reference", None),
        stabilize=getattr(args, "stabilize", None),
    )
    trained_on = "" if results["test_shards"] == args.shards else f", trained on {args.shards}"
    print(
        f"\nseed experiments on the {results['split']} split of {results['test_shards']}{trained_on} "
        "(RMSE on RGB 0-255; colorful = colorfulness of prediction / ground truth, cf gap = |colorful - 1|; "
        "+CDC, +warp = CDC, warp err over the gray row's - 1, the flicker the color adds):"
    )
    print(summary(results))
    if args.json:
        print(f"wrote {write_json(args.json, results)}")
    return 0
