"""Study specs: every shipped config loads and builds valid configs; each validation error names
the file and the field path; the spec record holds every field."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pytest

from models.errors import VidcolorError
from models.presets import ExperimentConfig
from study.config.spec import StudySpec, load_spec, parse_spec, shipped_specs
from study.config.train import TrainConfig

BASE = """
name = "s"
preset = "exp2"
num_trials = 4
[fixed]
size = "tiny"
epochs = 3
[search.lr]
type = "float"
low = 1e-4
high = 1e-2
log = true
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "spec.toml"
    p.write_text(textwrap.dedent(text))
    return p


def test_every_shipped_config_loads():
    paths = shipped_specs()
    assert {p.name for p in paths} >= {"demo.toml", "paper.toml"}
    for path in [*paths, Path(__file__).parents[3] / "cluster" / "paper.toml"]:
        spec = load_spec(path)
        experiment, train = spec.base_configs()
        assert isinstance(experiment, ExperimentConfig) and isinstance(train, TrainConfig)
        assert train.metric == spec.objective.metric and train.mode == spec.objective.mode
        space = spec.param_space()
        assert set(space) == {p.name for p in spec.search}
        for param in spec.search:  # both ends of every range make a valid trial config
            for value in param.choices or (param.low, param.high):
                exp, tr = spec.trial_configs({param.name: value})
                assert getattr(exp if hasattr(exp, param.name) else tr, param.name) == value


def test_demo_fits_the_brief():
    spec = load_spec("demo")  # a bare name finds study/configs/demo.toml
    experiment, train = spec.base_configs()
    assert spec.num_trials >= 6 and spec.asha.enabled and spec.resources.gpus_per_worker == 0
    assert experiment.size == "tiny" and not experiment.transfer
    assert {"lam", "grid", "seq_len", "lr", "temperature"} <= {p.name for p in spec.search}
    assert spec.max_t == train.epochs and spec.asha.grace_period < spec.max_t  # ASHA can stop trials


def test_paper_is_the_seed_setting():
    spec = load_spec("paper")
    experiment, train = spec.base_configs()
    assert (experiment.size, experiment.seq_len, experiment.grid, experiment.temporal) == ("base", 6, 10, "convlstm")
    assert spec.resources.gpus_per_worker >= 1 and experiment.window == 7


def test_search_param_domains(tmp_path):
    spec = load_spec(
        write(
            tmp_path,
            BASE
            + """
        [search.grid]
        type = "choice"
        choices = [10, 20]
        [search.seq_len]
        type = "int"
        low = 1
        high = 4
    """,
        )
    )
    space = spec.param_space()
    assert space["grid"].categories == [10, 20]
    assert (space["seq_len"].lower, space["seq_len"].upper) == (1, 4)  # qrandint includes 4
    assert math.isclose(space["lr"].lower, 1e-4) and "LogUniform" in type(space["lr"].sampler).__name__
    experiment, train = spec.trial_configs({"grid": 20, "seq_len": 3, "lr": 5e-3})
    assert (experiment.grid, experiment.seq_len, train.lr) == (20, 3, 5e-3)


