"""Optuna's storage of a study (the results database), pickled without the database password.

``OptunaSearch`` pickles its Optuna study, storage included, into Tune's experiment state under
``--storage``; Optuna's ``RDBStorage`` pickles its URL as it is. ``StudyRDBStorage`` pickles the
shareable URL of ``study.tune.secrets`` instead and gets the real one back from the driver process
when it is unpickled there (a restored study, on ``--resume``).
"""

from __future__ import annotations

from typing import Any

import optuna

from study.tune.secrets import remember, resolve, shareable


class StudyRDBStorage(optuna.storages.RDBStorage):
    """``RDBStorage`` whose pickled state holds the URL with its password masked."""

    def __init__(self, url: str, **kwargs: Any):
        remember(url)
        super().__init__(url, **kwargs)

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state["url"] = shareable(state["url"])
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__({**state, "url": resolve(state["url"])})


def study_storage(url: str) -> StudyRDBStorage:
    """The Optuna storage in the results database at ``url`` (SQLite waits up to 30 s for a lock)."""
    kwargs = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}
    return StudyRDBStorage(url, engine_kwargs=kwargs)
