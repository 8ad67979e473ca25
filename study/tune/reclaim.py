"""Placement groups a stopped trial's Ray Train run leaves behind: reclaim them; and say so when a
study stalls.

Ray Train V2 reserves each run's workers in a placement group of its own. When Tune stops a trial
(ASHA) it kills the trial's driver, and with it the Train controller; the group is then removed
only by Train's detached cleaner, which watches the controller through the State API. That cleaner
is stopped as soon as the controller starts aborting, so a controller killed mid-abort leaves its
group CREATED for good (ray-project/ray#54305): its CPUs stay reserved, the next trial's workers
wait for them, and the study hangs (seen: one demo run in five, on 2 CPUs).

``PlacementGroupReclaimer`` is a Tune callback in the study's driver process that fixes that in two
ways:

1. **Known groups.** Rank 0 of every Train run reports the id of the group it runs in
   (``TRAIN_PG_KEY`` in its metrics). A few seconds after a trial completes, errors or is retried,
   each group it reported that still exists is removed. (When the whole study ends, Ray removes
   what is left with the job.)
2. **Stalls.** When no trial has reported, started or ended for ``stall_after_s``, it logs what
   holds the cluster's resources (every placement group of this job: state, bundles, owning trial,
   live actors in it) and removes groups of this job that hold no live actor in two sweeps at
   least ``orphan_age_s`` apart (a group being filled has its actors within seconds). The warning
   repeats every ``stall_after_s`` while the study makes no progress.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ray import tune

from study.train.loop import TRAIN_PG_KEY  # the metric in which rank 0 reports its group's id (hex)

log = logging.getLogger(__name__)

GRACE_S = 5.0  # Train's own teardown gets this long to remove a finished trial's group
REMOVED = "REMOVED"


@dataclass
class GroupInfo:
    """One placement group as the reclaimer sees it."""

    id: str
    state: str  # CREATED | PENDING | RESCHEDULING | REMOVED
    bundles: list[dict[str, float]] = field(default_factory=list)
    live_actors: list[str] = field(default_factory=list)  # class names of actors not DEAD in it


class RayGroups:
    """The cluster side: list this job's placement groups, remove one (public Ray APIs only)."""

    def list(self) -> list[GroupInfo]:
        import ray
        from ray.util.state import list_actors, list_placement_groups

        context = ray.get_runtime_context()
        job = context.get_job_id()
        # this driver's own cluster: without an address the state API searches the host and refuses
        # when it finds more than one Ray (a second study, a benchmark), or finds none off-host
        address = context.gcs_address
        groups = [
            g
            for g in list_placement_groups(address=address, detail=True, limit=10_000, raise_on_missing_output=False)
            if g.creator_job_id == job
        ]
        actors: dict[str, list[str]] = {}
        for a in list_actors(address=address, detail=True, limit=10_000, raise_on_missing_output=False):
            if a.placement_group_id and a.state != "DEAD":
                actors.setdefault(a.placement_group_id, []).append(a.class_name)
        return [
            GroupInfo(
                g.placement_group_id,
                g.state,
                [dict(b.get("unit_resources") or {}) for b in (g.bundles or [])],
                actors.get(g.placement_group_id, []),
            )
            for g in groups
        ]

    def state(self, group_id: str) -> str:
        from ray.util.placement_group import placement_group_table

        return str((placement_group_table().get(group_id) or {}).get("state", REMOVED))

    def remove(self, group_id: str) -> None:
        import ray
        from ray.util.placement_group import PlacementGroup, remove_placement_group

        remove_placement_group(PlacementGroup(ray.PlacementGroupID.from_hex(group_id)))