@pytest.mark.parametrize(
    "text, field, words",
    [
        ('name = "s"\npreset = "exp9"', "preset", "exp1"),
        ('preset = "exp2"', "name", "required"),
        ('name = "a b"\npreset = "exp2"', "name", "spaces"),
        (BASE + "bogus = 1", "bogus", "unknown key"),
        (BASE.replace("num_trials = 4", "num_trials = 0"), "num_trials", ">= 1"),
        (BASE.replace("num_trials = 4", 'num_trials = "4"'), "num_trials", "integer"),
        (BASE + "[fixed.more]\n", "fixed", ""),
        (BASE.replace('size = "tiny"', 'colour = "red"'), "fixed.colour", "unknown setting"),
        (BASE.replace('size = "tiny"', 'size = "huge"'), "size", "tiny"),
        (BASE.replace('size = "tiny"', "weight_decay = -1.0"), "weight_decay", ">= 0"),
        (BASE.replace("low = 1e-4", "low = 1e-1"), "search.lr.low", "< high"),
        (BASE.replace("low = 1e-4", "low = 0.0"), "search.lr.low", "log"),
        (BASE.replace('type = "float"', 'type = "complex"'), "search.lr.type", "float, int, choice"),
        (BASE + '[search.epochs]\ntype = "int"\nlow = 1\nhigh = 5\n', "search.epochs", "also in [fixed]"),
        (BASE + '[search.wings]\ntype = "int"\nlow = 1\nhigh = 5\n', "search.wings", "unknown setting"),
        (BASE + '[search.grid]\ntype = "choice"\nchoices = []\n', "search.grid.choices", "empty"),
        (BASE + '[search.grid]\ntype = "choice"\nchoices = [10, 999]\n', "search.grid.choices[1]", "999"),
        (BASE + '[objective]\nmetric = "val_rmse_rgb"\nmode = "up"\n', "objective.mode", "min"),
        (BASE + '[sampler]\nkind = "grid"\n', "sampler.kind", "tpe"),
        (BASE + "[asha]\nreduction_factor = 1\n", "asha.reduction_factor", "> 1"),
        (BASE + "[asha]\ngrace_period = 5\n", "asha.grace_period", "<= max_t"),
        (BASE + "[asha]\nmax_t = 9\n", "asha.max_t", "<= epochs"),
        (BASE + "[resources]\nworkers = 0\n", "resources.workers", ">= 1"),
        (BASE + "[resources]\ncpus_per_worker = 0\n", "resources.cpus_per_worker", "> 0"),
        ("points_to_evaluate = [{lr = 1.0}]\n" + BASE, "points_to_evaluate[0].lr", "outside"),
        ('points_to_evaluate = [{lr = "fast"}]\n' + BASE, "points_to_evaluate[0].lr", "outside"),
        ("points_to_evaluate = [{grid = 10}]\n" + BASE, "points_to_evaluate[0]", "exactly"),
    ],
)
def test_validation_errors_name_file_and_field(tmp_path, text, field, words):
    path = write(tmp_path, text)
    with pytest.raises(VidcolorError) as err:
        load_spec(path)
    message = str(err.value)
    assert str(path) in message and field in message and words in message, message


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(VidcolorError, match="invalid TOML"):
        load_spec(write(tmp_path, "name = "))
    with pytest.raises(VidcolorError, match="not found"):
        load_spec(tmp_path / "nope.toml")


LAM = {"lam": {"type": "float", "low": 0.1, "high": 0.9}}


def test_parse_spec_without_file():
    spec = parse_spec({"name": "x", "preset": "exp1", "search": LAM})
    assert [p.name for p in spec.search] == ["lam"] and spec.num_trials == 4 and spec.source == "<spec>"
    assert spec.objective.metric == "val_rmse_rgb"


@pytest.mark.parametrize("search", ["[search]\n", ""])
def test_a_study_without_searched_setting_is_refused_when_read(tmp_path, search):
    """An empty [search] (or none) is named at once, before Ray starts or the store is touched."""
    path = write(tmp_path, 'name = "s"\npreset = "exp2"\n[fixed]\nepochs = 2\n' + search)
    with pytest.raises(VidcolorError) as err:
        load_spec(path)
    assert str(err.value).startswith(f"{path}: field search: no searched setting: add at least one [search.NAME]")
    with pytest.raises(VidcolorError, match="^<spec>: field search: no searched setting"):
        parse_spec({"name": "x", "preset": "exp1", "search": {}})


def test_objective_metric_must_be_one_the_loop_reports(tmp_path):
    from study.config.spec import reported_metrics
    from study.evaluation.metrics import METRICS

    known = reported_metrics()
    # counted by hand: 14 validation metrics (val_rmse_rgb ... val_temporal_error, val_ssim, val_cdc,
    # val_warp_error, val_rmse_ratio, val_added_warp, val_added_cdc) + 10 of the loop (val_gray_rmse_rgb and
    # l_temp among them)
    assert len(METRICS) == 14 and len(known) == 24 and list(known) == sorted(known)
    assert {
        "val_rmse_rgb",
        "val_psnr",
        "val_temporal_error",
        "val_ssim",
        "val_cdc",
        "val_warp_error",
        "val_rmse_ratio",
        "val_added_warp",
        "val_added_cdc",
        "val_gray_rmse_rgb",
        "train_loss",
        "l_cl",
        "l_seq",
        "val_frames",
        "train_s",
        "epoch_s",
        "lr",
        "world_size",
    } <= set(known)
    path = write(tmp_path, BASE + '[objective]\nmetric = "val_rmse"\nmode = "min"\n')
    with pytest.raises(VidcolorError) as err:
        load_spec(path)
    assert str(err.value) == (
        f"{path}: field objective.metric: 'val_rmse' is not reported by the training loop "
        f"(it reports: {', '.join(known)})"
    )
    for metric in ("train_loss", "val_psnr", "l_seq"):  # every reported one is accepted
        assert load_spec(write(tmp_path, BASE + f'[objective]\nmetric = "{metric}"\n')).objective.metric == metric


