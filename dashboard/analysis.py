"""Study analysis behind the dashboard's charts: Pareto front, edge-of-range warnings, importance.

UI code lives in dashboard/views/; this module holds the logic so it can be tested without
Streamlit. It follows the tuning playbook (google-research/tuning_playbook): plot every
hyperparameter against the objective and warn when the best value sits on the edge of the
searched range (the optimum may lie outside it). Parameter importance uses Optuna's PED-ANOVA on the
study's own Optuna trials when they are in the database, otherwise on a study rebuilt from the
trials table. Optuna is imported lazily (start-up imports stay light).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from study import report
from study.ctt import verdict

log = logging.getLogger(__name__)

pareto_front = report.pareto_front  # the trade-off chart's front (one implementation, in study.report)

#: Metric name fragments -> (label, direction) for the trade-off chart; first match wins.
TRADEOFF_AXES = {
    "rmse": ("RMSE", "min"),
    "colorfulness_gap": ("colorfulness gap", "min"),  # |pred/gt - 1|: washed out and over-saturated are both off
    "temporal": ("temporal instability", "min"),
    "stability": ("temporal instability", "min"),
}


@dataclass(frozen=True)
class EdgeWarning:
    param: str
    best: float
    low: float
    high: float
    side: str  # "low" or "high"

    def message(self) -> str:
        return (
            f"best {self.param} = {self.best:g} sits on the {self.side} edge of the searched range "
            f"[{self.low:g}, {self.high:g}]: the optimum may lie outside it; widen the range"
        )


def edge_of_range(
    trials: pd.DataFrame,
    params: list[str],
    objective: str,
    direction: str = "min",
    ranges: dict[str, tuple[float, float]] | None = None,
    tol: float = 0.05,
    log_params: set[str] | None = None,
    skip: set[str] | None = None,
) -> list[EdgeWarning]:
    """Warnings for numeric hyperparameters whose best trial's value lies within `tol` of an edge.

    `ranges` gives the searched [low, high] per parameter (from the study spec); without it the
    range of values tried is used. `log_params` are measured in log space (learning rates).
    Categorical or constant parameters, and those in `skip` (choices), are skipped.
    """
    df = trials.copy()
    df[objective] = pd.to_numeric(df[objective], errors="coerce")
    df = df.dropna(subset=[objective])
    if df.empty:
        return []
    best = df.loc[df[objective].idxmin() if direction == "min" else df[objective].idxmax()]
    out = []
    for p in params:
        if p not in df.columns or p in (skip or set()):
            continue
        vals = pd.to_numeric(df[p], errors="coerce")
        if vals.isna().all() or not np.issubdtype(vals.dtype, np.number):
            continue
        lo, hi = (ranges or {}).get(p, (float(vals.min()), float(vals.max())))
        b = pd.to_numeric(pd.Series([best[p]]), errors="coerce").iloc[0]
        if pd.isna(b) or not hi > lo:
            continue
        use_log = p in (log_params or set()) and lo > 0
        f = (math.log(b) - math.log(lo)) / (math.log(hi) - math.log(lo)) if use_log else (b - lo) / (hi - lo)
        if f <= tol:
            out.append(EdgeWarning(p, float(b), float(lo), float(hi), "low"))
        elif f >= 1 - tol:
            out.append(EdgeWarning(p, float(b), float(lo), float(hi), "high"))
    return out


def rebuild_optuna_study(trials: pd.DataFrame, params: list[str], objective: str, direction: str = "min"):
    """An in-memory Optuna study made from a trials table (for importance when no Optuna study is stored)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    df = trials.copy()
    df[objective] = pd.to_numeric(df[objective], errors="coerce")
    df = df.dropna(subset=[objective])
    dists = {}
    for p in params:
        vals = df[p].dropna()
        if vals.empty:
            continue
        num = pd.to_numeric(vals, errors="coerce")
        if num.notna().all():
            lo, hi = float(num.min()), float(num.max())
            if hi > lo:
                dists[p] = FloatDistribution(lo, hi)
        else:
            choices = tuple(sorted({str(v) for v in vals}))
            if len(choices) > 1:
                dists[p] = CategoricalDistribution(choices)
    study = optuna.create_study(direction="minimize" if direction == "min" else "maximize")
    for _, row in df.iterrows():
        trial_params = {}
        for p, d in dists.items():
            v = row[p]
            if pd.isna(v):
                break
            trial_params[p] = str(v) if isinstance(d, CategoricalDistribution) else float(v)
        else:
            study.add_trial(
                optuna.trial.create_trial(params=trial_params, distributions=dists, value=float(row[objective]))
            )
    return study


