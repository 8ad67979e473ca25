"""A two-objective study on the session's Ray cluster (CPU, tiny model): Optuna's multi-objective
study, ASHA on the judged objective, the store's objectives and the printed front."""

from __future__ import annotations

import textwrap

import pytest

from study.config.spec import load_spec
from study.store import Store
from study.tune.command import print_summary
from study.tune.runner import run_study

SPEC = """
name = "mo"
preset = "exp5"
num_trials = 2
max_concurrent = 1
media_clips = 0
points_to_evaluate = [{grid = 40}, {grid = 10}]
[search.grid]
type = "choice"
choices = [10, 40]
[[objectives]]
metric = "train_loss"
mode = "min"
[[objectives]]
metric = "val_colorfulness_gap"
mode = "min"
[asha]
grace_period = 1
reduction_factor = 2
[fixed]
size = "tiny"
transfer = false
seq_len = 1
lr = 3e-3
epochs = 2
steps_per_epoch = 2
batch_size = 2
val_batches = 1
val_batch_size = 2
"""


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_objective_study(ray_cluster, demo_shards, tmp_path, capsys):
    """grid 40 first, then grid 10 (more bins per class: a higher loss, as in test_tune's study):
    ASHA, judging train_loss, stops the second after epoch 1; it is PRUNED in Optuna's two-direction
    study and never on the printed front, which holds the first."""
    path = tmp_path / "mo.toml"
    path.write_text(textwrap.dedent(SPEC))
    spec = load_spec(path)
    db = f"sqlite:///{tmp_path}/results.db"
    result = run_study(spec, shards=str(demo_shards), db=db, storage=str(tmp_path / "ray"), address=ray_cluster.address)
    trials = Store(db).trials("mo").set_index("param_grid")
    first, second = trials.loc[40], trials.loc[10]
    assert (first.status, first.epochs, second.status, second.epochs) == ("TERMINATED", 2, "STOPPED", 1)
    assert first.objective == first.best_train_loss and first.best_val_colorfulness_gap >= 0  # both objectives kept

    import optuna

    study = optuna.load_study(study_name="mo", storage=db)
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED"] and len(study.trials[0].values) == 2

    print_summary(result, spec)
    out = capsys.readouterr().out
    assert "ASHA stops trials on train_loss (min); each trial keeps its checkpoint of best train_loss" in out
    assert "Pareto front of train_loss (min), val_colorfulness_gap (min): 1 of 1 trials that ran to the end" in out
    front = [line.split()[0] for line in out.splitlines() if line.rstrip().endswith("*")]
    assert front == [first.trial_id]
