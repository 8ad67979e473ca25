"""`vidcolor ctt build` (study.ctt.build): choosing trials, pairs, options, attention checks, items."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import av
import numpy as np
import pytest

from models.errors import VidcolorError
from study.cli import build_parser
from study.cli import main as cli
from study.ctt import build
from study.ctt.clips import read_png, wrong_recoloring


def frames(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])


def md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def test_choose_trials(fixture_study):
    trials = fixture_study["store"].trials("fixture")
    # best per experiment: exp1 t_001 (19.6; t_006 failed), exp2 t_002 (17.24), exp5 t_004 (18.7)
    assert build.choose_trials(trials, "min") == ["t_001", "t_002", "t_004"]
    assert build.choose_trials(trials, "min", top=2) == ["t_002", "t_004"]
    assert build.choose_trials(trials, "min", trial_ids=["t_003"]) == ["t_003"]
    with pytest.raises(VidcolorError, match=r"unknown trial id\(s\) \['nope'\]"):
        build.choose_trials(trials, "min", trial_ids=["nope"])
    with pytest.raises(VidcolorError, match="--top must be at least 1, got 0"):
        build.choose_trials(trials, "min", top=0)


def test_default_choice_of_one_experiment_is_the_best_three(fixture_study):
    """Every trial of one experiment (a study of one preset, as `make demo`'s exp5): the best per
    experiment was a single trial, a test with nothing to compare; the default is now the best 3."""
    trials = fixture_study["store"].trials("fixture")
    one = trials.assign(experiment="exp5")
    assert build.choose_trials(one, "min") == ["t_002", "t_004", "t_005"]  # 17.24, 18.7, 19.575; t_006 failed
    ids, why = build.pick_trials(one, "min", objective="val_rmse_rgb")
    assert ids == ["t_002", "t_004", "t_005"] and why == "the best 3 by val_rmse_rgb (min): every scored trial is exp5"
    assert build.pick_trials(one.assign(experiment=None), "max")[0] == ["t_003", "t_001", "t_005"]
    assert build.pick_trials(one.head(2), "min")[0] == ["t_002", "t_001"]  # fewer than 3: all there are
    ids, why = build.pick_trials(trials, "min", objective="val_rmse_rgb")  # several experiments: one each
    assert ids == ["t_001", "t_002", "t_004"] and why == "the best of each of 3 experiments by val_rmse_rgb (min)"


def test_default_build_of_one_experiment_names_the_trials_it_picked(fx, tmp_path, capsys):
    info = fx.build(tmp_path / "db", with_items=False)
    store = info["store"]
    for tid in fx.TRIALS:
        store.upsert_trial("fixture", tid, experiment="exp5")
    assert cli(_build_cli(info, tmp_path / "m")) == 0
    out = capsys.readouterr().out
    assert (
        "trials: t_002, t_004, t_005 (the best 3 by val_rmse_rgb (min): every scored trial is exp5; "
        "--top K or --trials IDS to choose others)"
    ) in out
    items = store.ctt_items("fixture")
    assert sorted(items["trial_id"].dropna().unique()) == ["t_002", "t_004", "t_005"]
    assert cli(_build_cli(info, tmp_path / "m2", "--top", "1")) == 0
    assert "trials: t_002 (--top 1: the best 1 by val_rmse_rgb (min))\n" in capsys.readouterr().out


def test_build_options_are_checked_on_construction():
    opts = build.BuildOptions(trial_ids=["t_1", "t_2"])
    assert opts.trial_ids == ("t_1", "t_2") and opts.real_is_color  # a list becomes a tuple
    assert not build.BuildOptions(split="legacy").real_is_color
    for bad, message in [
        ({"split": "train"}, "--split must be test or legacy, got 'train'"),
        ({"medium": "gif"}, r"--medium must be one of \('clip', 'frame'\), got 'gif'"),
        ({"attention_rate": 1.0}, r"--attention-rate must be in \[0, 1\), got 1.0"),
        ({"clips": 0}, "--clips must be at least 1, got 0"),
    ]:
        with pytest.raises(VidcolorError, match=message):
            build.BuildOptions(**bad)


def test_medium_flag_and_its_hidden_old_name(capsys):
    parse = build_parser().parse_args
    assert parse(["ctt", "build"]).medium == "clip"
    assert parse(["ctt", "build", "--medium", "frame"]).medium == "frame"
    old = parse(["ctt", "build", "--kind", "frame"])  # scripts written for the old name still run
    assert old.medium == "frame" and not hasattr(old, "kind")
    assert parse(["ctt", "build", "--kind", "frame", "--medium", "clip"]).medium == "clip"  # the last one wins
    with pytest.raises(SystemExit):
        parse(["ctt", "build", "--help"])
    usage = capsys.readouterr().out
    assert "--medium {clip,frame}" in usage and "--kind" not in usage


def test_old_flag_builds_the_same_items(fx, tmp_path, capsys):
    info = fx.build(tmp_path / "db", with_items=False)
    assert (
        cli(
            [
                "ctt",
                "build",
                "--db",
                info["url"],
                "--kind",
                "frame",
                "--top",
                "1",
                "--clips",
                "1",
                "--attention-rate",
                "0",
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 0
    )
    assert "study fixture: 1 CTT frame items" in capsys.readouterr().out
    assert list(info["store"].ctt_items("fixture")["medium"]) == ["frame"]


def test_media_folder_is_checked_first_and_only_gains_files(fx, tmp_path, capsys):
    """`--out` naming a file (the FileExistsError traceback of old) or under one: an error naming the
    flag and path, before any item is made; an existing media folder keeps what it holds."""
    info = fx.build(tmp_path / "db", with_items=False)
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"mine")
    for out, message in (
        (notes, f"{notes}: exists and is a file, not a folder"),
        (notes / "m", f"{notes / 'm'}: {notes} is a file, not a folder"),
    ):
        assert cli(_build_cli(info, out, "--top", "1")) == 2
        err = capsys.readouterr().err
        assert f"error: --out {message}" in err and "Traceback" not in err
    assert notes.read_bytes() == b"mine" and info["store"].ctt_items("fixture").empty
    media = tmp_path / "m"
    media.mkdir()
    (media / "earlier.png").write_bytes(b"an earlier item's still")
    assert cli(_build_cli(info, media, "--top", "1")) == 0
    assert (media / "earlier.png").read_bytes() == b"an earlier item's still" and len(os.listdir(media)) == 3


def test_attention_count_by_hand():
    assert build.attention_count(6, 0.25) == 2  # round(0.25 * 6 / 0.75) = round(2.0)
    assert build.attention_count(20, 0.1) == 2  # round(2.22)
    assert build.attention_count(3, 0.5) == 3  # half of all 6 items
    assert build.attention_count(1, 0.1) == 1  # round(0.11) = 0, but at least one check
    assert build.attention_count(10, 0.0) == 0 and build.attention_count(0, 0.5) == 0


def _still_items(tmp_path, colors, split):
    from PIL import Image

    items = []
    for k, color in enumerate(colors):
        real, fake = tmp_path / f"real{k}.png", tmp_path / f"fake{k}.png"
        Image.fromarray(np.full((4, 6, 3), color, np.uint8)).save(real)
        Image.fromarray(np.full((4, 6, 3), color[::-1], np.uint8)).save(fake)
        items.append({"real_path": str(real), "fake_path": str(fake), "split": split})
    return items


@pytest.mark.parametrize("split", ["test", "legacy"])
def test_attention_items_recolor_the_right_side(tmp_path, split):
    colors = [(200, 100, 50), (10, 120, 240)]
    regular = _still_items(tmp_path, colors, split)
    out = tmp_path / "out"
    out.mkdir()
    opts = build.BuildOptions(attention_rate=0.75, medium="frame", split=split)  # round(.75 * 2 / .25) = 6 checks
    checks = build.attention_items(regular, opts, out, random.Random(0), np.random.default_rng(0))
    assert len(checks) == 6 and all(c["is_attention"] and c["trial_id"] is None for c in checks)
    assert all(c["split"] == split and c["real_is_color"] == (split == "test") for c in checks)
    drawn = []
    for c in checks:
        real = read_png(c["real_path"]).astype(int)
        # a copy of a regular item's real side (dithered: each value within one level)
        base = next(k for k, col in enumerate(colors) if np.abs(real - np.array(col)).max() <= 1)
        drawn.append(base)
        side = np.full((4, 6, 3), colors[base] if split == "test" else colors[base][::-1], np.uint8)
        assert np.abs(read_png(c["fake_path"]).astype(int) - wrong_recoloring(side)).max() <= 1
        assert Path(c["real_path"]).stat().st_size == Path(c["fake_path"]).stat().st_size
    assert sorted(drawn[:2]) == [0, 1]  # every regular item is drawn once before any repeats
    assert len(list(out.iterdir())) == 12  # a fresh copy and a recoloring per check


def test_built_items_hide_side_and_trial(fixture_study):
    store = fixture_study["store"]
    items = store.ctt_items("fixture")
    # 3 trials x 2 clips + round(0.25 * 6 / 0.75) = 2 attention checks
    assert len(items) == 8 and int(items["is_attention"].sum()) == 2
    assert sorted(items.loc[~items["is_attention"], "trial_id"]) == ["t_001"] * 2 + ["t_002"] * 2 + ["t_004"] * 2
    assert set(fixture_study["items"]["uid"]) == set(items["uid"])
    paths = list(items["real_path"]) + list(items["fake_path"])
    assert len(set(paths)) == len(paths)
    names = [Path(p).name for p in paths]
    assert all(len(n) == 28 and n.endswith(".mp4") and all(ch in "0123456789abcdef" for ch in n[:-4]) for n in names)
    # two copies of the same real clip differ in bytes (no shared hash) but not visibly
    regular = items[~items["is_attention"]]
    by_clip = regular.groupby(["video_id", "clip"])["real_path"].apply(list)
    a, b = by_clip.iloc[0][:2]
    assert md5(a) != md5(b)
    diff = frames(a).astype(float) - frames(b)
    assert 10 * np.log10(255**2 / (diff**2).mean()) > 34  # PSNR between the copies: dither + re-encoding
    # the fake of a regular item is the trial's prediction: same shape, close to the real clip
    row = regular.iloc[0]
    real, fake = frames(row["real_path"]), frames(row["fake_path"])
    assert real.shape == fake.shape
    att = items[items["is_attention"]].iloc[0]
    wrong = frames(att["fake_path"]).astype(int)
    assert np.abs(wrong - frames(att["real_path"]).astype(int)).mean() > 3 * np.abs(fake.astype(int) - real).mean()


def test_frame_items_are_png_stills(fx, tmp_path, capsys):
    info = fx.build(tmp_path / "db", with_items=False)
    store = info["store"]
    assert (
        cli(
            [
                "ctt",
                "build",
                "--db",
                info["url"],
                "--medium",
                "frame",
                "--top",
                "2",
                "--clips",
                "2",
                "--attention-rate",
                "0.2",
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 0
    )
    assert "study fixture: 5 CTT frame items" in capsys.readouterr().out  # 2 x 2 + round(0.2 * 4 / 0.8)
    items = store.ctt_items("fixture")
    assert set(items["medium"]) == {"frame"} and items["real_is_color"].all()
    assert set(items.loc[~items["is_attention"], "split"]) == {"val"}  # the trials' validation samples
    names = [Path(p).name for p in list(items["real_path"]) + list(items["fake_path"])]
    assert len(set(names)) == 10 and all(len(n) == 28 and n.endswith(".png") for n in names)
    media = store.media("fixture")
    for _, it in items[~items["is_attention"]].iterrows():
        # stored stills are frames 0 and 7: the middle (3.5) is equally near both, the earlier wins
        assert it["frame"] == 0
        src = media[
            (media["trial_id"] == it["trial_id"]) & (media["video_id"] == it["video_id"]) & (media["frame"] == 0)
        ].set_index("media_type")["path"]
        # lossless copies but for the dither (every value within one level), not the same bytes
        assert np.abs(read_png(it["real_path"]).astype(int) - read_png(src["gt_png"])).max() <= 1
        assert np.abs(read_png(it["fake_path"]).astype(int) - read_png(src["pred_png"])).max() <= 1
        assert md5(it["real_path"]) != md5(src["gt_png"])
    att = items[items["is_attention"]].iloc[0]
    # out = 2 * channel - gray: a one-level dither of the real side moves it by up to 3, flooring and
    # the fake side's own dither by one more each
    assert np.abs(read_png(att["fake_path"]).astype(int) - wrong_recoloring(read_png(att["real_path"]))).max() <= 5
    with pytest.raises(SystemExit) as exc:  # argparse refuses it
        cli(["ctt", "build", "--db", info["url"], "--medium", "gif"])
    assert exc.value.code == 2 and "invalid choice: 'gif'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # the old flag checks its value the same way
        cli(["ctt", "build", "--db", info["url"], "--kind", "gif"])
    assert exc.value.code == 2 and "invalid choice: 'gif'" in capsys.readouterr().err


def test_legacy_build_needs_a_checkpoint_and_options_combine(fx, tmp_path, capsys):
    info = fx.build(tmp_path / "db", with_items=False)
    store = info["store"]
    assert cli(["ctt", "build", "--db", info["url"], "--split", "legacy", "--out", str(tmp_path / "m")]) == 2
    assert "legacy clips are rendered from the checkpoint" in capsys.readouterr().err
    assert store.ctt_items("fixture").empty
    with pytest.raises(VidcolorError, match="no study named 'nope'"):
        build.build_items(store, "nope", build.BuildOptions())
    with pytest.raises(TypeError):  # a misspelt setting is refused, not ignored
        build.build_items(store, "fixture", clip=1)
    # settings given next to options replace those fields: one frame item of the best trial
    items = build.build_items(
        store,
        "fixture",
        build.BuildOptions(top=1, clips=5, attention_rate=0.0),
        clips=1,
        medium="frame",
        out=tmp_path / "one",
    )
    assert list(items.columns) == ["uid", "trial_id", "is_attention", "split", "real_is_color"]
    assert items[["trial_id", "is_attention", "split"]].values.tolist() == [["t_002", False, "val"]]
    stored = store.ctt_items("fixture")
    assert list(stored["medium"]) == ["frame"] and len(list((tmp_path / "one").iterdir())) == 2


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
    items = build.build_items(store, "s", clips=2, attention_rate=0.0, out=tmp_path / "ctt")
    assert len(items) == 2 and set(items["trial_id"]) == {"t1"}
    test_videos = {v["id"] for v in ShardSet(demo_shards).manifest["videos"] if v["split"] == "test"}
    stored = store.ctt_items("s")
    assert set(stored["video_id"]) <= test_videos  # test clips, not the validation samples
    clip_len = ShardSet(demo_shards).clip_len
    for _, it in stored.iterrows():
        real, fake = frames(it["real_path"]), frames(it["fake_path"])
        assert real.shape == fake.shape and real.shape[0] == clip_len
    assert sorted(p.name for p in (tmp_path / "ctt").iterdir()) == sorted(
        Path(p).name for p in list(stored["real_path"]) + list(stored["fake_path"])
    )
    assert set(stored["split"]) == {"test"} and stored["real_is_color"].all()
    manifest = ShardSet(demo_shards).manifest
    sources = {v["id"]: v["source"] for v in manifest["videos"]}
    assert all(it["source"] == sources[it["video_id"]] for _, it in stored.iterrows())

    # legacy footage: rating items only (the originals are black and white), via the command line
    assert (
        cli(
            [
                "ctt",
                "build",
                "--db",
                store.url,
                "--split",
                "legacy",
                "--clips",
                "1",
                "--attention-rate",
                "0.5",
                "--out",
                str(tmp_path / "legacy"),
            ]
        )
        == 0
    )
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
    assert set(legacy["uid"]) <= {
        store.next_ctt_item("s", rater, mode="rating", rng=random.Random(k))["uid"] for k in range(60)
    }

    # still frames rendered from the checkpoint
    frame_items = build.build_items(store, "s", clips=1, attention_rate=0.0, medium="frame", out=tmp_path / "still")
    it = store.ctt_items("s").set_index("uid").loc[frame_items["uid"].iloc[0]]
    assert it["medium"] == "frame" and it["frame"] == (clip_len - 1) // 2 and it["split"] == "test"
    assert read_png(it["real_path"]).shape == read_png(it["fake_path"]).shape


def _build_cli(info, out, *extra) -> list[str]:
    return [
        "ctt",
        "build",
        "--db",
        info["url"],
        "--medium",
        "frame",
        "--clips",
        "1",
        "--attention-rate",
        "0",
        "--out",
        str(out),
        *extra,
    ]


def test_trials_and_top_exclude_each_other(fx, tmp_path, capsys):
    """`--trials` with `--top` (once silently ignored): refused by the parser, and by BuildOptions."""
    info = fx.build(tmp_path / "db", with_items=False)
    with pytest.raises(SystemExit) as exit_:
        cli(_build_cli(info, tmp_path / "m", "--trials", "t_001", "--top", "2"))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument --top: not allowed with argument --trials" in err and "Traceback" not in err
    with pytest.raises(VidcolorError, match=r"^--trials and --top exclude each other \(got both, --top 2\): give one$"):
        build.BuildOptions(trial_ids=["t_001"], top=2)
    assert info["store"].ctt_items("fixture").empty and not (tmp_path / "m").exists()


def test_build_prints_the_shard_set_and_split_it_used(fx, tmp_path, capsys):
    """No `--shards`: the study's shard set is used and printed; trials that fall back on their
    stored sample media say so (split val), nothing silent."""
    info = fx.build(tmp_path / "db", with_items=False)
    assert cli(_build_cli(info, tmp_path / "m", "--top", "1")) == 0
    out = capsys.readouterr().out
    shards = tmp_path / "db" / "shards"
    assert f"shard set: {shards} (the study's; --shards to choose another)" in out
    assert (
        "split val: trials without a checkpoint and shard set to render the test split from "
        "use their stored sample media, rendered on the validation split"
    ) in out
    assert list(info["store"].ctt_items("fixture")["split"]) == ["val"]
    other = tmp_path / "other_shards"
    assert cli(_build_cli(info, tmp_path / "m2", "--top", "2", "--shards", str(other))) == 0
    assert f"shard set: {other} (--shards)" in capsys.readouterr().out


def test_a_second_build_of_the_same_items_adds_none(fx, tmp_path, capsys):
    """Building the same trials and clips again keeps the items there (uids, files, votes) and adds
    no duplicate; only items not built before are added."""
    info = fx.build(tmp_path / "db", with_items=False)
    store, media = info["store"], tmp_path / "m"
    assert cli(_build_cli(info, media, "--top", "1")) == 0
    capsys.readouterr()
    before = store.ctt_items("fixture")
    files = {p.name: md5(p) for p in media.iterdir()}
    assert cli(_build_cli(info, media, "--top", "1")) == 0
    out = capsys.readouterr().out
    uid = before["uid"].iloc[0]
    assert f"1 item(s) exist already for these trials and clips and are kept, not made again: {uid}" in out
    assert "study fixture: 0 CTT frame items" in out
    after = store.ctt_items("fixture")
    assert after[["uid", "real_path", "fake_path"]].equals(before[["uid", "real_path", "fake_path"]])
    assert {p.name: md5(p) for p in media.iterdir()} == files
    assert cli(_build_cli(info, media, "--top", "2")) == 0  # the second trial is new: only it is added
    assert "study fixture: 1 CTT frame items" in capsys.readouterr().out
    again = store.ctt_items("fixture")
    assert len(again) == 2 and uid in set(again["uid"]) and again["trial_id"].nunique() == 2
