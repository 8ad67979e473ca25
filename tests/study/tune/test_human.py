"""The human verdict in the search: the [human] spec table, per-trial CTT scores by hand, the
two-objective Optuna study rebuilt from the store (values, waiting trials, Pareto front), the
refusals, and a round on the session's Ray cluster that continues a study and resumes."""

from __future__ import annotations

import random
import textwrap

import pytest

from models.errors import VidcolorError
from study.config.spec import parse_spec
from study.ctt.verdict import trial_scores
from study.store import Store

SPEC = """
name = "hum"
preset = "exp2"
num_trials = {trials}
max_concurrent = 1
media_clips = 0
[fixed]
size = "tiny"
epochs = 1
steps_per_epoch = 2
batch_size = 2
val_batches = 1
val_batch_size = 2
[search.lr]
type = "float"
low = 1e-4
high = 1e-2
log = true
[search.grid]
type = "choice"
choices = [10, 20]
[objective]
metric = "val_rmse_rgb"
mode = "min"
[sampler]
kind = "tpe"
seed = 0
n_startup_trials = 1
"""
HUMAN = """
[human]
score = "{score}"
min_votes = {min_votes}
"""

#: round one, made by hand: trial -> (lr, grid, objective, 2AFC votes, fooled)
ROUND_ONE = {
    "r1_a": (1e-3, 10, 10.0, 4, 3),
    "r1_b": (3e-3, 20, 12.0, 4, 1),
    "r1_c": (5e-4, 10, 8.0, 4, 2),
    "r1_d": (2e-3, 20, 9.0, 1, 1),
}


def spec(trials: int = 2, score: str = "fool_rate", min_votes: int = 3, human: bool = True):
    import tomllib

    text = SPEC.format(trials=trials) + (HUMAN.format(score=score, min_votes=min_votes) if human else "")
    return parse_spec(tomllib.loads(textwrap.dedent(text)), source="hum.toml")


def vote(store: Store, trial_id: str, votes: int, fooled: int, tmp_path, *, rater: str = "") -> None:
    """`votes` 2AFC votes by distinct raters on one item of `trial_id`, `fooled` of them picking the fake."""
    (uid,) = store.add_ctt_items(
        "hum",
        [
            {
                "real_path": str(tmp_path / "r.mp4"),
                "fake_path": str(tmp_path / "f.mp4"),
                "trial_id": trial_id,
                "video_id": "v",
                "clip": 0,
            }
        ],
    )
    for k in range(votes):
        rid = store.add_rater(f"{rater}{trial_id}-{k}")
        store.record_vote(rid, uid, choice="left", picked_real=k >= fooled)


def round_one(tmp_path, with_votes: bool = True) -> Store:
    """A study of four finished trials (params inside SPEC's space) and, optionally, their votes."""
    store = Store(f"sqlite:///{tmp_path}/results.db")
    store.create_study("hum", objective="val_rmse_rgb", mode="min", spec=spec(human=False).to_record())
    for tid, (lr, grid, objective, votes, fooled) in ROUND_ONE.items():
        store.upsert_trial("hum", tid, experiment="exp2", params={"lr": lr, "grid": grid}, status="RUNNING")
        store.log_epoch("hum", tid, 1, {"epoch": 1, "val_rmse_rgb": objective})
        store.finish_trial("hum", tid, "TERMINATED")
        if with_votes:
            vote(store, tid, votes, fooled, tmp_path)
    return store


def test_the_human_table_parses_and_its_errors_name_the_field():
    s = spec(score="bt_score", min_votes=5)
    assert (s.human.score, s.human.min_votes, s.human.campaign) == ("bt_score", 5, None)
    assert spec(human=False).human is None
    assert s.to_record()["human"] == {"score": "bt_score", "campaign": None, "min_votes": 5}
    with pytest.raises(VidcolorError, match=r"hum.toml: field human.score: .*fool_rate"):
        spec(score="fooling")
    with pytest.raises(VidcolorError, match=r"field human.min_votes: .*>= 1"):
        spec(min_votes=0)


