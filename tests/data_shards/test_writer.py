"""`vidcolor shard`: round trips, splits, manifest, overwrite rules, bad input, the real clips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_shards.manifest import FORMAT, clip_starts, parse_manifest
from data_shards.splits import assign_splits, parse_split, split_counts
from data_shards.stats import load_histogram
from data_shards.synthetic import encode_h264, make_demo_videos
from data_shards.video import iter_frames
from data_shards.writer import write_shard_set
from models.errors import VidcolorError
from study.cli import main as cli

JPEG_MEAN_TOL = 2.5  # q95 4:4:4 JPEG on noisy 64 px textures: mean |error| per 0-255 value over a clip (seen <= 1.7)
JPEG_MAX_TOL = 48  # worst single value at a sharp texture edge


def _shard(sources, out, **kw):
    kw.setdefault("size", 32)
    kw.setdefault("clip_len", 8)
    return write_shard_set([str(s) for s in sources], out, show_progress=False, **kw)


def load_manifest(path: Path) -> dict:
    """A shard set's manifest, read and checked."""
    return parse_manifest(Path(path).read_bytes(), str(path))


def _source_frames(path, size, fps=None):
    return np.stack(list(iter_frames(path, size, fps)))


# ----------------------------------------------------------------------------- pure helpers


def test_parse_split_and_counts_by_hand():
    assert parse_split("80,10,10") == {"train": 80, "val": 10, "test": 10}
    assert parse_split(" 70, 20 ,10") == {"train": 70, "val": 20, "test": 10}
    assert split_counts(6, parse_split("80,10,10")) == {"train": 4, "val": 1, "test": 1}
    assert split_counts(10, parse_split("80,10,10")) == {"train": 8, "val": 1, "test": 1}
    assert split_counts(2, parse_split("80,10,10")) == {"train": 1, "val": 1, "test": 0}
    assert split_counts(1, parse_split("80,10,10")) == {"train": 1, "val": 0, "test": 0}
    assert split_counts(5, parse_split("100,0,0")) == {"train": 5, "val": 0, "test": 0}


@pytest.mark.parametrize(
    "bad, words",
    [
        ("80,10", "three percentages"),
        ("80,10,x", "'x' is not a number"),
        ("80,30,10", "add up to 120"),
        ("-10,60,50", "non-negative"),
        ("0,0,0", "add up to 0, not 100"),
        ("nan,0,0", "finite"),
    ],
)
def test_bad_split_values(bad, words):
    with pytest.raises(VidcolorError, match=words):
        parse_split(bad)


def test_assign_splits_is_seeded_and_by_video():
    ids = [f"v{i}" for i in range(10)]
    a = assign_splits(ids, parse_split("80,10,10"), seed=3)
    assert a == assign_splits(list(reversed(ids)), parse_split("80,10,10"), seed=3)  # order-free
    assert sorted(a) == sorted(ids)
    assert sorted(a.values()).count("train") == 8
    assert any(assign_splits(ids, parse_split("80,10,10"), seed=s) != a for s in range(4, 8))


def test_clip_starts_cover_every_frame():
    assert clip_starts(24, 8) == [0, 8, 16]
    assert clip_starts(28, 8) == [0, 8, 16, 20]  # the last clip is aligned to the end
    assert clip_starts(7, 8) == []


# ----------------------------------------------------------------------------- the demo shard set


def test_manifest_describes_the_demo_set(demo_shards, demo_videos, shard_io):
    all_samples, read_samples = shard_io.all_samples, shard_io.read_samples
    m = load_manifest(demo_shards / "manifest.json")
    assert m["format"] == FORMAT and m["size"] == 64 and m["clip_len"] == 8 and m["fps"] is None
    assert m["lossless"] is False and m["skipped"] == []
    assert set(m["versions"]) >= {"vidcolor", "av", "webdataset", "numpy"} and m["command"] == ""
    assert {s: v["videos"] for s, v in m["splits"].items()} == {"train": 4, "val": 1, "test": 1, "legacy": 1}
    for v in m["videos"]:
        assert v["frames"] == 24 and v["clips"] == 3 and v["fps"] == 12.0
        assert (v["width"], v["height"]) == (86, 64)
    # per shard and per split counts agree with the tars
    samples = all_samples(demo_shards)
    assert sum(s["clips"] for s in m["shard_stats"].values()) == len(samples) == 21
    for name, st in m["shard_stats"].items():
        assert len(read_samples(demo_shards / name)) == st["clips"]
        assert st["frames"] == 8 * st["clips"]
    # the histogram counts every pixel of the training split once
    hist = load_histogram(demo_shards / "ab_hist.npy")
    assert hist.dtype == np.int64 and hist.shape == (256, 256)
    assert hist.sum() == m["splits"]["train"]["frames"] * 64 * 64


