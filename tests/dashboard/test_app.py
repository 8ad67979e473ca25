"""AppTest of every dashboard page on the fixture study (conftest.py), plus the no-torch start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def app(fixture_study, monkeypatch):
    monkeypatch.setenv("VIDCOLOR_DB", fixture_study["url"])

    def open_page(page: str | None = None, **query) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=60)
        for k, v in query.items():
            at.query_params[k] = v
        at.run()
        if page:
            at.switch_page(f"views/{page}.py")
            at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return open_page


def texts(at: AppTest) -> str:
    parts = [
        e.value
        for element in ("markdown", "caption", "title", "subheader", "info", "success", "warning")
        for e in getattr(at, element)
    ]
    return "\n".join(str(p) for p in parts)


def floats(values) -> list[float]:
    """A plotly JSON array: a list, or plotly's typed array ({"dtype": "f8", "bdata": base64})."""
    if isinstance(values, dict):
        import base64

        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def test_overview_shows_progress(app):
    at = app()
    assert at.title[0].value == "Studies"
    assert "fixture" in list(at.dataframe[0].value["name"])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Trials"] == "6 / 8"
    assert metrics["Running"] == "1" and metrics["Failed"] == "1"
    # best objective: t_002 at epoch 2: 20 - 4·0.95 + 3/3 + 0.5·|0.98 - 0.9| = 17.24
    assert metrics["Best val_rmse_rgb (min)"] == "17.24"
    assert len(at.get("plotly_chart")) == 1