def param_importance(trials: pd.DataFrame, params: list[str], objective: str, direction: str = "min") -> pd.Series:
    """PED-ANOVA importances (Optuna's default evaluator; no scikit-learn needed) of `params` for
    `objective`; empty when too few trials."""
    import optuna

    study = rebuild_optuna_study(trials, params, objective, direction)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2 or not complete[0].distributions:
        return pd.Series(dtype=float)
    imp = optuna.importance.get_param_importances(study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    return pd.Series(imp, dtype=float).sort_values(ascending=False)


#: Preferred metric names per trade-off axis (study/metrics.py), then any name with the fragment.
TRADEOFF_PREFERRED = {
    "RMSE": ("rmse_rgb", "rmse"),
    "colorfulness gap": ("colorfulness_gap",),
    "temporal instability": ("temporal_error", "temporal"),
}


def tradeoff_columns(columns: list[str]) -> dict[str, tuple[str, str]]:
    """Pick the metric columns for RMSE / colorfulness / temporal instability: {column: (label, dir)}."""
    found: dict[str, tuple[str, str]] = {}
    labels = set()
    for frag, (label, direction) in TRADEOFF_AXES.items():
        if label in labels:
            continue
        cands = [c for c in columns if frag in c.lower()]
        if not cands:
            continue
        prefs = TRADEOFF_PREFERRED.get(label, ())

        def rank(c: str, prefs: tuple = prefs) -> tuple:
            low = c.lower()
            exact = next((i for i, p in enumerate(prefs) if low.endswith(p)), len(prefs))
            # the prediction's own value, not a gap or ratio to the truth, nor the ab-only RMSE
            derived = any(t in low for t in ("_ab", "_gt", "gap", "ratio", "delta", "diff"))
            return (exact, derived, len(c))

        best = min(cands, key=rank)
        found[best] = (label, direction)
        labels.add(label)
    return found


def stored_optuna_importance(store, study_name: str) -> pd.Series | None:
    """PED-ANOVA importances from the Optuna study kept in the same database, or None when there is
    no such study (or too few complete trials). Parameter names lose Tune's `train_loop_config/`."""
    from sqlalchemy import inspect

    if not inspect(store.engine).has_table("studies"):
        return None
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=store.optuna_storage_url)
    except KeyError:
        return None
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2 or len(study.directions) != 1:
        return None
    try:
        imp = optuna.importance.get_param_importances(study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    except (ValueError, RuntimeError) as exc:
        log.info("optuna importance of %s failed: %s", study_name, exc)
        return None
    return pd.Series({f"param_{k.split('/')[-1]}": v for k, v in imp.items()}, dtype=float)


# -- trials that differ only by the seed ------------------------------------------------------------

#: the searched seed's column (`[search.seed]` in a spec); a fixed seed sits in the trial's config
SEED_PARAM = "param_seed"


def trial_seed(row: pd.Series):
    """A trial's seed: its searched `param_seed`, else its config's (``train.seed`` as the tune driver
    records it, or a top-level ``seed``), else None."""
    if SEED_PARAM in row and not _missing(row[SEED_PARAM]):
        return row[SEED_PARAM]
    config = row.get("config")
    if isinstance(config, dict):
        train = config.get("train")
        if isinstance(train, dict) and train.get("seed") is not None:
            return train["seed"]
        return config.get("seed")
    return None


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _key(value):
    """A hashable, NaN-safe stand-in for one hyperparameter value (lists and dicts by their repr)."""
    if _missing(value):
        return None
    return value if isinstance(value, (str, int, float, bool, np.number)) else repr(value)


def seed_groups(trials: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per configuration: the trials whose experiment and hyperparameters (`param_*` columns)
    are equal but for the seed (`param_seed`), in the order of each configuration's first trial.

    Columns: experiment, the hyperparameters but the seed, ``n`` (its trials), for each of `metrics`
    its mean over the trials that report it and ``<metric>_sd``, their sample standard deviation
    (n - 1; NaN under two values), then ``seeds`` (the trials' seeds, `trial_seed`, in trial order),
    ``trials`` (their ids) and ``status`` (how many ended how, e.g. "TERMINATED×2, ERROR×1")."""
    params = [c for c in trials.columns if c.startswith("param_") and c != SEED_PARAM]
    by = [c for c in ("experiment", *params) if c in trials.columns]
    rows: dict[tuple, list] = {}
    for idx, row in trials.iterrows():
        rows.setdefault(tuple(_key(row[c]) for c in by), []).append(idx)
    out = []
    for members in rows.values():
        group = trials.loc[members]
        first = group.iloc[0]
        rec = {c: first[c] for c in by}
        statuses = group["status"].value_counts(sort=False) if "status" in group else pd.Series(dtype=int)
        rec.update(
            n=len(group),
            seeds=", ".join("?" if _missing(s) else f"{s}" for s in (trial_seed(r) for _, r in group.iterrows())),
            trials=", ".join(str(t) for t in group["trial_id"]),
            status=", ".join(f"{s}×{k}" for s, k in statuses.items()),
        )
        for m in metrics:
            values = pd.to_numeric(group[m], errors="coerce").dropna() if m in group else pd.Series(dtype=float)
            rec[m] = float(values.mean()) if len(values) else math.nan
            rec[f"{m}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        out.append(rec)
    columns = [*by, "n", *(c for m in metrics for c in (m, f"{m}_sd")), "seeds", "trials", "status"]
    return pd.DataFrame(out, columns=columns)


# -- the human verdict ----------------------------------------------------------------------------------

#: a verdict score -> its columns in `study.ctt.stats.aggregate`: (score, 95% low, 95% high, votes)
VERDICT_COLUMNS = verdict.AGGREGATE_COLUMNS


def verdict_scores(agg: pd.DataFrame, score: str, min_votes: int = 1) -> pd.DataFrame:
    """Per trial, from `study.ctt.stats.aggregate(votes, by="trial", ...)` (the table the CTT results
    page draws): trial_id, score, low, high (its 95% interval: Wilson for the fooling rate, t for the
    mean rating), votes (2AFC votes or ratings) and counted (votes >= `min_votes`); trials without
    such votes left out. `study.ctt.verdict.trial_scores`' own function, so the page and `vidcolor
    tune` cannot drift apart (the hyperparameters page calls `trial_scores` itself)."""
    return verdict.from_aggregate(agg, score, min_votes)