def test_no_video_in_two_splits_and_bw_in_legacy(demo_shards, shard_io):
    read_samples = shard_io.read_samples
    m = load_manifest(demo_shards / "manifest.json")
    split_of = {v["id"]: v["split"] for v in m["videos"]}
    assert split_of["bw_000"] == "legacy"
    assert all(split_of[f"scene_{i:03d}"] != "legacy" for i in range(6))
    seen: dict[str, set[str]] = {}
    for tar in demo_shards.glob("*.tar"):
        split = tar.name.split("-")[0]
        for s in read_samples(tar):
            seen.setdefault(s["json"]["video_id"], set()).add(split)
            assert s["json"]["split"] == split and "." not in s["key"]
    assert all(len(splits) == 1 for splits in seen.values())
    assert {v: s.pop() for v, s in seen.items()} == split_of


def test_jpeg_frames_in_equal_frames_out(demo_shards, demo_videos, shard_io):
    all_samples = shard_io.all_samples
    for s in all_samples(demo_shards):
        src = _source_frames(s["json"]["source"], 64)
        expected = src[s["json"]["frame_indices"]]
        assert s["ext"] == "jpg" and s["frames"].shape == expected.shape == (8, 64, 64, 3)
        err = np.abs(s["frames"].astype(int) - expected.astype(int))
        assert err.mean() < JPEG_MEAN_TOL, (s["key"], err.mean())
        assert err.max() <= JPEG_MAX_TOL, (s["key"], err.max())


def test_png_frames_are_exact_and_tail_clip_overlaps(tmp_path, demo_videos, shard_io):
    all_samples = shard_io.all_samples
    # 24 frames, clip_len 10 -> clips at 0, 10 and 14 (aligned to the end)
    m = _shard([demo_videos / "scene_001.mp4"], tmp_path / "s", lossless=True, clip_len=10)
    assert m["lossless"] and m["videos"][0]["frames"] == 24 and m["videos"][0]["clips"] == 3
    src = _source_frames(demo_videos / "scene_001.mp4", 32)
    samples = all_samples(tmp_path / "s")
    assert [s["json"]["start"] for s in samples] == [0, 10, 14]
    for s in samples:
        assert s["ext"] == "png"
        np.testing.assert_array_equal(s["frames"], src[s["json"]["frame_indices"]])
    covered = sorted({i for s in samples for i in s["json"]["frame_indices"]})
    assert covered == list(range(24))


def test_fps_resampling_picks_frames(tmp_path, demo_videos, shard_io):
    all_samples = shard_io.all_samples
    m = _shard([demo_videos / "scene_002.mp4"], tmp_path / "s", fps=6, clip_len=4, lossless=True)
    v = m["videos"][0]
    assert m["fps"] == 6 and v["fps"] == 6.0 and v["frames"] == 12
    samples = all_samples(tmp_path / "s")
    assert samples[0]["json"]["frame_indices"] == [0, 2, 4, 6]
    src = _source_frames(demo_videos / "scene_002.mp4", 32)
    for s in samples:
        np.testing.assert_array_equal(s["frames"], src[s["json"]["frame_indices"]])


def test_shard_size_limit_and_parallel_jobs(tmp_path, demo_videos, shard_io):
    all_samples = shard_io.all_samples
    one = _shard([demo_videos], tmp_path / "one")
    many = _shard([demo_videos], tmp_path / "many", shard_size=0.04, jobs=2)
    assert len(many["splits"]["train"]["shards"]) > 1
    for name, st in many["shard_stats"].items():
        # within the limit (a tar's real size, headers and padding included) unless one clip is bigger
        assert (tmp_path / "many" / name).stat().st_size <= 0.04e6 or st["clips"] == 1
    # parallel decoding and smaller shards change nothing about the content
    assert [(v["id"], v["split"], v["frames"]) for v in one["videos"]] == [
        (v["id"], v["split"], v["frames"]) for v in many["videos"]
    ]
    a = {s["key"]: s["frames"] for s in all_samples(tmp_path / "one")}
    b = {s["key"]: s["frames"] for s in all_samples(tmp_path / "many")}
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- output folder rules


