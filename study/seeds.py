"""Several seeds of one experiment (``vidcolor experiments --seeds N``): combined and compared.

Small budgets are noisy (the seed alone moves RMSE/gray by about 0.06), so each experiment is
trained N times; `combine_seeds` makes one entry of their figures (mean and sd over the seeds,
each video's mean over the seeds), `differences` compares each experiment with the reference by
the paired bootstrap (`paired_bootstrap`: videos resampled, each video's value the mean over the
seeds), and `seeds_table`, `differences_table` and `seeds_summary` print them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from study.config.metric_names import METRICS
from study.evaluation.evaluate import GRAY, TRUTH
from study.report import MISSING, fmt, format_table

#: what --seeds N reports as mean ± sd over the seeds and as a difference to the reference
HEADLINE = (
    ("rmse_rgb", "RMSE"),
    ("rmse_ratio", "RMSE/gray"),
    ("colorfulness_ratio", "colorful"),
    ("colorfulness_gap", "cf gap"),
    ("added_warp", "+warp"),
    ("added_cdc", "+CDC"),
)
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # fixed: the same figures give the same intervals


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = 0.95,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float]:
    """(mean of a - b, low, high): the paired bootstrap percentile interval at ``level`` of the mean
    difference of two experiments' per-video values (a[i], b[i] of the same video i). Videos are
    resampled with replacement ``resamples`` times (numpy's generator seeded with ``seed``: the same
    input gives the same interval). Pairs with a NaN are left out; none left gives NaN three times."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return math.nan, math.nan, math.nan
    picks = np.random.default_rng(seed).integers(0, d.size, size=(resamples, d.size))
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(d[picks].mean(axis=1), [tail, 1.0 - tail])
    return float(d.mean()), float(low), float(high)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _mean_sd(values: Sequence[Any]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1) of the finite numbers (NaN for none; sd 0 for one)."""
    x = np.array([v for v in values if _number(v) and math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    return float(x.mean()), (float(x.std(ddof=1)) if x.size > 1 else 0.0)


def combine_seeds(runs: list[Mapping[str, Any]]) -> dict[str, Any]:
    """One experiment's entry from its seeds' entries (`run_experiment`, in seed order): ``mean`` and
    ``sd`` over the seeds of each seed's mean of every metric; ``videos``: each video's mean over the
    seeds; ``val``: each validation figure's mean over the seeds (None for exp3); ``checkpoint``,
    ``config``, ``train`` and ``gray`` (the same frames for every seed): seed 0's; ``seeds``: the
    seeds' own entries."""
    first = runs[0]
    stats = {k: _mean_sd([r["mean"].get(k) for r in runs]) for k in METRICS}
    videos = []
    for row in first["videos"]:
        same = [next((v for v in r["videos"] if v["video_id"] == row["video_id"]), {}) for r in runs]
        videos.append({**row, **{k: _mean_sd([v.get(k) for v in same])[0] for k in METRICS}})
    vals = [r["val"] for r in runs if r.get("val")]
    val = {k: _mean_sd([v.get(k) for v in vals])[0] if _number(x) else x for k, x in vals[0].items()} if vals else None
    return {
        "checkpoint": first["checkpoint"],
        "config": first["config"],
        "train": first["train"],
        "mean": {k: m for k, (m, _) in stats.items()},
        "sd": {k: sd for k, (_, sd) in stats.items()},
        "videos": videos,
        "num_frames": first["num_frames"],
        "gray": first.get("gray"),
        "truth": first.get("truth"),
        "val": val,
        "seconds": sum(r["seconds"] for r in runs),
        "seeds": list(runs),
    }


def differences(experiments: Mapping[str, Mapping[str, Any]], reference: str) -> dict[str, dict[str, Any]]:
    """For each experiment but ``reference`` and each `HEADLINE` metric: {diff, low, high, videos,
    excludes_zero}, the `paired_bootstrap` of its per-video values (each a mean over the seeds)
    against the reference's on the same videos."""
    ref = {v["video_id"]: v for v in experiments[reference]["videos"]}
    out: dict[str, dict[str, Any]] = {}
    for name, entry in experiments.items():
        if name == reference:
            continue
        rows = [(v, ref[v["video_id"]]) for v in entry["videos"] if v["video_id"] in ref]
        out[name] = {}
        for key, _ in HEADLINE:
            a = np.array([v.get(key, math.nan) for v, _ in rows], dtype=np.float64)
            b = np.array([r.get(key, math.nan) for _, r in rows], dtype=np.float64)
            diff, low, high = paired_bootstrap(a, b)
            n = int(np.isfinite(a - b).sum())
            out[name][key] = {"diff": diff, "low": low, "high": high, "videos": n, "excludes_zero": low > 0 or high < 0}
    return out


def seeds_table(results: Mapping[str, Any]) -> str:
    """One row per experiment: ``mean ± sd`` over the seeds of each `HEADLINE` metric, then the gray
    row and the ground truth's (its own added flicker: the scale of +warp and +CDC)."""

    def cell(mean: Mapping[str, Any], sd: Mapping[str, Any], key: str) -> str:
        m, d = fmt(mean.get(key)), fmt(sd.get(key))
        return m if MISSING in (m, d) else f"{m} ± {d}"

    head = ["exp", "seeds", *(label for _, label in HEADLINE)]
    rows = [
        [name, len(e.get("seeds", [e])), *(cell(e["mean"], e.get("sd", {}), k) for k, _ in HEADLINE)]
        for name, e in results["experiments"].items()
    ]
    gray = next((e for e in results["experiments"].values() if e.get("gray")), None)
    footer = [[GRAY, None, *(cell(gray["gray"]["mean"], {}, k) for k, _ in HEADLINE)]] if gray else []
    true = next((e for e in results["experiments"].values() if e.get("truth")), None)
    footer += [[TRUTH, None, *(cell(true["truth"]["mean"], {}, k) for k, _ in HEADLINE)]] if true else []
    return format_table(head, rows, footer=footer)


def differences_table(results: Mapping[str, Any]) -> str:
    """One row per experiment and `HEADLINE` metric: its difference to the reference, the 95%
    interval, and ``*`` where the interval excludes 0."""
    labels = dict(HEADLINE)

    def interval(d: Mapping[str, Any]) -> str:
        return MISSING if math.isnan(d["low"]) else f"[{fmt(d['low'])}, {fmt(d['high'])}]"

    rows = [
        [name, labels[key], d["diff"], interval(d), "*" if d["excludes_zero"] else ""]
        for name, per in results.get("differences", {}).items()
        for key, d in per.items()
    ]
    return format_table(["exp", "metric", "difference", "95% interval", ""], rows)


def seeds_summary(results: Mapping[str, Any]) -> list[str]:
    """With several seeds, the parts `vidcolor experiments` prints after its table: `seeds_table` and
    `differences_table` with their headings; nothing for one seed."""
    seeds = int(results.get("seeds", 1))
    if seeds <= 1:
        return []
    n = len(next(iter(results["experiments"].values()))["videos"]) if results["experiments"] else 0
    return [
        f"\nmean ± sd over {seeds} seeds (0 ... {seeds - 1}):",
        seeds_table(results),
        f"\ndifference to {results['reference']}: exp - {results['reference']} on each video (its mean over the "
        f"seeds), averaged over the {n} videos;\n95% interval: paired bootstrap, {BOOTSTRAP_RESAMPLES} resamples "
        "of the videos; * = the interval excludes 0",
        differences_table(results),
    ]
