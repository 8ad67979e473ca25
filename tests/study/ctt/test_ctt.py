"""`vidcolor ctt build|export`, the dashboard's analysis helpers and `vidcolor dashboard`'s command."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from dashboard import analysis
from models.errors import VidcolorError
from study import serve
from study.ctt import build as ctt
from study.cli import main as cli

ROOT = Path(__file__).resolve().parents[3]


def frames(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])


def md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def test_choose_trials(fixture_study):
    trials = fixture_study["store"].trials("fixture")
    # best per experiment: exp1 t_001 (19.6; t_006 failed), exp2 t_002 (17.24), exp5 t_004 (18.7)
    assert ctt.choose_trials(trials, "min") == ["t_001", "t_002", "t_004"]
    assert ctt.choose_trials(trials, "min", top=2) == ["t_002", "t_004"]
    assert ctt.choose_trials(trials, "min", trial_ids=["t_003"]) == ["t_003"]
    with pytest.raises(VidcolorError, match=r"unknown trial id\(s\) \['nope'\]"):
        ctt.choose_trials(trials, "min", trial_ids=["nope"])


def test_built_items_hide_side_and_trial(fixture_study):
    store = fixture_study["store"]
    items = store.ctt_items("fixture")
    # 3 trials x 2 clips + round(0.25 * 6 / 0.75) = 2 attention checks
    assert len(items) == 8 and int(items["is_attention"].sum()) == 2
    assert sorted(items.loc[~items["is_attention"], "trial_id"]) == ["t_001"] * 2 + ["t_002"] * 2 + ["t_004"] * 2
    paths = list(items["real_path"]) + list(items["fake_path"])
    assert len(set(paths)) == len(paths)
    names = [Path(p).name for p in paths]
    assert all(len(n) == 28 and n.endswith(".mp4") and all(ch in "0123456789abcdef" for ch in n[:-4]) for n in names)
    # two copies of the same real clip differ in bytes (no shared hash) but not in content
    regular = items[~items["is_attention"]]
    by_clip = regular.groupby(["video_id", "clip"])["real_path"].apply(list)
    a, b = by_clip.iloc[0][:2]
    assert md5(a) != md5(b)
    assert np.array_equal(frames(a), frames(b))
    # the fake of a regular item is the trial's prediction: same shape, close to the real clip
    row = regular.iloc[0]
    real, fake = frames(row["real_path"]), frames(row["fake_path"])
    assert real.shape == fake.shape
    att = items[items["is_attention"]].iloc[0]
    wrong = frames(att["fake_path"]).astype(int)
    assert np.abs(wrong - frames(att["real_path"]).astype(int)).mean() > 3 * np.abs(fake.astype(int) - real).mean()


def png(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_frame_items_are_png_stills(fx, tmp_path, capsys):
    info = fx.build(tmp_path / "db", with_items=False)
    store = info["store"]
    assert cli(["ctt", "build", "--db", info["url"], "--kind", "frame", "--top", "2", "--clips", "2",
                "--attention-rate", "0.2", "--out", str(tmp_path / "m")]) == 0
    assert "study fixture: 5 CTT frame items" in capsys.readouterr().out  # 2 x 2 + round(0.2 * 4 / 0.8)
    items = store.ctt_items("fixture")
    assert set(items["kind"]) == {"frame"} and items["real_is_color"].all()
    assert set(items.loc[~items["is_attention"], "split"]) == {"val"}  # the trials' validation samples
    names = [Path(p).name for p in list(items["real_path"]) + list(items["fake_path"])]
    assert len(set(names)) == 10 and all(len(n) == 28 and n.endswith(".png") for n in names)
    media = store.media("fixture")
    for _, it in items[~items["is_attention"]].iterrows():
        # stored stills are frames 0 and 7: the middle (3.5) is equally near both, the earlier wins
        assert it["frame"] == 0
        src = media[(media["trial_id"] == it["trial_id"]) & (media["video_id"] == it["video_id"])
                    & (media["frame"] == 0)].set_index("kind")["path"]
        assert np.array_equal(png(it["real_path"]), png(src["gt_png"]))  # lossless copies
        assert np.array_equal(png(it["fake_path"]), png(src["pred_png"]))
        assert md5(it["real_path"]) != md5(src["gt_png"])  # but not the same bytes
    att = items[items["is_attention"]].iloc[0]
    assert np.array_equal(png(att["fake_path"]), ctt.wrong_recoloring(png(att["real_path"])))
    with pytest.raises(SystemExit) as exc:  # argparse refuses it
        cli(["ctt", "build", "--db", info["url"], "--kind", "gif"])
    assert exc.value.code == 2 and "invalid choice: 'gif'" in capsys.readouterr().err


def test_legacy_build_needs_a_checkpoint(fx, tmp_path, capsys):
    info = fx.build(tmp_path / "db", with_items=False)
    assert cli(["ctt", "build", "--db", info["url"], "--split", "legacy", "--out", str(tmp_path / "m")]) == 2
    assert "legacy clips are rendered from the checkpoint" in capsys.readouterr().err
    assert info["store"].ctt_items("fixture").empty


def test_wrong_recoloring_rotates_channels():
    px = np.array([[[200, 100, 50]]], np.uint8)
    out = ctt.wrong_recoloring(px)
    # rotated to (50, 200, 100); gray 0.299·50 + 0.587·200 + 0.114·100 = 143.75; chroma doubled
    assert out[0, 0].tolist() == [0, 255, 56]


def test_cli_build_and_export(fixture_study, fx, tmp_path, capsys):
    info = fx.build(tmp_path / "db", with_items=False)
    url = info["url"]
    assert cli(["ctt", "build", "--db", url, "--top", "1", "--clips", "1", "--attention-rate", "0.5",
                "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "study fixture: 2 CTT clip items" in out and "t_002" in out and "(attention check)" in out
    store = info["store"]
    items = store.ctt_items("fixture").set_index("is_attention")
    r1, r2, r3 = (store.add_rater(n) for n in ("r1", "r2", "r3"))
    uid, att = items.loc[False, "uid"], items.loc[True, "uid"]
    store.record_vote(r1, uid, choice="left", picked_real=False)   # fooled
    store.record_vote(r2, uid, choice="left", picked_real=True)
    store.record_vote(r3, uid, choice="right", picked_real=False)  # fooled, but fails the check
    store.record_vote(r3, att, choice="right", picked_real=False)
    assert cli(["ctt", "export", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "t_002" in out and "0.667" in out  # 2 of 3 fooled
    csv = tmp_path / "res.csv"
    assert cli(["ctt", "export", "--db", url, "--exclude-failed", "--out", str(csv)]) == 0
    res = pd.read_csv(csv).set_index(["level", "name"])
    assert res.loc[("trial", "t_002"), "votes"] == 2 and res.loc[("trial", "t_002"), "fooled"] == 1
    assert res.loc[("experiment", "exp2"), "excluded_raters"] == 1
    assert cli(["ctt", "build", "--db", url, "--split", "train"]) == 2
    assert "--split must be test or legacy" in capsys.readouterr().err
    assert cli(["ctt", "export", "--db", url, "--study", "nope"]) == 2


def test_pareto_front_by_hand():
    df = pd.DataFrame({"rmse": [1.0, 2.0, 2.0, 3.0, None], "col": [1.0, 3.0, 2.0, 3.0, 9.0]})
    # row 2 is dominated by row 1 (same rmse, less colorful); row 3 by row 1; NaN never on the front
    front = analysis.pareto_front(df, {"rmse": "min", "col": "max"})
    assert front.tolist() == [True, True, False, False, False]


def test_edge_of_range_by_hand():
    df = pd.DataFrame({"obj": [3.0, 1.0, 2.0], "lr": [1e-3, 1e-2, 1e-4], "lam": [0.5, 0.55, 0.9], "kind": ["a", "b", "c"]})
    warns = analysis.edge_of_range(df, ["lr", "lam", "kind"], "obj", "min",
                                   ranges={"lr": (1e-4, 1e-2), "lam": (0.0, 1.0)}, log_params={"lr"})
    assert [(w.param, w.side) for w in warns] == [("lr", "high")]  # lam 0.55 mid-range, kind categorical
    warns = analysis.edge_of_range(df, ["lr"], "obj", "max", ranges={"lr": (1e-4, 1e-2)}, log_params={"lr"})
    assert warns == []  # best (obj 3) has lr 1e-3: the middle in log space


def test_importance_prefers_the_parameter_that_matters():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, 40), rng.uniform(0, 1, 40)
    df = pd.DataFrame({"param_x": x, "param_y": y, "objective": (x - 0.3) ** 2 + 0.001 * y})
    imp = analysis.param_importance(df, ["param_x", "param_y"], "objective")
    assert imp.index[0] == "param_x" and imp["param_x"] > imp["param_y"]
    assert analysis.param_importance(df.head(1), ["param_x"], "objective").empty


def test_serve_command_and_imports(tmp_path):
    cmd = serve.streamlit_command(8765)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("dashboard/app.py")
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    assert serve.dashboard_env("sqlite:///x.db")["VIDCOLOR_DB"] == "sqlite:///x.db"
    with pytest.raises(VidcolorError, match="--port"):
        serve.streamlit_command(70000)
    code = ("import sys, study.serve, study.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ray', 'dashboard', 'streamlit')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


@pytest.mark.slow
def test_build_renders_test_clips_from_the_checkpoint(demo_shards, tmp_path):
    import torch

    from data_shards.reader import ShardSet
    from models.checkpoint import save_checkpoint
    from models.gamut import ABGamut
    from models.model import create_model
    from models.presets import get_preset
    from study.store import Store

    torch.manual_seed(0)
    config = get_preset("exp2").replace(size="tiny")
    gamut = ABGamut(config.grid)
    save_checkpoint(tmp_path / "ck", create_model(config, gamut), config, gamut)
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    store.create_study("s", objective="val_rmse_rgb", shards=str(demo_shards))
    store.upsert_trial("s", "t1", experiment="exp2", checkpoint=str(tmp_path / "ck"))
    store.log_epoch("s", "t1", 0, {"val_rmse_rgb": 10.0})
    items = ctt.build_items(store, "s", clips=2, attention_rate=0.0, out=tmp_path / "ctt")
    assert len(items) == 2 and set(items["trial_id"]) == {"t1"}
    test_videos = {v["id"] for v in ShardSet(demo_shards).manifest["videos"] if v["split"] == "test"}
    stored = store.ctt_items("s")
    assert set(stored["video_id"]) <= test_videos  # test clips, not the validation samples
    clip_len = ShardSet(demo_shards).clip_len
    for _, it in stored.iterrows():
        real, fake = frames(it["real_path"]), frames(it["fake_path"])
        assert real.shape == fake.shape and real.shape[0] == clip_len
    assert sorted(p.name for p in (tmp_path / "ctt").iterdir()) == sorted(
        Path(p).name for p in list(stored["real_path"]) + list(stored["fake_path"]))
    assert set(stored["split"]) == {"test"} and stored["real_is_color"].all()
    manifest = ShardSet(demo_shards).manifest
    sources = {v["id"]: v["source"] for v in manifest["videos"]}
    assert all(it["source"] == sources[it["video_id"]] for _, it in stored.iterrows())

    # legacy footage: rating items only (the originals are black and white), via the command line
    assert cli(["ctt", "build", "--db", store.url, "--split", "legacy", "--clips", "1", "--attention-rate", "0.5",
                "--out", str(tmp_path / "legacy")]) == 0
    items = store.ctt_items("s")
    legacy = items[items["split"] == "legacy"]
    assert len(legacy) == 2 and not legacy["real_is_color"].any() and legacy["is_attention"].sum() == 1
    legacy_videos = {v["id"] for v in manifest["videos"] if v["split"] == "legacy"}
    regular = legacy[~legacy["is_attention"]].iloc[0]
    assert regular["video_id"] in legacy_videos
    gray = frames(regular["real_path"]).astype(int)
    assert np.abs(gray - gray.mean(axis=-1, keepdims=True)).max() <= 3  # the original has no color
    rater = store.add_rater("r")
    drawn = {store.next_ctt_item("s", rater, mode="2afc")["uid"] for _ in range(10)}
    assert drawn <= set(stored["uid"])  # a "which is real" draw never shows a legacy item
    assert set(legacy["uid"]) <= {store.next_ctt_item("s", rater, mode="rating", rng=__import__("random").Random(k))[
        "uid"] for k in range(60)}

    # still frames rendered from the checkpoint
    frame_items = ctt.build_items(store, "s", clips=1, attention_rate=0.0, kind="frame", out=tmp_path / "still")
    it = store.ctt_items("s").set_index("uid").loc[frame_items["uid"].iloc[0]]
    assert it["kind"] == "frame" and it["frame"] == (clip_len - 1) // 2 and it["split"] == "test"
    assert png(it["real_path"]).shape == png(it["fake_path"]).shape


def test_tradeoff_axes_follow_the_metric_names():
    cols = ["best_val_rmse_ab", "best_val_rmse_rgb", "best_val_colorfulness_gt", "best_val_colorfulness_gap",
            "best_val_colorfulness_ratio", "best_val_colorfulness_pred", "best_val_temporal_error", "best_val_psnr"]
    assert analysis.tradeoff_columns(cols) == {
        "best_val_rmse_rgb": ("RMSE", "min"), "best_val_colorfulness_pred": ("colorfulness", "max"),
        "best_val_temporal_error": ("temporal instability", "min")}


def test_search_ranges_from_both_spec_forms():
    from dashboard import data

    listed = {"spec": {"search": [{"name": "lr", "type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                                  {"name": "grid", "type": "choice", "choices": [10, 20]}]}}
    table = {"spec": {"search": {"lam": {"type": "float", "low": 0.2, "high": 1.0}}}}
    assert data.search_ranges(listed) == ({"param_lr": (1e-4, 1e-2)}, {"param_lr"}, {"param_grid"})
    assert data.search_ranges(table) == ({"param_lam": (0.2, 1.0)}, set(), set())
    assert data.search_ranges(None) == ({}, set(), set())
