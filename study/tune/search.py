"""The searcher of a multi-objective study: Ray Tune's ``OptunaSearch``, except that a trial ASHA
stopped enters Optuna's study as PRUNED instead of COMPLETE.

OptunaSearch tells Optuna every finished trial's last reported values. A trial stopped after one
epoch has not learnt to colour yet, and its sepia does not flicker: as a COMPLETE trial it would sit
on Optuna's own Pareto front (``optuna-dashboard``, ``study.best_trials``) and pull the
multi-objective sampler towards it. Told PRUNED, it counts as a poor trial, as ASHA judged it. (A
single-objective study keeps OptunaSearch as it is: Optuna prunes it from the intermediate values
OptunaSearch reports every epoch.) Imports Ray: imported when a study starts.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search.optuna import OptunaSearch

from study.tune.trial import finished_status


class StudySearch(OptunaSearch):
    """``OptunaSearch(..., max_t=EPOCHS)``: a trial that completes before ``max_t`` epochs (stopped
    by ASHA) is PRUNED in Optuna's study; one that ran every epoch is COMPLETE with its values."""

    def __init__(self, *args: Any, max_t: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._max_t = max_t

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if result and not error and finished_status(result, self._max_t) == "STOPPED":
            result = None  # OptunaSearch tells Optuna a trial with no values and no error as PRUNED
        super().on_trial_complete(trial_id, result, error)