def test_fool_rate_and_mean_rating_by_hand(tmp_path):
    store = round_one(tmp_path)
    scores = trial_scores(store, "hum", "fool_rate", min_votes=3).set_index("trial_id")
    assert scores.loc["r1_a", "score"] == pytest.approx(3 / 4) and scores.loc["r1_b", "score"] == pytest.approx(1 / 4)
    assert scores.loc["r1_c", "score"] == pytest.approx(2 / 4)
    assert scores["votes"].to_dict() == {"r1_a": 4, "r1_b": 4, "r1_c": 4, "r1_d": 1}
    assert scores["counted"].to_dict() == {"r1_a": True, "r1_b": True, "r1_c": True, "r1_d": False}
    assert (scores["low"] <= scores["score"]).all() and (scores["score"] <= scores["high"]).all()

    # a rater who fails an attention check is left out: their fooled vote on r1_b no longer counts
    (att,) = store.add_ctt_items("hum", [{"real_path": "r", "fake_path": "f", "trial_id": None, "is_attention": True}])
    (extra,) = store.add_ctt_items("hum", [{"real_path": "r", "fake_path": "f", "trial_id": "r1_b"}])
    cheat = store.add_rater("cheat")
    store.record_vote(cheat, extra, choice="left", picked_real=False)
    store.record_vote(cheat, att, choice="right", picked_real=False)  # took the wild recoloring for real
    assert trial_scores(store, "hum").set_index("trial_id").loc["r1_b", "score"] == pytest.approx(1 / 4)

    (item,) = store.add_ctt_items("hum", [{"real_path": "r", "fake_path": "f", "trial_id": "r1_c"}])
    for k, rating in enumerate((2, 5, 5)):
        store.record_vote(store.add_rater(f"rate{k}"), item, rating=rating, mode="rating")
    rated = trial_scores(store, "hum", "mean_rating", min_votes=3).set_index("trial_id")
    assert rated.loc["r1_c", "score"] == pytest.approx(4.0) and list(rated.index) == ["r1_c"]
    with pytest.raises(VidcolorError, match="human score 'median'"):
        trial_scores(store, "hum", "median")


def test_bt_score_from_a_pairwise_campaign(tmp_path):
    store = round_one(tmp_path, with_votes=False)
    store.add_ctt_items(
        "hum",
        [
            {"real_path": "r", "fake_path": f"{t}{c}.mp4", "trial_id": t, "video_id": "v", "clip": c}
            for t in ("r1_a", "r1_b")
            for c in (0, 1)
        ],
    )
    store.create_campaign("hum", "rank", task="pairwise", session_items=2, practice_items=0, attention_share=0.0)
    (token,) = store.add_invites("hum", "rank", 1, max_uses=None)
    trial_of = store.ctt_items("hum").set_index("uid")["trial_id"]
    for _ in range(3):
        sid = store.open_session(token, rng=random.Random(0))
        while not (state := store.session_state(sid))["done"]:
            a, _b = state["item"]["uid"].split("|")
            store.answer(sid, state["item"]["uid"], winner="a" if trial_of[a] == "r1_b" else "b")  # r1_b always wins
    scores = trial_scores(store, "hum", "bt_score", campaign="rank", min_votes=6).set_index("trial_id")
    assert scores.loc["r1_b", "score"] > 0 > scores.loc["r1_a", "score"]
    assert scores["votes"].to_dict() == {"r1_b": 6, "r1_a": 6} and scores["counted"].all()
    with pytest.raises(VidcolorError, match="no campaign named 'nope'"):
        trial_scores(store, "hum", "bt_score", campaign="nope")


def test_a_round_needs_the_study_and_enough_votes(tmp_path):
    from study.tune.human import plan_round

    empty = Store(f"sqlite:///{tmp_path}/empty.db")
    with pytest.raises(VidcolorError, match=r"study 'hum' is not in .*run it first without \[human\]"):
        plan_round(empty, spec())
    store = round_one(tmp_path, with_votes=False)
    with pytest.raises(
        VidcolorError,
        match=r"no finished trial of study 'hum' has 3 2AFC votes yet "
        r"\(the most any has is 0\).*vidcolor ctt build",
    ):
        plan_round(store, spec())