def test_error_message_in_full(tmp_path):
    path = write(tmp_path, 'name = "s"\npreset = "exp2"\n[search.lam]\ntype = "float"\nlow = 1.0\nhigh = 0.2\n')
    with pytest.raises(VidcolorError) as err:
        load_spec(path)
    assert str(err.value) == f"{path}: field search.lam.low: must be < high (low=1.0, high=0.2)"


@pytest.mark.parametrize(
    "text, message",
    [
        ('source = "x"', "field source: unknown key"),
        ('[search.lam]\nname = "x"\ntype = "float"\nlow = 0.1\nhigh = 0.5', "field search.lam.name: unknown key"),
        (
            '[search.seq_len]\ntype = "int"\nlow = 1.5\nhigh = 3',
            "field search.seq_len.low: must be an integer, got 1.5",
        ),
        ('[search.lam]\ntype = "float"\nlow = true\nhigh = 0.5', "field search.lam.low: must be a number, got True"),
        ('[search.lam]\ntype = "float"\nhigh = 0.5', "field search.lam.low: is required"),
        (
            '[search.lam]\ntype = "choice"\nchoices = [0.1, 0.2]\nlow = 3',
            "field search.lam.low: unknown key (allowed: choices, type)",
        ),
        ('[search.grid]\ntype = "choice"\nchoices = [10, 10]', "field search.grid.choices: has duplicates"),
        (
            '[search.seq_len]\ntype = "int"\nlow = 1\nhigh = 4\nlog = true\nstep = 2',
            "field search.seq_len.step: cannot be combined with log",
        ),
        ("search = 3", "field search: must be a table of searched settings, got 3"),
        ("[search]\nlam = 3", "field search.lam: must be a table, got 3"),
        ("objective = 3", "field objective: must be a table, got 3"),
        ("points_to_evaluate = [1]", "field points_to_evaluate[0]: must be a table, got 1"),
        ('[fixed]\nmetric = "x"', "field fixed.metric: comes from [objective], not [fixed]"),
        ('[fixed]\nensemble = ["exp1"]', "field fixed.ensemble: needs at least two members (or none), got ['exp1']"),
        ("[fixed]\ngrid = 10.5", "field fixed.grid: must be an integer, got 10.5"),
        ('[fixed]\ngrid = "ten"', "field fixed.grid: must be an integer, got 'ten'"),  # text is parsed as --set's
        ("[fixed]\nlam = 2", "field fixed.lam: must be in [0, 1], got 2"),
        (
            '[search.grid]\ntype = "choice"\nchoices = [10, 999]',
            "field search.grid.choices[1]: must be in [2, 64], got 999",
        ),
        ('[search.lam]\ntype = "float"\nlow = 0.5\nhigh = 1.5', "field search.lam.high: must be in [0, 1], got 1.5"),
        ("[fixed]\nlr = true", "field fixed.lr: must be a number, got True"),
        ('[objective]\nmetric = ""', "field objective.metric: must not be empty"),
        ("[sampler]\nn_startup_trials = -1", "field sampler.n_startup_trials: must be >= 0, got -1"),
        ("[resources]\ngpus_per_worker = -1", "field resources.gpus_per_worker: must be >= 0, got -1"),
        ("[asha]\nenabled = 1", "field asha.enabled: must be true or false, got 1"),
    ],
)
def test_more_errors_name_the_field_path(tmp_path, text, message):
    path = write(tmp_path, 'name = "s"\npreset = "exp2"\n' + text + "\n")
    with pytest.raises(VidcolorError) as err:
        load_spec(path)
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)


