"""A study spec with several objectives: ``[[objectives]]`` tables, what ASHA judges, the errors
(each naming its field), and the record that the results store keeps."""

from __future__ import annotations

import textwrap

import pytest

from models.errors import VidcolorError
from study.config.spec import StudySpec, load_spec, parse_spec

BASE = """
name = "s"
preset = "exp2"
[fixed]
size = "tiny"
epochs = 3
[search.lr]
type = "float"
low = 1e-4
high = 1e-2
log = true
"""
TWO = """
[[objectives]]
metric = "val_rmse_ratio"
mode = "min"
[[objectives]]
metric = "val_added_warp"
mode = "min"
"""


def load(tmp_path, text: str):
    path = tmp_path / "spec.toml"
    path.write_text(textwrap.dedent(text))
    return path, load_spec(path)


def test_two_objectives_and_the_one_asha_judges(tmp_path):
    _, spec = load(tmp_path, BASE + TWO)
    assert [(o.metric, o.mode) for o in spec.objectives] == [("val_rmse_ratio", "min"), ("val_added_warp", "min")]
    assert spec.multi_objective and spec.objective.metric == "val_rmse_ratio"  # the first, by default
    _, spec = load(tmp_path, BASE + TWO + '[asha]\nmetric = "val_added_warp"\n')
    assert spec.objective.metric == "val_added_warp"
    assert spec.base_configs()[1].metric == "val_added_warp"  # each trial keeps its best checkpoint of it


def test_one_objective_either_way(tmp_path):
    _, table = load(tmp_path, BASE + '[objective]\nmetric = "val_psnr"\nmode = "max"\n')
    _, listed = load(tmp_path, BASE + '[[objectives]]\nmetric = "val_psnr"\nmode = "max"\n')
    assert table == listed and not table.multi_objective and table.objective.metric == "val_psnr"
    _, default = load(tmp_path, BASE)
    assert [(o.metric, o.mode) for o in default.objectives] == [("val_rmse_rgb", "min")]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            TWO.replace('"val_added_warp"', '"val_flicker"'),
            "field objectives[1].metric: 'val_flicker' is not reported by the training loop (it reports: ",
        ),
        (
            TWO.replace('"val_added_warp"', '"val_rmse_ratio"'),
            "field objectives[1].metric: must differ from objectives[0].metric, got 'val_rmse_ratio'",
        ),
        (
            TWO.replace('mode = "min"\n[[', 'mode = "lower"\n[['),
            "field objectives[0].mode: must be one of min, max, got 'lower'",
        ),
        (
            "objectives = []\n" + BASE,
            "field objectives: must name at least one objective ([[objectives]] tables with metric",
        ),
        (TWO + '[[objectives]]\nmode = "max"\nmetrik = "val_psnr"\n', "field objectives[2].metrik: unknown key"),
        (
            TWO + '[asha]\nmetric = "val_psnr"\n',
            "field asha.metric: must be one of the objectives (val_rmse_ratio, val_added_warp), got 'val_psnr'",
        ),
        (TWO + '[objective]\nmetric = "val_psnr"\n', "field objective: give one [objective] table or [[objectives]]"),
        (
            TWO + '[human]\nscore = "fool_rate"\n',
            "field human: a [human] round searches one objective with the human score: give one [objective], "
            "got 2 objectives",
        ),
    ],
)
def test_errors_name_the_field(tmp_path, text, message):
    path = tmp_path / "spec.toml"
    path.write_text(textwrap.dedent(text if text.startswith("objectives") else BASE + text))
    with pytest.raises(VidcolorError) as err:
        load_spec(path)
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)


def test_the_record_keeps_every_objective_and_loads_back():
    spec = load_spec("demo_tradeoff")
    record = spec.to_record()
    assert record["objectives"] == [
        {"metric": "val_rmse_ratio", "mode": "min"},
        {"metric": "val_added_warp", "mode": "min"},
    ]
    assert record["asha"]["metric"] == "val_rmse_ratio" and StudySpec.model_validate(record) == spec
    # a record of before the list (one objective table) is the same one-objective spec
    old = {**load_spec("demo").to_record(), "objective": {"metric": "val_rmse_rgb", "mode": "min"}}
    del old["objectives"]
    assert parse_spec({k: v for k, v in old.items() if k != "source"}).objectives == load_spec("demo").objectives


def test_the_demo_tradeoff_spec_is_demo_scale():
    spec = load_spec("demo_tradeoff")
    experiment, train = spec.base_configs()
    assert experiment.size == "tiny" and not experiment.transfer and spec.resources.gpus_per_worker == 0
    assert spec.asha.enabled and spec.asha.grace_period < spec.max_t and train.metric == "val_rmse_ratio"