def test_the_two_objective_study_is_rebuilt_from_the_store(tmp_path):
    import optuna

    from study.tune.human import optuna_name, plan_round, verdict_table

    store = round_one(tmp_path)
    table = verdict_table(store, spec()).set_index("trial_id")
    # (objective, fool rate): a (10, .75), b (12, .25), c (8, .5); d has 1 vote < 3: waiting.
    # b is dominated by a; a and c trade RMSE against fooling: the front is {a, c}
    assert table["pareto"].to_dict() == {"r1_a": True, "r1_b": False, "r1_c": True, "r1_d": False}
    assert table.loc["r1_d", "score"] != table.loc["r1_d", "score"]  # NaN until min_votes

    plan = plan_round(store, spec(trials=3))
    assert (plan.scored, plan.waiting, len(plan.points)) == (3, 1, 3)
    for point in plan.points:
        assert set(point) == {"lr", "grid"} and 1e-4 <= point["lr"] <= 1e-2 and point["grid"] in (10, 20)
    study = optuna.load_study(study_name=optuna_name("hum"), storage=store.url)
    assert [d.name for d in study.directions] == ["MINIMIZE", "MAXIMIZE"]
    assert study.metric_names == ["val_rmse_rgb", "fool_rate"]
    done = {t.user_attrs["trial_id"]: t.values for t in study.trials if t.state.name == "COMPLETE"}
    assert done == {"r1_a": [10.0, 0.75], "r1_b": [12.0, 0.25], "r1_c": [8.0, 0.5]}
    running = [t for t in study.trials if t.state.name == "RUNNING"]
    assert len(running) == 1 + 3  # r1_d waiting for votes, and the three asked configurations
    assert sorted(t.user_attrs["trial_id"] for t in study.best_trials) == ["r1_a", "r1_c"]

    again = plan_round(store, spec(trials=3))  # rebuilt, not appended to; the seeded sampler repeats itself
    assert again.points == plan.points
    assert len(optuna.load_study(study_name=optuna_name("hum"), storage=store.url).trials) == 4 + 3


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_human_round_continues_the_study_and_resumes(ray_cluster, demo_shards, tmp_path, capsys):
    import optuna

    from study.tune.command import print_summary
    from study.tune.human import ROUND_MARK, optuna_name, verdict_table
    from study.tune.runner import run_study

    store = round_one(tmp_path)
    s = spec(trials=2)
    storage = str(tmp_path / "ray")
    result = run_study(
        s,
        shards=str(demo_shards),
        db=store.url,
        storage=storage,
        address=ray_cluster.address,
        media=False,
        progress_every_s=60,
    )
    trials = store.trials("hum").set_index("trial_id")
    assert len(result.new_trials) == 2 and len(trials) == 6
    for tid in result.new_trials:  # trained on the shards, the objective reported, params from the space
        assert trials.loc[tid, "status"] == "TERMINATED" and trials.loc[tid, "objective"] > 0
        assert trials.loc[tid, "param_grid"] in (10, 20) and 1e-4 <= trials.loc[tid, "param_lr"] <= 1e-2
    info = store.get_study("hum")
    assert info["spec"]["human"]["score"] == "fool_rate" and ROUND_MARK in info["storage_path"]
    study = optuna.load_study(study_name=optuna_name("hum"), storage=store.url)
    waiting = {t.user_attrs["trial_id"] for t in study.trials if t.state.name == "RUNNING"}
    assert waiting == {"r1_d", *result.new_trials}  # trained, not yet voted on
    print_summary(result, s)
    out = capsys.readouterr().out
    assert "human verdict: fool_rate" in out and "3 of 6 finished trials scored" in out
    assert f"--trials {','.join(result.new_trials)}" in out and "waiting (0/3)" in out

    # votes come in for the new trials: the next round sees them; the one that beats r1_c is on the front
    best = min(result.new_trials, key=lambda t: trials.loc[t, "objective"])
    for tid in result.new_trials:
        vote(store, tid, 4, 4 if tid == best else 0, tmp_path, rater="round2-")
    table = verdict_table(store, s).set_index("trial_id")
    assert table["counted"].sum() == 5 and table.loc[best, "pareto"]  # fooled every rater: nothing dominates it

    resumed = run_study(
        s, shards=str(demo_shards), db=store.url, storage=storage, address=ray_cluster.address, media=False, resume=True
    )  # the round had finished: nothing is trained again
    assert resumed.new_trials == () and len(store.trials("hum")) == 6
    done = {
        t.user_attrs["trial_id"]
        for t in optuna.load_study(study_name=optuna_name("hum"), storage=store.url).trials
        if t.state.name == "COMPLETE"
    }
    assert done == {"r1_a", "r1_b", "r1_c", *result.new_trials}