def test_refuses_non_empty_output_and_overwrites_only_shard_sets(tmp_path, demo_videos):
    src = [demo_videos / "scene_000.mp4"]
    out = tmp_path / "s"
    _shard(src, out)
    with pytest.raises(VidcolorError, match="not empty.*--overwrite"):
        _shard(src, out)
    m = _shard(src + [demo_videos / "scene_001.mp4"], out, overwrite=True)
    assert len(m["videos"]) == 2 and load_manifest(out / "manifest.json")["videos"] == m["videos"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(VidcolorError, match="holds no shard set"):
        _shard(src, other, overwrite=True)
    assert (other / "notes.txt").read_text() == "mine"


def test_cli_refuses_an_existing_set_by_flag_and_path_before_decoding(tmp_path, demo_videos, capsys):
    src = str(demo_videos / "scene_000.mp4")
    out = tmp_path / "s"
    assert cli(["shard", src, "--out", str(out), "--size", "32", "--clip-len", "8"]) == 0
    capsys.readouterr()
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(out.iterdir())}
    assert cli(["shard", src, "--out", str(out), "--size", "16", "--clip-len", "8"]) == 2
    err = capsys.readouterr().err
    assert (
        f"error: --out {out}: exists and is not empty (ab_hist.npy, manifest.json, train-000000.tar); "
        "pass --overwrite to replace it"
    ) in err and "Traceback" not in err
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(out.iterdir())} == before
    for bad, message in (
        (out / "manifest.json", f"{out / 'manifest.json'}: exists and is a file, not a folder"),
        (
            out / "manifest.json" / "s",
            f"{out / 'manifest.json' / 's'}: {out / 'manifest.json'} is a file, not a folder",
        ),
    ):
        assert cli(["shard", src, "--out", str(bad), "--size", "16", "--overwrite"]) == 2
        assert f"error: --out {message}" in capsys.readouterr().err
    assert cli(["shard", src, "--out", str(out), "--size", "16", "--clip-len", "8", "--overwrite"]) == 0
    assert load_manifest(out / "manifest.json")["size"] == 16


def test_failed_overwrite_keeps_the_old_set(tmp_path, demo_videos, shard_io):
    all_samples = shard_io.all_samples
    out = tmp_path / "s"
    before = _shard([demo_videos / "scene_000.mp4"], out)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\0" * 100)
    with pytest.raises(VidcolorError, match="nothing usable"):
        _shard([junk], out, overwrite=True)
    assert load_manifest(out / "manifest.json")["videos"] == before["videos"]
    assert len(all_samples(out)) == 3


def test_unwritable_output(tmp_path, demo_videos):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli(["shard", str(demo_videos / "scene_000.mp4"), "--out", str(blocker / "sub")]) == 2
    with pytest.raises(VidcolorError, match=str(blocker)):
        _shard([demo_videos / "scene_000.mp4"], blocker / "sub")
    with pytest.raises(VidcolorError, match="not a folder"):
        _shard([demo_videos / "scene_000.mp4"], blocker)


# ----------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def bad_sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    make_demo_videos(root / "good", videos=1, seconds=2, size=32, fps=12)
    good = root / "good" / "scene_000.mp4"
    (root / "empty.mp4").write_bytes(b"")
    data = good.read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (root / "corrupt.mp4").write_bytes(np.random.RandomState(0).bytes(5000))
    (root / "notes.txt").write_text("not a video")
    frames = np.zeros((5, 32, 32, 3), np.uint8)
    frames[..., 0] = 200
    encode_h264(root / "short.mp4", frames, fps=12)  # 5 frames < clip_len 8
    mixed = root / "mixed_sizes"
    mixed.mkdir()
    for i in range(10):
        Image.new("RGB", (40, 30) if i != 4 else (30, 30), (200, 30, 30)).save(mixed / f"{i:05d}.png")
    extra = root / "with_text"
    extra.mkdir()
    for i in range(10):
        Image.new("RGB", (40, 30), (200, 30, 30)).save(extra / f"{i:05d}.jpg")
    (extra / "readme.txt").write_text("hello")
    return root


@pytest.mark.parametrize(
    "name, reason",
    [
        ("empty.mp4", "empty file"),
        ("truncated.mp4", "not a readable video|truncated"),
        ("corrupt.mp4", "not a readable video"),
        ("notes.txt", "not a readable video"),
        ("short.mp4", "too short, 5 frames is less than one clip of 8"),
        ("mixed_sizes", r"00004\.png: frame size 30x30 differs"),
        ("with_text", r"readme\.txt: not an image file"),
        ("missing.mp4", "no such file"),
    ],
)
def test_each_bad_input_is_skipped_with_its_reason(tmp_path, bad_sources, name, reason):
    good = bad_sources / "good" / "scene_000.mp4"
    m = _shard([good, bad_sources / name], tmp_path / "s")
    assert [v["id"] for v in m["videos"]] == ["scene_000"]  # the rest is processed
    assert len(m["skipped"]) == 1
    skipped = m["skipped"][0]
    assert skipped["source"].endswith(name)
    assert name in skipped["reason"]
    import re

    assert re.search(reason, skipped["reason"]), skipped["reason"]


