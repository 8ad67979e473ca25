"""study.tune.reclaim: placement groups left by stopped trials are removed; stalls are reported.

The logic runs here against a fake cluster and a fake clock (no Ray); `test_tune.py` runs it in a
real study where a group that holds a CPU would otherwise stall it."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from study.train.loop import TRAIN_PG_KEY
from study.tune.reclaim import GRACE_S, GroupInfo, PlacementGroupReclaimer


class FakeGroups:
    def __init__(self, groups: dict[str, GroupInfo]):
        self.groups = groups
        self.removed: list[str] = []

    def list(self):
        return [g for g in self.groups.values() if g.state != "REMOVED"]

    def state(self, group_id):
        g = self.groups.get(group_id)
        return g.state if g else "REMOVED"

    def remove(self, group_id):
        self.removed.append(group_id)
        self.groups[group_id].state = "REMOVED"


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _trial(trial_id, status="RUNNING"):
    return SimpleNamespace(trial_id=trial_id, status=status)


def test_a_finished_trials_group_is_removed_after_the_grace_period():
    groups = FakeGroups(
        {
            "pg_a": GroupInfo("pg_a", "CREATED", [{"CPU": 1.0}], []),
            "pg_b": GroupInfo("pg_b", "CREATED", [{"CPU": 1.0}], ["RayTrainWorker"]),
        }
    )
    clock = Clock()
    r = PlacementGroupReclaimer(groups=groups, clock=clock)
    a, b = _trial("a"), _trial("b")
    r.on_trial_result(0, [a, b], a, {TRAIN_PG_KEY: "pg_a", "epoch": 1})
    r.on_trial_result(0, [a, b], b, {TRAIN_PG_KEY: "pg_b", "epoch": 1})
    r.on_trial_complete(0, [a, b], a)  # ASHA stopped a; Train left pg_a CREATED
    clock.t = GRACE_S - 0.1
    r.on_step_end(1, [a, b])
    assert groups.removed == []  # Train's own teardown still has time
    clock.t = GRACE_S + 0.1
    r.on_step_end(2, [a, b])
    assert groups.removed == ["pg_a"] and r.reclaimed == ["pg_a"]  # never b's, which still runs
    clock.t += 100
    r.on_step_end(3, [a, b])
    assert groups.removed == ["pg_a"]  # once


def test_a_group_train_removed_itself_is_left_alone():
    groups = FakeGroups({"pg_a": GroupInfo("pg_a", "REMOVED")})
    clock = Clock()
    r = PlacementGroupReclaimer(groups=groups, clock=clock)
    a = _trial("a")
    r.on_trial_result(0, [a], a, {TRAIN_PG_KEY: "pg_a"})
    r.on_trial_error(0, [a], a)
    clock.t = 60
    r.on_step_end(1, [a])
    assert groups.removed == []


def test_a_stall_is_reported_and_empty_groups_are_swept(caplog):
    groups = FakeGroups(
        {
            "leak": GroupInfo("leak", "CREATED", [{"CPU": 1.0}], []),
            "busy": GroupInfo("busy", "CREATED", [{"CPU": 0.1}], ["ImplicitFunc"]),
            "new": GroupInfo("new", "PENDING", [{"CPU": 1.0}], []),
        }
    )
    clock = Clock()
    r = PlacementGroupReclaimer(stall_after_s=30, orphan_age_s=10, groups=groups, clock=clock)
    trials = [_trial("a", "RUNNING"), _trial("b", "PENDING")]
    clock.t = 29
    r.on_step_end(1, trials)
    assert "no progress" not in caplog.text and groups.removed == []
    with caplog.at_level(logging.WARNING, logger="study.tune.reclaim"):
        clock.t = 31
        r.on_step_end(2, trials)
        assert "no progress for 31 s (trials: 1 pending, 1 running)" in caplog.text
        assert "leak" in caplog.text and "actors none" in caplog.text and "['ImplicitFunc']" in caplog.text
        assert groups.removed == []  # seen empty once: maybe it is being filled right now
        clock.t = 42
        r.on_step_end(3, trials)
    assert groups.removed == ["leak"]  # empty in two sweeps 11 s apart; busy and pending ones kept
    assert "reclaimed placement group leak" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="study.tune.reclaim"):
        clock.t = 42 + 29
        r.on_step_end(4, trials)
    assert "no progress" not in caplog.text  # the freed CPU gets a full period to be used


def test_progress_resets_the_stall_clock():
    groups = FakeGroups({"leak": GroupInfo("leak", "CREATED", [{"CPU": 1.0}], [])})
    clock = Clock()
    r = PlacementGroupReclaimer(stall_after_s=30, orphan_age_s=10, groups=groups, clock=clock)
    a = _trial("a")
    for t in (25, 50, 75, 100):  # a result every 25 s: never a stall
        clock.t = t
        r.on_trial_result(0, [a], a, {"epoch": 1})
        r.on_step_end(0, [a])
    assert groups.removed == []


def test_the_reclaimer_pickles_as_its_settings():
    import pickle

    r = PlacementGroupReclaimer(stall_after_s=12, orphan_age_s=3, groups=FakeGroups({}))
    back = pickle.loads(pickle.dumps(r))
    assert (back.stall_after_s, back.orphan_age_s, back._groups) == (12, 3, None)


def test_stall_sweeps_are_rate_limited():
    """Tune calls on_step_end every step of its loop; the State API is asked a few times per orphan age."""
    groups = FakeGroups({"busy": GroupInfo("busy", "CREATED", [{"CPU": 1.0}], ["ImplicitFunc"])})
    calls = []
    real_list = groups.list
    groups.list = lambda: calls.append(1) or real_list()
    clock = Clock()
    r = PlacementGroupReclaimer(stall_after_s=30, orphan_age_s=10, groups=groups, clock=clock)
    for step in range(200):  # 10 s of steps every 50 ms, all during a stall
        clock.t = 31 + step * 0.05
        r.on_step_end(step, [])
    assert len(calls) == 1 + 2  # the stall report, and sweeps at 31 s and 36 s