def test_overview_offers_the_study_report_as_a_download(app):
    at = app()
    assert not at.get("download_button")  # built on request only
    at.button(key="build_report").click().run()
    (button,) = at.get("download_button")
    assert "report-fixture.html" in button.proto.label
    page = at.session_state["report_html_fixture"].decode("utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Study fixture" in page and "t_002" in page


def test_trials_table_filter_and_csv(app):
    at = app("trials")
    table = at.dataframe[0].value
    assert len(table) == 6 and "config" not in table.columns
    assert {"param_lam", "param_lr", "best_val_rmse_rgb"} <= set(table.columns)
    # the objective (best val_rmse_rgb) once, under its own name, then the flicker the color adds
    # and the colorfulness gap
    assert "objective" not in table.columns
    assert list(table.columns[3:7]) == [
        "best_val_rmse_rgb",
        "best_val_added_warp",
        "best_val_added_cdc",
        "best_val_colorfulness_gap",
    ]
    at.multiselect[0].set_value(["TERMINATED"]).run()
    assert sorted(at.dataframe[0].value["trial_id"]) == ["t_001", "t_002", "t_004"]
    at.multiselect[1].set_value(["exp2"]).run()
    assert list(at.dataframe[0].value["trial_id"]) == ["t_002"]
    at.text_input[0].input("nothing-like-this").run()
    assert at.dataframe[0].value.empty
    assert at.get("download_button")[0].label == "Download CSV"


def test_log_scaled_parameter_has_a_log_slider_that_filters(app):
    """lr is searched on a log scale (1e-4 to 1e-2): a select slider over log-spaced stops (each
    trial's own value among them) filters it; a linear slider's 0.01 steps could not (issue 25)."""
    at = app("trials")
    lr = at.select_slider(key="range_param_lr")
    assert lr.value == (1e-4, 1e-2)  # the whole range: every trial
    stops = lr.options
    assert len(stops) > 20 and stops[0] == "0.0001" and stops[-1] == "0.01" and "0.001" in stops
    lr.set_value((1e-3, 3e-3)).run()
    assert sorted(at.dataframe[0].value["trial_id"]) == ["t_001", "t_002", "t_005"]  # 1e-3, 3e-3, 2e-3
    lam = at.slider(key="range_param_lam")  # linear, on the spec: 100 steps over its range
    assert lam.value == pytest.approx((0.3, 0.98)) and lam.step == pytest.approx(0.0068)
    assert at.slider(key="range_param_grid").value == (10, 12)  # integers step by 1


def test_objective_is_one_column_under_its_name(tmp_path, monkeypatch):
    """The training loop reports its running best (best_val_rmse_rgb) among its metrics: the trials
    table, its CSV, the trial page and the compare table show it once, never as best_best_… (issue 25)."""
    from study.store import Store

    url = f"sqlite:///{tmp_path / 'results.db'}"
    store = Store(url)
    store.create_study("s", objective="val_rmse_rgb", mode="min", spec={"name": "s"})
    for tid, rmse in (("t_a", 10.0), ("t_b", 8.0)):
        store.upsert_trial("s", tid, params={"lam": 0.5}, config={})
        store.log_epoch("s", tid, 0, {"val_rmse_rgb": rmse, "best_val_rmse_rgb": rmse, "val_psnr": 30.0})
    monkeypatch.setenv("VIDCOLOR_DB", url)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("views/trials.py").run()
    table = at.dataframe[0].value
    assert not any("best_best" in c or "last_best" in c for c in table.columns), list(table.columns)
    assert "objective" not in table.columns and list(table["best_val_rmse_rgb"]) == [10.0, 8.0]
    at.switch_page("views/trial.py").run()
    assert not at.exception
    metrics = at.dataframe[0].value
    assert "best_val_rmse_rgb" not in metrics.index and "val_rmse_rgb" in metrics.index


def test_hyperparameter_page_warns_on_edge_and_marks_pareto(app):
    at = app("explore")
    warnings = [w.value for w in at.warning]
    # best trial t_002 has lam = 0.98 in [0.2, 1.0]: high edge; lr 3e-3 sits mid-range in log space
    assert len(warnings) == 1 and "lam = 0.98" in warnings[0] and "high edge" in warnings[0]
    assert len(at.get("plotly_chart")) == 3  # parallel coordinates, importance, trade-off
    front = at.dataframe[0].value
    # hand-computed (rmse, colorfulness pred / gap, temporal): t_001 (19.6, 22 / 18, 2.0), t_002 (17.24,
    # 38.5 / 1.5, 3.51), t_004 (18.7, 28 / 12, 2.6): none beats another on all three. t_003 (stopped by
    # ASHA after one epoch: 20.5, 31 / 9, 1.9) would be on the front by its numbers, t_005 (running)
    # would not; neither can be: they are drawn apart
    assert sorted(front["trial_id"]) == ["t_001", "t_002", "t_004"]
    traces = {t["name"]: t for t in json.loads(at.get("plotly_chart")[2].proto.spec)["data"]}
    assert [row[0] for row in traces["Pareto front"]["customdata"]] == ["t_001", "t_002", "t_004"]
    assert traces["Pareto front"]["marker"]["symbol"] == "star"
    assert [row[0] for row in traces["stopped by ASHA (never on a front)"]["customdata"]] == ["t_003"]
    assert traces["stopped by ASHA (never on a front)"]["marker"]["symbol"] == "x"
    assert [row[0] for row in traces["still running (never on a front)"]["customdata"]] == ["t_005"]


def test_hyperparameter_page_shows_the_human_verdict_front(tmp_path, monkeypatch, fx):
    """Objectives by hand (conftest): t_002 17.24, t_004 18.7, t_001 19.6. Fooling rates voted here:
    t_001 100%, t_002 50%, t_004 0%: t_004 is dominated by t_002, the front is {t_002, t_001}."""
    info = fx.build(tmp_path)
    monkeypatch.setenv("VIDCOLOR_DB", info["url"])
    store = info["store"]
    spec = {**store.get_study("fixture")["spec"], "human": {"score": "fool_rate", "campaign": None, "min_votes": 4}}
    store.create_study("fixture", objective="val_rmse_rgb", mode="min", spec=spec, exist_ok=True)
    fooled = {"t_001": 2, "t_002": 1, "t_004": 0}  # of the two raters, per item
    raters = [store.add_rater(f"r{k}") for k in range(2)]
    items = store.ctt_items("fixture")
    for it in items[~items["is_attention"]].itertuples():
        for k, rater in enumerate(raters):
            store.record_vote(rater, it.uid, choice="left", picked_real=k >= fooled[it.trial_id])
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("views/explore.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) == 4  # + objective vs fooling rate
    assert any(s.value == "Human verdict: val_rmse_rgb vs fooling rate" for s in at.subheader)
    [front] = [d.value for d in at.dataframe if "fool_rate" in d.value.columns]
    assert sorted(front["trial_id"]) == ["t_001", "t_002"]
    assert front.set_index("trial_id")["fool_rate"].to_dict() == {"t_001": 1.0, "t_002": 0.5}
    captions = " ".join(c.value for c in at.caption)
    assert "3 of 5 trials have 4+ votes" in captions and "Waiting for votes (2): t_003, t_005" in captions


#: the trials of a study that searches the seed: trial id -> (lam, seed, best val_rmse_rgb, status)
SEED_TRIALS = {
    "s_a": (0.5, 0, 10.0, "TERMINATED"),
    "s_b": (0.5, 1, 12.0, "TERMINATED"),
    "s_c": (0.5, 2, 11.0, "STOPPED"),
    "s_d": (0.8, 0, 9.0, "TERMINATED"),
    "s_e": (0.8, 1, 9.5, "TERMINATED"),
    "s_f": (0.3, 0, 15.0, "TERMINATED"),
}


def build_seed_study(root: Path) -> str:
    """A study that searches `seed` beside lam (SEED_TRIALS): two configurations run with several seeds."""
    from study.store import Store

    url = f"sqlite:///{root / 'seeds.db'}"
    store = Store(url)
    search = [
        {"name": "lam", "type": "float", "low": 0.2, "high": 1.0, "log": False, "choices": []},
        {"name": "seed", "type": "choice", "low": None, "high": None, "log": False, "choices": [0, 1, 2]},
    ]
    store.create_study("seeds", objective="val_rmse_rgb", mode="min", spec={"name": "seeds", "search": search})
    for tid, (lam, seed, rmse, status) in SEED_TRIALS.items():
        store.upsert_trial("seeds", tid, experiment="exp5", params={"lam": lam, "seed": seed}, config={})
        store.log_epoch("seeds", tid, 0, {"val_rmse_rgb": rmse, "val_added_warp": rmse / 100})
        store.finish_trial("seeds", tid, status)
    return url


def test_trials_grouped_by_seed(tmp_path, monkeypatch):
    """By hand (SEED_TRIALS): lam 0.5 ran with seeds 0, 1, 2: RMSE mean (10 + 12 + 11) / 3 = 11, sd 1;
    lam 0.8 with seeds 0, 1: mean 9.25, sd sqrt(2 · 0.25²) = 0.35355; lam 0.3 once. Hiding the
    pruned trials takes s_c (STOPPED) out of its group: mean 11, sd sqrt(2)."""
    monkeypatch.setenv("VIDCOLOR_DB", build_seed_study(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("views/trials.py").run()
    grouping = at.toggle(key="group_seeds")
    assert grouping.label == "Group by seed (2 configuration(s) run with several seeds)" and not grouping.value
    assert len(at.dataframe[0].value) == 6  # one row per trial until asked
    grouping.set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value.set_index("lam")
    assert list(table.index) == [0.5, 0.8, 0.3]  # in the order of each one's first trial
    assert table["n"].to_dict() == {0.5: 3, 0.8: 2, 0.3: 1}
    assert table["seeds"].to_dict() == {0.5: "0, 1, 2", 0.8: "0, 1", 0.3: "0"}
    assert table.loc[0.5, "trials"] == "s_a, s_b, s_c" and table.loc[0.5, "status"] == "TERMINATED×2, STOPPED×1"
    rmse, sd = table["best_val_rmse_rgb"], table["best_val_rmse_rgb_sd"]
    assert rmse.tolist() == pytest.approx([11.0, 9.25, 15.0])
    assert sd.iloc[:2].tolist() == pytest.approx([1.0, 0.3535534]) and np.isnan(sd.iloc[2])
    assert table["best_val_added_warp"].tolist() == pytest.approx([0.11, 0.0925, 0.15])
    assert "seed" not in table.columns  # the seed is what the rows are grouped over
    assert "2 configuration" in grouping.label and "3 configuration(s) of 6 trials" in texts(at)
    assert at.get("download_button")[0].proto.label == "Download CSV"
    at.toggle(key="hide_pruned").set_value(True).run()
    table = at.dataframe[0].value.set_index("lam")
    assert table.loc[0.5, "n"] == 2 and table.loc[0.5, "trials"] == "s_a, s_b"
    assert table.loc[0.5, "best_val_rmse_rgb"] == pytest.approx(11.0)
    assert table.loc[0.5, "best_val_rmse_rgb_sd"] == pytest.approx(2**0.5)


def test_trials_without_repeated_configurations_offer_no_grouping(app):
    at = app("trials")
    assert not [t for t in at.toggle if t.key == "group_seeds"]
    assert "Every configuration ran once (no trials differ only by the seed): nothing to group by seed." in texts(at)


def test_human_verdict_counts_the_votes_of_the_ctt_results_page(tmp_path, monkeypatch, fx):
    """The defect: the hyperparameters page counted only raters who passed the attention check (1.0,
    n = 5, no interval) where the CTT results page counted every rater (80%, n = 10). Hand-made votes
    on t_002: r0-r4 pass the check and are fooled; r5-r9 fail it, r5-r7 are fooled. Both pages:
    8 / 10 = 0.8, Wilson 95% [0.4902, 0.9433]; with the failing raters excluded on both: 5 / 5,
    [0.5655, 1]."""
    info = fx.build(tmp_path)
    monkeypatch.setenv("VIDCOLOR_DB", info["url"])
    store = info["store"]
    spec = {**store.get_study("fixture")["spec"], "human": {"score": "fool_rate", "campaign": None, "min_votes": 5}}
    store.create_study("fixture", objective="val_rmse_rgb", mode="min", spec=spec, exist_ok=True)
    items = store.ctt_items("fixture")
    check = items[items["is_attention"]]["uid"].iloc[0]
    item = items[items["trial_id"] == "t_002"]["uid"].iloc[0]
    for k in range(10):
        rater = store.add_rater(f"r{k}")
        store.record_vote(rater, check, choice="left", picked_real=k < 5)
        store.record_vote(rater, item, choice="left", picked_real=k >= 8)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()

    def ctt_results() -> list:
        at.switch_page("views/ctt_results.py").run()
        return at.dataframe[0].value.set_index("trial").loc["t_002", ["fooling_rate", "fool_lo", "fool_hi", "votes"]]

    def explore() -> list:
        at.switch_page("views/explore.py").run()
        assert not at.exception, [e.value for e in at.exception]
        return verdict_row()

    def verdict_row() -> list:
        [table] = [d.value for d in at.dataframe if "fool_rate" in d.value.columns]
        return table.set_index("trial_id").loc["t_002", ["fool_rate", "low", "high", "votes"]]

    every = [0.8, 0.4902, 0.9433, 10]
    assert ctt_results().tolist() == pytest.approx(every, abs=1e-4)
    assert explore().tolist() == pytest.approx(every, abs=1e-4)
    # the interval beside the rate: error bars on the chart too
    [chart] = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if "human_front" in c.proto.id]
    [point] = [t for t in chart["data"] if t["customdata"]]
    assert point["customdata"][0][0] == "t_002"
    assert floats(point["error_y"]["array"]) == pytest.approx([0.9433 - 0.8], abs=1e-4)
    assert floats(point["error_y"]["arrayminus"]) == pytest.approx([0.8 - 0.4902], abs=1e-4)
    assert "every rater's votes" in texts(at) and "bars: Wilson 95% intervals" in texts(at)
    at.toggle(key="verdict_exclude").set_value(True).run()
    passed = [1.0, 0.5655, 1.0, 5]
    assert verdict_row().tolist() == pytest.approx(passed, abs=1e-4)
    assert "raters who failed an attention check left out" in texts(at)
    at.switch_page("views/ctt_results.py").run()
    at.toggle(key="ctt_exclude").set_value(True).run()
    assert at.dataframe[0].value.set_index("trial").loc["t_002", "votes"] == 5
    assert at.dataframe[0].value.set_index("trial").loc["t_002", "fooling_rate"] == 1.0


def test_learning_curves(app):
    at = app("curves")
    # default: the five best trials with epochs, objective and train loss
    assert set(at.multiselect[0].value) == {"t_001", "t_002", "t_003", "t_004", "t_005"}
    assert at.multiselect[1].value == ["val_rmse_rgb", "train_loss"]
    assert len(at.get("plotly_chart")) == 2
    at.multiselect[1].set_value(["val_psnr"]).run()
    assert len(at.get("plotly_chart")) == 1

    def colours() -> dict[str, str]:
        figure = json.loads(at.get("plotly_chart")[0].proto.spec)
        return {trace["name"]: trace["line"]["color"] for trace in figure["data"]}

    before = colours()
    at.multiselect[0].set_value(["t_004", "t_002"]).run()  # another choice, another order
    after = colours()
    assert set(after) == {"t_002", "t_004"} and all(after[t] == before[t] for t in after)


def test_trial_page_opens_on_the_best_trial_with_the_configuration_folded_away(app):
    """Without ?trial= and before one was picked: the study's best trial (t_002, 17.24), and the
    configuration sits in a collapsed expander after the frames (issue 25)."""
    at = app("trial")
    assert at.selectbox[0].value == "t_002"
    (config,) = [e for e in at.expander if e.label == "Configuration"]
    assert not config.proto.expanded
    assert len(config.get("json")) == 1 and len(at.main.get("json")) == 1  # the only JSON on the page


def test_small_frames_are_scaled_up_by_nearest_neighbour():
    from dashboard import viewer

    frame = np.arange(64 * 48 * 3, dtype=np.uint8).reshape(48, 64, 3)
    big = viewer.sharp(frame)
    k = viewer.SHARP_WIDTH // 64
    assert big.shape == (48 * k, 64 * k, 3)
    assert np.array_equal(big[::k, ::k], frame) and np.array_equal(big[k - 1 :: k, k - 1 :: k], frame)  # blocks
    large = np.zeros((720, 1280, 3), np.uint8)
    assert viewer.sharp(large) is large


def test_hide_pruned_and_failed_trials_on_every_page(app):
    """The sidebar toggle (one setting for every page) leaves out the STOPPED t_003 and the failed
    t_006 (issue 25)."""
    at = app("trials")
    at.toggle(key="hide_pruned").set_value(True).run()
    assert sorted(at.dataframe[0].value["trial_id"]) == ["t_001", "t_002", "t_004", "t_005"]
    at.switch_page("views/curves.py").run()
    assert at.toggle(key="hide_pruned").value
    assert "t_003" not in at.multiselect[0].options
    at.switch_page("views/compare.py").run()
    assert "t_003" not in at.multiselect[0].options
    at.toggle(key="hide_pruned").set_value(False).run()
    assert "t_003" in at.multiselect[0].options


def test_hide_pruned_and_failed_trials_reaches_every_table_and_chart(app):
    """The overview's table of trials per experiment and status ignored the toggle (its plot did
    not): now neither shows the STOPPED t_003 nor the failed t_006; nor do the hyperparameters
    page's charts."""
    at = app()
    counts = at.dataframe[1].value
    assert {"STOPPED", "ERROR"} <= set(counts.columns)
    at.toggle(key="hide_pruned").set_value(True).run()
    counts = at.dataframe[1].value
    assert set(counts.columns) == {"RUNNING", "TERMINATED"} and int(counts.to_numpy().sum()) == 4
    assert "(pruned / failed hidden by the sidebar's filter)" in texts(at)
    [plot] = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    plotted = {row[0] for trace in plot["data"] for row in trace.get("customdata") or []}
    assert plotted == {"t_001", "t_002", "t_004", "t_005"}
    at.switch_page("views/explore.py").run()
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    [tradeoff] = [c for c in charts if c["data"][0]["type"] == "scatter"]
    assert {row[0] for trace in tradeoff["data"] for row in trace["customdata"]} == {"t_001", "t_002", "t_004", "t_005"}
    [parcoords] = [c for c in charts if c["data"][0]["type"] == "parcoords"]
    assert all(len(floats(d["values"])) == 4 for d in parcoords["data"][0]["dimensions"])


def test_trial_page_frame_viewer(app, fx):
    at = app("trial", trial="t_004")
    assert at.selectbox[0].value == "t_004"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Experiment"] == "exp5" and metrics["Epochs"] == "3"
    table = at.dataframe[0].value
    assert table.loc["val_colorfulness_pred", "best"] == pytest.approx(10 + 30 * 0.6)
    headline = ["val_added_warp", "val_added_cdc", "val_colorfulness_gap", "val_rmse_rgb"]
    assert list(table.index[:4]) == headline and table.loc["val_added_warp", "best"] == pytest.approx(0.1 + 0.5 * 0.6)
    slider = at.slider(key="trial_frame")
    assert (slider.min, slider.max) == (0, fx.FRAMES - 1)
    slider.set_value(fx.FRAMES - 1).run()
    assert not at.exception
    assert len(at.get("image")) == 3  # gray, prediction, ground truth
    assert len(at.get("video")) == 3
    at.selectbox[0].set_value("t_006").run()  # the failed trial: no media
    assert any("CUDA out of memory" in e.value for e in at.error)


def test_frame_viewer_decodes_the_same_frames_as_the_pngs(fixture_study, fx):
    from dashboard import viewer

    media = fixture_study["store"].media("fixture", "t_002")
    key = viewer.clips_of(media)[0]
    frames = viewer.clip_frames(media, key)
    assert set(frames) == {"gray", "pred", "gt"} and all(len(v) == fx.FRAMES for v in frames.values())
    png = media[(media["media_type"] == "gt_png") & (media["frame"] == fx.FRAMES - 1) & (media["video_id"] == key[0])]
    ref = np.asarray(Image.open(png["path"].iloc[0]))
    # H.264 at crf 18 (yuv420p): close to the lossless PNG, far from another frame
    assert np.abs(frames["gt"][fx.FRAMES - 1].astype(int) - ref).mean() < 6
    assert np.abs(frames["gt"][0].astype(int) - ref).mean() > 10


def test_compare_page(app):
    at = app("compare")
    chosen = at.multiselect[0].value
    assert len(chosen) == 3 and chosen[0] == "t_002"  # best first
    frames, clips = at.get("iframe")  # the frame compare and the clips in step (compare_widgets)
    page = frames.proto.srcdoc or frames.proto.src
    for label in ("Gray input", "t_002 (", "Ground truth", 'id="wipe"', 'id="errors"'):
        assert label in page
    assert page.count("data:image/png;base64,") == 5 + 3  # gray, 3 trials, truth; 3 error maps
    assert (clips.proto.srcdoc or clips.proto.src).count("data:video/mp4;base64,") == 5
    strip = len(at.get("image"))  # the filmstrip: gray, 3 trials, truth, each at the same times
    assert strip % 5 == 0 and strip >= 10
    at.multiselect[0].set_value(["t_001", "t_004"]).run()
    assert len(at.get("image")) == strip // 5 * 4
    assert list(at.dataframe[0].value.columns) == ["t_001", "t_004"]
    rows = list(at.dataframe[0].value.index)
    # the hyperparameters, then the objective once, under its name, then the headline metrics
    assert rows[0] == "experiment" and sorted(rows[1:4]) == ["grid", "lam", "lr"]
    assert rows[4:7] == ["best_val_rmse_rgb", "best_val_added_warp", "best_val_added_cdc"]
    assert "objective" not in rows


def assert_session_reveals_nothing(at: AppTest, fx) -> None:
    """No session key or value names the real side, a real/fake path or the trial behind an item."""
    state = at.session_state.to_dict()
    blob = repr(sorted(state.items(), key=lambda kv: kv[0])).lower()
    for word in ("real", "fake", "trial", "experiment", "exp1", "exp2", "exp5", "video_id", "vid_a", "vid_b"):
        assert word not in blob, (word, state)
    for tid in fx.TRIALS:
        assert tid not in blob
    assert not any(k in str(v) for v in at.query_params.values() for k in ("real", "fake", "t_0"))


def test_ctt_rating_flow(tmp_path, monkeypatch, fx):
    info = fx.build(tmp_path)
    monkeypatch.setenv("VIDCOLOR_DB", info["url"])
    store = info["store"]
    items = store.ctt_items("fixture")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("views/ctt_rate.py").run()
    at.text_input[0].input("alice")
    at.button[0].click().run()
    seen = []
    real_of = dict(zip(items["uid"], items["real_path"]))
    for i in range(5):
        uid, shown = at.session_state["ctt_uid"], at.session_state["ctt_shown"]
        side = "left" if shown["left"] == real_of[uid] else "right"
        assert shown["right" if side == "left" else "left"] != real_of[uid]
        seen.append((uid, side))
        page = texts(at)
        for tid in fx.TRIALS:
            assert tid not in page
        assert "real_path" not in page and "fake" not in page.lower()
        assert_session_reveals_nothing(at, fx)
        at.button(key="pick_a" if i % 2 == 0 else "pick_b").click().run()
        assert not at.exception
    votes = store.votes("fixture")
    assert len(votes) == 5 and set(votes["rater"]) == {"alice"}
    for (uid, real_side), (_, v) in zip(seen, votes.iterrows()):
        assert v["uid"] == uid
        assert v["picked_real"] == (v["choice"] == real_side)
        assert v["response_ms"] > 0
    assert len(set(votes["uid"])) == 5
    # the least-voted rule: a second rater starts on an item alice has not seen
    bob = store.add_rater("bob")
    nxt = store.next_ctt_item("fixture", bob)
    assert nxt["uid"] not in set(votes["uid"]) and len(items) == 8
    # results page counts them
    at.switch_page("views/ctt_results.py").run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Votes"] == "5" and metrics["Raters"] == "1" and metrics["Items"] == "8"


def clips(at: AppTest) -> list[str]:
    """The rating page's clips: ``<video>`` elements of st.html (dashboard.rater_ui), no st.video."""
    return [h.value for h in at.get("html") if "<video" in h.value]


def test_ctt_rating_mode_and_rater_mode(tmp_path, monkeypatch, fx):
    info = fx.build(tmp_path)
    monkeypatch.setenv("VIDCOLOR_DB", info["url"])
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["mode"] = "rater"
    at.query_params["task"] = "rating"
    at.run()
    assert [t.value for t in at.title] == ["Color Turing Test"]
    with pytest.raises(ValueError):
        at.switch_page("views/trials.py")  # raters cannot reach the researcher pages
    assert not at.radio  # task preset by the link
    at.button[0].click().run()
    assert len(clips(at)) == 1 and not at.get("video")
    at.button(key="rate_4").click().run()
    votes = info["store"].votes("fixture")
    assert list(votes["mode"]) == ["rating"] and list(votes["rating"]) == [4]
    assert votes["rater"].iloc[0] is None  # anonymous


def test_rater_link_fixes_study_task_and_display_time(tmp_path, monkeypatch, fx):
    """`?mode=rater` showed the sidebar's study picker and let the rater choose the task and the
    display time (default: unlimited), and told raters that "some items are easy checks". The link
    fixes all three (study=, task=, limit=; default 2afc shown for the campaigns' 1 s), the rater
    picks none, and nothing on the page speaks of checks."""
    import re

    from study.store.campaigns import DEFAULT_DISPLAY_S

    info = fx.build(tmp_path)
    info["store"].create_study("newer", objective="val_rmse_rgb", mode="min")  # the newest: no items
    monkeypatch.setenv("VIDCOLOR_DB", info["url"])
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["mode"] = "rater"
    at.query_params["study"] = "fixture"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.selectbox and not at.sidebar.selectbox and not at.toggle  # no study picker, no sidebar
    assert not at.radio and not at.number_input and not at.slider  # no task, no display time to choose
    intro = texts(at)
    assert "Which is real?" in intro and "Rate naturalness" not in intro
    assert "Each one is shown for 1 second; answer from memory after that." in intro
    assert not re.search(r"check|attention|easy|trap", intro, re.I), intro
    at.button[0].click().run()
    assert (at.session_state["ctt_task"], at.session_state["ctt_limit"]) == ("2afc", DEFAULT_DISPLAY_S)
    assert DEFAULT_DISPLAY_S == 1.0 and len(clips(at)) == 2  # the link's study, shown 1 s
    assert not re.search(r"check|attention", texts(at), re.I)
    # no study= in the link: the newest study, still nothing to choose
    plain = AppTest.from_file(APP, default_timeout=60)
    plain.query_params["mode"] = "rater"
    plain.run()
    assert not plain.selectbox and not plain.sidebar.selectbox and not plain.radio and not plain.number_input
    # "newer" has no items: the page says so, offers no Start, and makes no rater (it thanked a
    # rater for judging every item after no vote)
    assert not plain.button and any("has no Color Turing Test items yet" in i.value for i in plain.info)
    assert "judged every item" not in texts(plain)
    assert len(info["store"].raters()) == 1  # the one Start above


def test_ctt_results_page_with_exclusion(tmp_path, monkeypatch, fx):
    info = fx.build(tmp_path)
    monkeypatch.setenv("VIDCOLOR_DB", info["url"])
    store = info["store"]
    items = store.ctt_items("fixture")
    good, bad = store.add_rater("good"), store.add_rater("bad")
    for _, it in items.iterrows():
        if it["is_attention"]:
            store.record_vote(good, it["uid"], choice="left", picked_real=True, mode="2afc")
            store.record_vote(bad, it["uid"], choice="left", picked_real=False, mode="2afc")
        else:
            store.record_vote(good, it["uid"], choice="right", picked_real=True, mode="2afc")
            store.record_vote(bad, it["uid"], choice="right", picked_real=False, mode="2afc")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("views/ctt_results.py").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Raters failing attention checks"] == "1"
    per_trial = at.dataframe[0].value
    # each trial item: one vote fooled (bad), one not (good) -> 50%
    assert (per_trial["fooling_rate"] == 0.5).all()
    at.toggle(key="ctt_exclude").set_value(True).run()
    per_trial = at.dataframe[0].value
    assert (per_trial["fooling_rate"] == 0.0).all() and (per_trial["excluded_raters"] == 1).all()
    per_exp = at.dataframe[1].value
    assert set(per_exp["experiment"]) == {"exp1", "exp2", "exp5"}


@pytest.mark.filterwarnings("ignore:Query string argument")  # pysqlite ignores ?password=
def test_database_caption_masks_a_query_string_password(fixture_study, monkeypatch):
    monkeypatch.setenv("VIDCOLOR_DB", f"{fixture_study['url']}?password=s3cret")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert f"Database: {fixture_study['url']}?password=***" in [c.value for c in at.sidebar.caption]
    assert "s3cret" not in texts(at) + "\n".join(str(c.value) for c in at.sidebar.caption)


def test_start_up_imports_neither_torch_nor_ray(fixture_study):
    code = (
        "import json, sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({APP!r}, default_timeout=60)\n"
        "at.run()\n"
        "for p in ('trials', 'explore', 'trial', 'ctt_results'):\n"
        "    at.switch_page(f'views/{p}.py'); at.run()\n"
        "    assert not at.exception, at.exception\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ray'))))\n"
    )
    env = {**__import__("os").environ, "VIDCOLOR_DB": fixture_study["url"]}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_ctt_display_time_limit_hides_the_clips(tmp_path, monkeypatch, fx):
    import time

    info = fx.build(tmp_path)
    monkeypatch.setenv("VIDCOLOR_DB", info["url"])
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["limit"] = "1.5"
    at.run()
    at.switch_page("views/ctt_rate.py").run()
    assert not at.number_input  # limit preset by the link
    at.button[0].click().run()
    assert len(clips(at)) == 2 and not any("Time is up" in i.value for i in at.info)
    time.sleep(1.6)
    at.run()
    assert len(clips(at)) == 0 and any("Time is up" in i.value for i in at.info)
    at.button(key="pick_b").click().run()  # answering after the limit still counts
    votes = info["store"].votes("fixture")
    assert len(votes) == 1 and votes["response_ms"].iloc[0] >= 1600


def test_ctt_still_frames_and_rating_only_legacy_items(tmp_path, monkeypatch, fx):
    from study.ctt import build as ctt

    info = fx.build(tmp_path, with_items=False)
    monkeypatch.setenv("VIDCOLOR_DB", info["url"])
    store = info["store"]
    ctt.build_items(store, "fixture", top=1, clips=1, attention_rate=0.0, medium="frame", out=tmp_path / "ctt")
    [still] = store.ctt_items("fixture").itertuples()
    # a legacy-style item (black-and-white original): shown only in the rating task
    [legacy] = store.add_ctt_items(
        "fixture",
        [
            {
                "real_path": still.real_path,
                "fake_path": still.fake_path,
                "medium": "frame",
                "trial_id": "t_002",
                "split": "legacy",
                "real_is_color": False,
            }
        ],
    )
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("views/ctt_rate.py").run()
    at.button[0].click().run()
    assert at.session_state["ctt_uid"] == still.uid and at.session_state["ctt_medium"] == "frame"
    assert len(at.get("image")) == 2 and not clips(at) and not at.get("video")  # two stills side by side
    assert "Which picture is the real one?" in texts(at)
    assert_session_reveals_nothing(at, fx)
    real_left = at.session_state["ctt_shown"]["left"] == still.real_path
    at.button(key="pick_a").click().run()
    assert any("judged every item" in s.value for s in at.success)  # the legacy item is not a pair
    votes = store.votes("fixture")
    assert list(votes["uid"]) == [still.uid] and list(votes["choice"]) == ["left"]
    assert votes["picked_real"].iloc[0] == real_left

    rating = AppTest.from_file(APP, default_timeout=60)
    rating.query_params["task"] = "rating"
    rating.run()
    rating.switch_page("views/ctt_rate.py").run()
    rating.button[0].click().run()
    got = []
    for _ in range(2):
        got.append(rating.session_state["ctt_uid"])
        assert len(rating.get("image")) == 1  # the colorized still alone
        rating.button(key="rate_2").click().run()
    assert sorted(got) == sorted([still.uid, legacy]) and any("judged every item" in s.value for s in rating.success)


def test_ctt_results_page_ranks_trials_from_pairwise_votes(tmp_path, monkeypatch, fx):
    info = fx.build(tmp_path)
    monkeypatch.setenv("VIDCOLOR_DB", info["url"])
    store = info["store"]
    store.create_campaign("fixture", "rank", task="pairwise", session_items=6, practice_items=0, attention_share=0.0)
    (token,) = store.add_invites("fixture", "rank", 1, max_uses=None)
    trial_of = store.ctt_items("fixture").set_index("uid")["trial_id"]
    order = {"t_002": 0, "t_004": 1, "t_001": 2}  # every rater prefers the earlier trial
    for _ in range(3):
        sid = store.open_session(token)
        while not (state := store.session_state(sid))["done"]:
            a, b = state["item"]["uid"].split("|")
            store.answer(sid, state["item"]["uid"], winner="a" if order[trial_of[a]] < order[trial_of[b]] else "b")
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("views/ctt_results.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Pairwise ranking (Bradley-Terry)" in texts(at) and "18 pairwise votes" in texts(at)
    ranking = at.dataframe[0].value
    assert list(ranking["trial"]) == ["t_002", "t_004", "t_001"] and list(ranking["rank"]) == [1, 2, 3]
    campaigns = at.dataframe[-1].value
    assert list(campaigns["name"]) == ["rank"] and int(campaigns["sessions"].iloc[0]) == 3


def test_a_malformed_json_value_is_an_error_message_not_a_traceback(tmp_path, monkeypatch, capsys, fx):
    """A trial's config damaged in the SQLite file: the store names table, row id and column; `ctt
    build` says so and exits 2, and the dashboard's pages show it with st.error."""
    import sqlite3

    from study.cli import main as cli

    info = fx.build(tmp_path / "db", with_items=False)
    with sqlite3.connect(tmp_path / "db" / "results.db") as con:
        con.execute("UPDATE vc_trials SET config = '{\"lr\": 0.1,' WHERE trial_id = 't_002'")
        (row_id,) = con.execute("SELECT id FROM vc_trials WHERE trial_id = 't_002'").fetchone()
    message = (
        f"results database {tmp_path / 'db' / 'results.db'}: table vc_trials, row id {row_id}, column config "
        "holds malformed JSON (Expecting property name enclosed in double quotes); restore the file from a "
        "copy or correct that value"
    )
    args = ["ctt", "build", "--db", info["url"], "--top", "1", "--medium", "frame", "--out", str(tmp_path / "m")]
    assert cli(args) == 2
    err = capsys.readouterr().err
    assert f"error: {message}\n" in err and "Traceback" not in err
    assert info["store"].ctt_items("fixture").empty
    monkeypatch.setenv("VIDCOLOR_DB", info["url"])
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("views/trials.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert message in [e.value for e in at.error]