def test_float_ranges_keep_float_bounds_and_int_ranges_int(tmp_path):
    spec = load_spec(
        write(
            tmp_path,
            'name = "s"\npreset = "exp2"\n[search.lam]\ntype = "float"\nlow = 0\nhigh = 1\n'
            '[search.seq_len]\ntype = "int"\nlow = 1\nhigh = 4\n',
        )
    )
    lam, seq_len = spec.search
    assert (lam.name, type(lam.low), type(lam.high)) == ("lam", float, float)
    assert (seq_len.low, seq_len.high) == (1, 4) and type(seq_len.low) is int
    assert lam.ends() == (0.0, 1.0) and lam.contains(0.5) and not lam.contains(1.5)


def test_to_record_holds_every_field():
    from study.config.spec import SearchParam

    spec = load_spec("demo").replace(
        points_to_evaluate=({"lam": 0.5, "grid": 10, "seq_len": 2, "lr": 1e-3, "temperature": 0.38},)
    )
    record = spec.to_record()
    assert list(record) == list(StudySpec.model_fields)  # a field added later is recorded too
    for table in ("sampler", "asha", "resources"):
        assert list(record[table]) == list(type(getattr(spec, table)).model_fields)
    assert record["objectives"] == [{"metric": "val_rmse_rgb", "mode": "min"}]  # [objective] is the list's one entry
    for entry, param in zip(record["search"], spec.search, strict=True):
        assert list(entry) == list(SearchParam.model_fields) and entry["name"] == param.name
    assert record["sampler"]["n_startup_trials"] == 3 and record["max_failures"] == 1 and record["media_clips"] == 2
    assert record["points_to_evaluate"] == [dict(spec.points_to_evaluate[0])]
    assert record["shards"] == "demo_run/shards" and record["search"][1]["choices"] == [10, 20]
    assert json.loads(json.dumps(record, allow_nan=False)) == record  # plain JSON values
    assert StudySpec.model_validate(record) == spec  # and nothing is lost


def test_replace_validates_like_a_file():
    spec = load_spec("demo")
    assert spec.replace(num_trials=9).num_trials == 9 and spec.replace(num_trials=9).search == spec.search
    with pytest.raises(VidcolorError) as err:
        spec.replace(num_trials=0)
    assert str(err.value) == f"{spec.source}: field num_trials: must be >= 1, got 0"
    with pytest.raises(VidcolorError, match="field fixed.epochs: must be > 0"):
        spec.replace(fixed={**spec.fixed, "epochs": 0})


def test_fixed_text_is_parsed_like_set_and_cross_field_errors_name_the_table():
    spec = parse_spec({"name": "x", "preset": "exp4", "fixed": {"pretrained": "none", "epochs": "3"}, "search": LAM})
    experiment, train = spec.base_configs()
    assert experiment.pretrained is None and train.epochs == 3
    with pytest.raises(VidcolorError) as err:
        parse_spec({"name": "x", "preset": "exp3", "fixed": {"name": "exp1"}}, source="s.toml")
    assert str(err.value) == (
        "s.toml: field fixed: ensemble: must not contain the config's own name 'exp1', got ('exp1', 'exp2')"
    )