class PlacementGroupReclaimer(tune.Callback):
    """Tune callback: removes the placement groups stopped trials leave behind; reports stalls."""

    def __init__(
        self,
        stall_after_s: float = 300.0,
        orphan_age_s: float = 10.0,
        groups: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stall_after_s, self.orphan_age_s = stall_after_s, orphan_age_s
        self._groups, self._clock = groups, clock
        self._owner: dict[str, str] = {}  # group id -> trial id that reported it
        self._due: dict[str, float] = {}  # group id -> when to remove it if it still exists
        self._suspects: dict[str, float] = {}  # group id -> when a stall sweep first saw it empty
        self._progress = clock()
        self._last_warning = 0.0
        self._last_sweep = float("-inf")
        self.reclaimed: list[str] = []

    def __getstate__(self):  # Tune saves its callbacks with the experiment: keep only the settings
        return {"stall_after_s": self.stall_after_s, "orphan_age_s": self.orphan_age_s}

    def __setstate__(self, state):
        self.__init__(**state)

    @property
    def groups(self):
        if self._groups is None:
            self._groups = RayGroups()
        return self._groups

    # -- Tune's events -------------------------------------------------------------------------

    def on_trial_start(self, iteration, trials, trial, **info):
        self._progress = self._clock()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._progress = self._clock()
        group = result.get(TRAIN_PG_KEY)
        if isinstance(group, str) and group:
            self._owner[group] = trial.trial_id

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial.trial_id)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._finish(trial.trial_id)  # the retry reserves a group of its own

    def on_step_end(self, iteration, trials, **info):
        now = self._clock()
        self._reclaim_due(now)
        if now - self._progress >= self.stall_after_s and now - self._last_warning >= self.stall_after_s:
            self._last_warning = now
            self._report_stall(trials, now)
        # Tune calls this every step of its loop: the State API sweep runs a few times per orphan_age_s
        if now - self._progress >= self.stall_after_s and now - self._last_sweep >= self.orphan_age_s / 2:
            self._last_sweep = now
            self._sweep_orphans(now)

    # -- the work ------------------------------------------------------------------------------

    def _finish(self, trial_id: str) -> None:
        self._progress = self._clock()
        for group, owner in self._owner.items():
            if owner == trial_id:
                self._due.setdefault(group, self._clock() + GRACE_S)

    def _reclaim_due(self, now: float) -> None:
        for group, when in list(self._due.items()):
            if when > now:
                continue
            del self._due[group]
            try:
                if self.groups.state(group) != REMOVED:
                    self._remove(group, f"of finished trial {self._owner.get(group, '?')}")
            except Exception as exc:
                log.warning("could not check or remove placement group %s: %s", group, exc)

    def _remove(self, group: str, why: str) -> None:
        self.groups.remove(group)
        self.reclaimed.append(group)
        log.warning("reclaimed placement group %s %s: Ray Train left it reserved (ray-project/ray#54305)", group, why)

    def _report_stall(self, trials: Iterable, now: float) -> None:
        try:
            groups = self.groups.list()
        except Exception as exc:
            groups, error = [], f" (placement groups unavailable: {exc})"
        else:
            error = ""
        states: dict[str, int] = {}
        for t in trials:
            states[t.status] = states.get(t.status, 0) + 1
        lines = [
            f"  {g.id[:12]} {g.state:<9} bundles {g.bundles} trial {self._owner.get(g.id, '-')} "
            f"actors {g.live_actors or 'none'}"
            for g in groups
            if g.state != REMOVED
        ]
        log.warning(
            "the study has made no progress for %.0f s (trials: %s)%s; placement groups of this job:\n%s",
            now - self._progress,
            ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())),
            error,
            "\n".join(lines) or "  none",
        )

    def _sweep_orphans(self, now: float) -> None:
        try:
            groups = self.groups.list()
        except Exception as exc:
            log.debug("orphan sweep skipped: %s", exc)
            return
        empty = {g.id for g in groups if g.state == "CREATED" and not g.live_actors}
        self._suspects = {g: t for g, t in self._suspects.items() if g in empty}
        for group in sorted(empty):
            first = self._suspects.setdefault(group, now)
            if now - first >= self.orphan_age_s:
                del self._suspects[group]
                try:
                    self._remove(group, "holding resources with no live actor while the study stalled")
                except Exception as exc:
                    log.warning("could not remove placement group %s: %s", group, exc)
                else:
                    self._progress = now  # the freed resources get a full period to be used