def test_nothing_usable_exits_non_zero_naming_each_file(tmp_path, bad_sources, capsys):
    bad = [bad_sources / n for n in ("empty.mp4", "corrupt.mp4", "short.mp4")]
    rc = cli(["shard", *map(str, bad), "--out", str(tmp_path / "s"), "--size", "32", "--clip-len", "8"])
    err = capsys.readouterr().err
    assert rc == 2 and "nothing usable" in err
    assert all(str(p) in err for p in bad)
    assert not (tmp_path / "s" / "manifest.json").exists()


@pytest.mark.parametrize(
    "option, words",
    [
        ({"size": 4}, "--size 4: must be between 8 and 4096"),
        ({"clip_len": 0}, "--clip-len 0"),
        ({"fps": -1.0}, "--fps -1.0: must be a positive"),
        ({"shard_size": 0}, "--shard-size 0"),
        ({"jobs": 0}, "--jobs 0"),
        ({"split": "50,50"}, "--split '50,50'"),
        (
            {"size": 4096, "clip_len": 16},
            r"^--size 4096 with --clip-len 16: a clip of frames takes 768 MiB, over the 256 MiB limit per clip; "
            r"the largest --size for clips of 16 is 2364$",
        ),
    ],
)
def test_bad_options_are_refused_before_anything_is_written(tmp_path, demo_videos, option, words):
    with pytest.raises(VidcolorError, match=words):
        _shard([demo_videos / "scene_000.mp4"], tmp_path / "s", **option)
    assert not (tmp_path / "s").exists()


def test_cli_bad_split_exit_status(tmp_path, demo_videos, capsys):
    rc = cli(["shard", str(demo_videos), "--out", str(tmp_path / "s"), "--split", "90,20,10"])
    assert rc == 2 and "--split '90,20,10'" in capsys.readouterr().err
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())


def test_frame_folder_source_davis_layout(tmp_path, demo_videos, shard_io):
    all_samples = shard_io.all_samples
    davis = tmp_path / "DAVIS" / "JPEGImages" / "480p" / "bear"
    davis.mkdir(parents=True)
    src = _source_frames(demo_videos / "scene_003.mp4", None)
    for i, frame in enumerate(src[:16]):
        Image.fromarray(frame).save(davis / f"{i:05d}.png")
    ann = tmp_path / "DAVIS" / "Annotations" / "480p" / "bear"
    ann.mkdir(parents=True)
    Image.new("P", (86, 64)).save(ann / "00000.png")
    m = _shard([tmp_path / "DAVIS"], tmp_path / "s", lossless=True)
    assert [(v["id"], v["frames"], v["fps"], v["width"]) for v in m["videos"]] == [("bear", 16, 24.0, 86)]
    from data_shards.video import resize_center_crop

    for s in all_samples(tmp_path / "s"):
        expected = np.stack([resize_center_crop(src[i], 32) for i in s["json"]["frame_indices"]])
        np.testing.assert_array_equal(s["frames"], expected)


# ----------------------------------------------------------------------------- the real clips


@pytest.mark.slow
def test_real_clips_frame_counts_match_pyav(tmp_path, shard_io, count_frames, real_data):
    all_samples = shard_io.all_samples
    sources = [real_data / "cockatoo.mp4", real_data / "realshort.mp4"]
    rc = cli(["shard", *map(str, sources), "--out", str(tmp_path / "s"), "--size", "64", "--jobs", "2"])
    assert rc == 0
    m = load_manifest(tmp_path / "s" / "manifest.json")
    by_id = {v["id"]: v for v in m["videos"]}
    assert by_id["cockatoo"]["frames"] == count_frames(sources[0]) == 280
    assert (by_id["cockatoo"]["width"], by_id["cockatoo"]["height"]) == (1280, 720)
    assert by_id["realshort"]["frames"] == count_frames(sources[1])
    stored: dict[str, set[int]] = {}
    for s in all_samples(tmp_path / "s"):
        stored.setdefault(s["json"]["video_id"], set()).update(s["json"]["frame_indices"])
    assert stored["cockatoo"] == set(range(280))
    assert stored["realshort"] == set(range(by_id["realshort"]["frames"]))
    assert "vidcolor shard" in m["command"] and "--jobs 2" in m["command"]
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["skipped"] == []
    shutil.rmtree(tmp_path / "s")