# demo.toml's to_record() as the results store kept it (vc_studies.spec) before the config models
# were unified (pinned: a stored spec must keep validating into the same StudySpec)
STORED_DEMO = {
    "name": "demo",
    "preset": "exp5",
    "shards": "demo_run/shards",
    "fixed": {
        "size": "tiny",
        "transfer": False,
        "epochs": 4,
        "steps_per_epoch": 30,
        "batch_size": 8,
        "val_batches": 2,
        "val_batch_size": 4,
    },
    "search": [
        {"name": "lam", "type": "float", "low": 0.2, "high": 1.0, "log": False, "step": None, "choices": []},
        {"name": "grid", "type": "choice", "low": None, "high": None, "log": False, "step": None, "choices": [10, 20]},
        {"name": "seq_len", "type": "int", "low": 1, "high": 4, "log": False, "step": None, "choices": []},
        {"name": "lr", "type": "float", "low": 0.0003, "high": 0.01, "log": True, "step": None, "choices": []},
        {"name": "temperature", "type": "float", "low": 0.2, "high": 0.8, "log": False, "step": None, "choices": []},
    ],
    "objective": {"metric": "val_rmse_rgb", "mode": "min"},
    "sampler": {"kind": "tpe", "seed": 0, "n_startup_trials": 3},
    "human": None,
    "asha": {"enabled": True, "grace_period": 1, "reduction_factor": 2.0, "max_t": 0},
    "num_trials": 6,
    "max_concurrent": 1,
    "resources": {"workers": 1, "cpus_per_worker": 1.0, "gpus_per_worker": 0.0},
    "max_failures": 1,
    "media_clips": 2,
    "points_to_evaluate": [],
    "source": "study/configs/demo.toml",
}
# a trial's config in the results store (vc_trials.config, written by study.tune.callbacks) before then
STORED_TRIAL = {
    "experiment": {
        "name": "exp5",
        "size": "tiny",
        "grid": 20,
        "rebalance": True,
        "gamma": 0.5,
        "temporal": "convlstm",
        "seq_len": 3,
        "lam": 0.45,
        "soft_k": 5,
        "soft_sigma": 5.0,
        "temperature": 0.5,
        "pretrained": None,
        "ensemble": [],
        "transfer": False,
    },
    "train": {
        "lr": 0.002,
        "schedule": "cosine",
        "warmup": 0.05,
        "min_lr_ratio": 0.05,
        "weight_decay": 0.0,
        "epochs": 4,
        "steps_per_epoch": 30,
        "batch_size": 8,
        "val_batches": 2,
        "val_batch_size": 4,
        "val_split": "val",
        "grad_clip": 0.0,
        "ema": 0.995,
        "amp": True,
        "seed": 0,
        "loader_workers": 0,
        "shuffle_buffer": 64,
        "flip": True,
        "crop_scale": 0.7,
        "train_size": 0,
        "metric": "val_rmse_rgb",
        "mode": "min",
    },
    "shards": "demo_run/shards",
}


# what demo.toml changed since STORED_DEMO was recorded (exp5's batch counts whole clips; a trial
# that trains in its own process takes both cores; a demo of about a minute)
DEMO_CHANGED_SINCE = {"fixed": {"steps_per_epoch": 16, "batch_size": 2}, "resources": {"cpus_per_worker": 1.9}}
DEMO_ADDED_SINCE = {"media_every": 1}  # sample frames at every epoch (the dashboard's epoch slider)


def test_stored_specs_and_trial_configs_still_load():
    spec = load_spec("demo")
    stored = StudySpec.model_validate(json.loads(json.dumps(STORED_DEMO)))
    now = json.loads(json.dumps(STORED_DEMO))
    for table, values in DEMO_CHANGED_SINCE.items():
        now[table].update(values)
    now.update(DEMO_ADDED_SINCE)
    assert stored.media_every == 0  # a spec recorded before media_every renders at the end only, as it did
    assert StudySpec.model_validate(now) == spec.replace(source=STORED_DEMO["source"])
    # recorded alike but for the fields added since: objectives (the list [objective] is one entry of), asha.metric
    recorded = {**spec.to_record(), "source": STORED_DEMO["source"]}
    assert recorded.pop("objectives") == [STORED_DEMO["objective"]] and recorded["asha"].pop("metric") is None
    assert recorded == {k: v for k, v in now.items() if k != "objective"}
    assert StudySpec.model_validate(spec.to_record()) == spec  # a record written now loads too
    params = {"lam": 0.45, "grid": 20, "seq_len": 3, "lr": 0.002, "temperature": 0.5}
    experiment, train = stored.trial_configs(params)  # the trial configs of the stored spec
    assert ExperimentConfig.from_dict(STORED_TRIAL["experiment"]) == experiment
    assert TrainConfig.from_dict(STORED_TRIAL["train"]) == train
    # recorded alike but for the experiment fields added since (the temporal loss's, at their defaults)
    written = experiment.to_dict()
    assert (written.pop("temporal_weight"), written.pop("temporal_long_term")) == (0.0, False)
    assert {"experiment": written, "train": train.to_dict(), "shards": stored.shards} == STORED_TRIAL
