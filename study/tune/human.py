"""The human verdict in the search: a multi-objective round that continues a study once CTT votes are in.

A spec with a ``[human]`` table (``study.config.spec.HumanObjective``) does not start a study; it
continues one that has run and whose trials' clips have collected Color Turing Test votes:

1. Every finished trial of the study (any earlier round) with an objective value and at least
   ``min_votes`` votes becomes a COMPLETE trial of a two-objective Optuna study named
   ``NAME-human`` in the results database: ``[objective]`` in its direction, and the human score
   (``study.ctt.verdict``) maximized. Finished trials still waiting for votes enter as RUNNING, so
   the sampler does not propose their neighbourhood again. The Optuna study is rebuilt from the
   store on each round: votes keep coming in and change a trial's score, and an Optuna trial's
   values cannot change once it is complete.
2. Optuna's multi-objective TPE (or the random sampler) proposes ``num_trials`` configurations.
3. ``study.tune.runner`` trains them as one Tune experiment (``NAME-human-<time>``), with no early
   stopping: ASHA would stop trials on the objective alone, before the humans have seen them.
4. Their clips then need votes (``vidcolor ctt build``, a campaign); the next round counts them.

The Pareto front of the two objectives is what the hyperparameters page and ``vidcolor tune`` show.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any

import pandas as pd

from models.errors import VidcolorError
from study.config.spec import StudySpec
from study.report import trials_front
from study.tune.sampler import optuna_sampler  # the single-objective study's sampler, same settings

log = logging.getLogger(__name__)

FINISHED = ("TERMINATED", "STOPPED")
#: the Tune experiment of a human round: NAME + this + a UTC time stamp
ROUND_MARK = "-human-"


def optuna_name(study: str) -> str:
    """The multi-objective Optuna study of ``study``'s human rounds."""
    return f"{study}-human"


@dataclass
class HumanRound:
    """What a round starts from: the configurations to train, and how many trials they were sampled
    from (with votes) or kept away from (waiting for votes)."""

    points: list[dict[str, Any]]
    scored: int
    waiting: int


def verdict_table(store, spec: StudySpec) -> pd.DataFrame:
    """The study's finished trials with their objective and human score (NaN until `min_votes`),
    the votes behind it and whether it is on the Pareto front of the two (trials that ran to the
    end only)."""
    from study.ctt.verdict import trial_scores

    human = _human(spec)
    trials = store.trials(spec.name)
    if trials.empty:
        raise VidcolorError(
            f"[human]: study {spec.name!r} has no trials in {store.display_url}; a human round "
            "continues a study: run it first without [human], then collect CTT votes"
        )
    done = trials[trials["status"].isin(FINISHED) & trials["objective"].notna()].copy()
    scores = trial_scores(store, spec.name, human.score, human.campaign, human.min_votes).set_index("trial_id")
    done["votes"] = done["trial_id"].map(scores["votes"]).fillna(0).astype(int)
    counted = done["trial_id"].isin(scores.index[scores["counted"]])
    done["score"] = done["trial_id"].map(scores["score"]).where(counted)
    done["counted"] = counted
    # a trial ASHA stopped in the first run keeps its votes and teaches the sampler, but is never on the front
    done["pareto"] = trials_front(done, {"objective": spec.objective.mode, "score": "max"})
    return done.reset_index(drop=True)


def plan_round(store, spec: StudySpec) -> HumanRound:
    """Rebuild the study's multi-objective Optuna study from the store and sample the round's
    ``num_trials`` configurations (see the module docstring). Refuses a study with no trial that
    has enough votes: the sampler would have nothing to learn from."""
    human = _human(spec)
    if store.get_study(spec.name) is None:
        raise VidcolorError(
            f"[human]: study {spec.name!r} is not in {store.display_url}; a human round continues "
            "a study: run it first without [human], then collect CTT votes on its trials"
        )
    table = verdict_table(store, spec)
    if not table["counted"].any():
        most = int(table["votes"].max()) if len(table) else 0
        raise VidcolorError(
            f"[human]: no finished trial of study {spec.name!r} has {human.min_votes} {_vote_word(human.score)}"
            f"{' in campaign ' + repr(human.campaign) if human.campaign else ''} yet (the most any has is {most}); "
            "build its CTT items (vidcolor ctt build), collect votes, then run this round again"
        )
    study, distributions = rebuild(store, spec, table)
    points = [dict(study.ask(distributions).params) for _ in range(spec.num_trials)]
    return HumanRound(points=points, scored=int(table["counted"].sum()), waiting=int((~table["counted"]).sum()))


def rebuild(store, spec: StudySpec, table: pd.DataFrame | None = None):
    """The study's two-objective Optuna study, made again from the store's trials and votes
    (`table`, default `verdict_table`); returns it and the search space's Optuna distributions."""
    import optuna
    from optuna.trial import TrialState, create_trial
    from ray.tune.search.optuna import OptunaSearch

    human = _human(spec)
    table = verdict_table(store, spec) if table is None else table
    distributions = OptunaSearch.convert_search_space(spec.param_space())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _storage(store)
    name = optuna_name(spec.name)
    try:
        optuna.delete_study(study_name=name, storage=storage)
    except KeyError:
        pass
    directions = ["minimize" if spec.objective.mode == "min" else "maximize", "maximize"]
    study = optuna.create_study(study_name=name, storage=storage, directions=directions, sampler=optuna_sampler(spec))
    with warnings.catch_warnings():  # "experimental" since Optuna 3.2; optuna-dashboard shows the names
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([spec.objective.metric, human.score])
    skipped = []
    for _, row in table.iterrows():
        params = _params(row, spec)
        if params is None:
            skipped.append(str(row["trial_id"]))
            continue
        attrs = {"trial_id": str(row["trial_id"]), "votes": int(row["votes"])}
        if row["counted"]:
            trial = create_trial(
                params=params,
                distributions=distributions,
                user_attrs=attrs,
                values=[float(row["objective"]), float(row["score"])],
            )
        else:  # trained, waiting for votes: the constant liar keeps the sampler away from it
            trial = create_trial(state=TrialState.RUNNING, params=params, distributions=distributions, user_attrs=attrs)
        study.add_trial(trial)
    if skipped:
        log.warning(
            "[human]: %d trial(s) lie outside the spec's search space and are left out: %s",
            len(skipped),
            ", ".join(skipped),
        )
    return study, distributions


def _human(spec: StudySpec):
    if spec.human is None:
        raise VidcolorError(f"{spec.source}: no [human] table: the study has one objective")
    return spec.human


def _vote_word(score: str) -> str:
    return {"fool_rate": "2AFC votes", "mean_rating": "ratings", "bt_score": "pairwise comparisons"}[score]


def _storage(store):
    from study.tune.optuna_storage import study_storage

    return study_storage(store.optuna_storage_url)


def _params(row: pd.Series, spec: StudySpec) -> dict[str, Any] | None:
    """The trial's searched values as the spec's types, or None when one is missing or outside the space."""
    out: dict[str, Any] = {}
    for p in spec.search:
        value = row.get(f"param_{p.name}")
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        if p.type == "choice":
            match = [c for c in p.choices if c == value or str(c) == str(value)]
            if not match:
                return None
            value = match[0]
        else:
            value = int(round(float(value))) if p.type == "int" else float(value)
        if not p.contains(value):
            return None
        out[p.name] = value
    return out
