"""`vidcolor shard` finds copies of one video (a perceptual hash of sampled frames,
`data_shards.fingerprint`): a byte-identical copy under another name, a re-encoded one and a gray
one are reported with both names; color copies share one split (no leak between train and test);
a split file putting copies in different splits is an error naming both; different clips are
never flagged (the demo scenes, and the real training clips when they are there)."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from data_shards import fingerprint as fp
from data_shards.manifest import parse_manifest
from data_shards.splits import assign_splits, parse_split
from data_shards.synthetic import encode_h264, render_scene, to_gray
from data_shards.video import iter_frames
from data_shards.writer import print_summary, write_shard_set
from models.errors import VidcolorError
from study.cli import main as cli

SCENES = [f"scene_{i:03d}" for i in range(6)]


def _shard(sources, out, **kw):
    return write_shard_set([str(s) for s in sources], out, size=32, clip_len=8, show_progress=False, **kw)


def _fingerprint(path: Path, size: int = 32) -> fp.Fingerprint:
    sampler = fp.FrameSampler()
    for frame in iter_frames(path, size):
        sampler.add(frame)
    return sampler.fingerprint()


def _reencode(src: Path, dst: Path, scale: float = 0.5, bit_rate: int = 100_000) -> Path:
    """``src`` decoded and written again with another codec (MPEG-4 part 2), size and bitrate."""
    frames = list(iter_frames(src))
    h, w = frames[0].shape[:2]
    width, height = int(w * scale) // 2 * 2, int(h * scale) // 2 * 2
    with av.open(str(dst), "w") as container:
        stream = container.add_stream("mpeg4", rate=12)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = width, height, "yuv420p", bit_rate
        for i, frame in enumerate(frames):
            vframe = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(width, height, "yuv420p")
            vframe.pts = i
            container.mux(stream.encode(vframe))
        container.mux(stream.encode(None))
    return dst


def _copy_videos(demo_videos: Path, folder: Path) -> Path:
    folder.mkdir()
    for p in demo_videos.glob("*.mp4"):
        shutil.copy(p, folder / p.name)
    return folder


def _warnings(caplog) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "data_shards.writer" and "is a copy of" in r.getMessage()
    ]


# ----------------------------------------------------------------------------- the fingerprint


def test_fingerprint_matches_the_same_frames_and_not_other_scenes():
    scenes = [render_scene(np.random.RandomState(seed), 40, 48, 64) for seed in range(4)]
    prints = []
    for frames in scenes:
        sampler = fp.FrameSampler()
        for frame in frames:
            sampler.add(frame)
        prints.append(sampler.fingerprint())
    again = fp.FrameSampler()
    for frame in scenes[0]:
        again.add(frame.copy())
    assert prints[0].distance(again.fingerprint()) == 0 and prints[0].matches(again.fingerprint())
    for i in range(4):
        for j in range(i + 1, 4):
            assert prints[i].distance(prints[j]) > fp.MAX_DISTANCE, (i, j)
            assert not prints[i].matches(prints[j])
    assert prints[0].bits.shape == (fp.FRAMES, 63) and len(prints[0].hex()) == 2 * -(-fp.BITS // 8)
    assert fp.FrameSampler().fingerprint() is None


def test_flat_frames_of_other_brightness_do_not_match():
    """Flat frames have no structure to hash (every DCT coefficient about 0): their mean luma tells them apart."""

    def flat(value: int) -> fp.Fingerprint:
        sampler = fp.FrameSampler()
        for _ in range(20):
            sampler.add(np.full((32, 32, 3), value, np.uint8))
        return sampler.fingerprint()

    assert flat(40).matches(flat(40))
    assert flat(40).distance(flat(200)) <= fp.MAX_DISTANCE and not flat(40).matches(flat(200))


def test_sampler_keeps_few_frames_and_picks_the_same_positions():
    """However long the video, at most about 64 thumbnails are held, and two equal streams pick
    the same frames (the stride schedule depends only on the count)."""
    sampler = fp.FrameSampler()
    for i in range(1000):
        sampler.add(np.full((8, 8, 3), i % 256, np.uint8))
        assert len(sampler.kept) <= 65
    assert sampler.stride == 16 and sampler.count == 1000
    means = sampler.fingerprint().means
    # the centers of 8 equal stretches of 1000 frames, to the nearest multiple of 16 (the lower on a tie)
    centers = [(2 * k + 1) * 1000 / 16 - 0.5 for k in range(8)]
    assert means.round().tolist() == [16 * math.ceil(c / 16 - 0.5) % 256 for c in centers]


@pytest.mark.parametrize("numpy_popcount", [True, False], ids=["numpy2", "byte-table"])
def test_duplicate_groups_chain_matches_and_skip_missing(numpy_popcount, monkeypatch):
    if not numpy_popcount:
        monkeypatch.delattr(np, "bitwise_count", raising=False)  # numpy 1.x has none
    a = fp.Fingerprint(np.zeros((fp.FRAMES, 63), bool), np.zeros(fp.FRAMES))
    near = fp.Fingerprint(a.bits.copy(), a.means + 1)
    near.bits[0, :40] = True
    nearer = fp.Fingerprint(near.bits.copy(), near.means)
    nearer.bits[1, :40] = True  # 80 bits from a, 40 from near: one group through near
    far = fp.Fingerprint(~a.bits, a.means)
    assert a.distance(nearer) == 80 and fp.duplicate_groups([a, nearer]) == []
    assert fp.duplicate_groups([a, far, None, near, nearer, far]) == [[0, 3, 4], [1, 5]]
    assert fp.duplicate_groups([a, None]) == [] and fp.duplicate_groups([]) == []


# ----------------------------------------------------------------------------- vidcolor shard


def test_identical_copies_share_the_split_and_are_reported(tmp_path, demo_videos, caplog, capsys):
    """A byte-identical copy of every scene under another name: each copy lands in its original's
    split, the originals are drawn as if the copies were not there, and every pair is named in a
    warning, the manifest and the summary."""
    videos = _copy_videos(demo_videos, tmp_path / "videos")
    for vid in SCENES:
        shutil.copy(videos / f"{vid}.mp4", videos / f"{vid}_copy.mp4")
    ids = SCENES + [f"{v}_copy" for v in SCENES]
    plain = assign_splits(ids, parse_split("80,10,10"), 0)
    assert any(plain[v] != plain[f"{v}_copy"] for v in SCENES)  # without the check, copies would leak

    with caplog.at_level(logging.WARNING, logger="data_shards.writer"):
        m = _shard([videos], tmp_path / "s")
    split_of = {v["id"]: v["split"] for v in m["videos"]}
    assert {v: split_of[v] for v in SCENES} == assign_splits(SCENES, parse_split("80,10,10"), 0)
    assert all(split_of[f"{v}_copy"] == split_of[v] for v in SCENES)
    assert {s: v["videos"] for s, v in m["splits"].items()} == {"train": 8, "val": 2, "test": 2, "legacy": 1}
    assert m["duplicates"] == [
        [
            {"id": v, "source": str(videos / f"{v}.mp4"), "split": split_of[v], "distance": 0},
            {"id": f"{v}_copy", "source": str(videos / f"{v}_copy.mp4"), "split": split_of[v], "distance": 0},
        ]
        for v in SCENES
    ]
    assert _warnings(caplog) == [
        f"{videos / f'{v}_copy.mp4'} is a copy of {videos / f'{v}.mp4'} (their frames' perceptual hashes are "
        f"0 of {fp.BITS} bits apart): both go to {split_of[v]}"
        for v in SCENES
    ]
    on_disk = parse_manifest((tmp_path / "s" / "manifest.json").read_bytes(), "manifest.json")
    assert on_disk["duplicates"] == m["duplicates"]
    print_summary(m, tmp_path / "s")
    out = capsys.readouterr().out
    assert "6 video(s) found more than once (copies kept; color copies share a split):\n" in out
    assert f"  {videos / 'scene_000.mp4'} ({split_of['scene_000']}) = " in out


def test_reencoded_and_gray_copies_are_found(tmp_path, demo_videos, caplog):
    """Another codec, half the size and a low bitrate is still a copy (same split); a gray copy of
    a color scene is reported, and stays in legacy like every black-and-white source."""
    videos = _copy_videos(demo_videos, tmp_path / "videos")
    reencoded = _reencode(videos / "scene_002.mp4", videos / "zz_small.mp4")
    encode_h264(videos / "zz_gray.mp4", to_gray(np.stack(list(iter_frames(videos / "scene_004.mp4")))), fps=12)
    assert reencoded.stat().st_size < (videos / "scene_002.mp4").stat().st_size
    assert 0 < _fingerprint(videos / "scene_002.mp4").distance(_fingerprint(reencoded)) <= fp.MAX_DISTANCE // 2

    with caplog.at_level(logging.WARNING, logger="data_shards.writer"):
        m = _shard([videos], tmp_path / "s")
    split_of = {v["id"]: v["split"] for v in m["videos"]}
    assert split_of["zz_small"] == split_of["scene_002"] and split_of["zz_gray"] == "legacy"
    groups = [[(v["id"], v["split"]) for v in g] for g in m["duplicates"]]
    assert groups == [
        [("scene_002", split_of["scene_002"]), ("zz_small", split_of["scene_002"])],
        [("scene_004", split_of["scene_004"]), ("zz_gray", "legacy")],
    ]
    assert all(0 < g[1]["distance"] <= fp.MAX_DISTANCE for g in m["duplicates"])
    messages = _warnings(caplog)
    assert len(messages) == 2
    assert messages[0].startswith(f"{videos / 'zz_small.mp4'} is a copy of {videos / 'scene_002.mp4'} (")
    assert messages[1].startswith(
        f"{videos / 'zz_gray.mp4'} (legacy) is a copy of {videos / 'scene_004.mp4'} ({split_of['scene_004']}) ("
    )
    assert messages[1].endswith("); black-and-white sources stay in legacy")


def test_different_clips_are_not_flagged(demo_shards):
    """The demo scenes (and their black-and-white clip) are all different videos."""
    manifest = json.loads((demo_shards / "manifest.json").read_text())
    assert manifest["duplicates"] == []


def test_a_set_without_duplicates_key_still_loads(demo_shards, capsys):
    manifest = json.loads((demo_shards / "manifest.json").read_text())
    del manifest["duplicates"]  # a set made before the check
    assert "duplicates" not in parse_manifest(json.dumps(manifest), "old")
    print_summary(manifest, demo_shards)
    assert "more than once" not in capsys.readouterr().out
    manifest["duplicates"] = {"a": 1}
    with pytest.raises(VidcolorError, match="old: field 'duplicates' is not a list"):
        parse_manifest(json.dumps(manifest), "old")


def test_split_file_putting_copies_in_different_splits_is_an_error(tmp_path, demo_videos, capsys):
    videos = _copy_videos(demo_videos, tmp_path / "videos")
    shutil.copy(videos / "scene_001.mp4", videos / "holdout.mp4")
    split_file = tmp_path / "splits.csv"
    split_file.write_text("source,split\nscene_001,train\nholdout.mp4,test\n")
    out = tmp_path / "s"
    with pytest.raises(VidcolorError) as err:
        _shard([videos], out, split_file=str(split_file), split="80,10,10")
    assert str(err.value) == (
        f"--split-file {split_file}: {videos / 'scene_001.mp4'} (line 2, train) and {videos / 'holdout.mp4'} "
        "(line 3, test) are copies of one video (their frames' perceptual hashes match), so one split "
        "would hold the other's frames; put them in the same split, or leave one out"
    )
    assert not (out / "manifest.json").exists() and not list(out.glob("*.tar"))
    rc = cli(["shard", str(videos), "--out", str(out), "--split-file", str(split_file), "--size", "32"])
    assert rc == 2 and "are copies of one video" in capsys.readouterr().err

    # a copy the file does not list follows the listed one, even without --split, and is not "drawn"
    split_file.write_text(
        "source,split\n" + "\n".join(f"{v},{'test' if v == 'scene_001' else 'train'}" for v in SCENES)
    )
    m = _shard([videos], out, split_file=str(split_file))
    split_of = {v["id"]: v["split"] for v in m["videos"]}
    assert split_of["holdout"] == split_of["scene_001"] == "test" and m["split_file"]["drawn"] == []


@pytest.mark.slow
def test_real_clips_are_far_apart_and_a_reencoded_copy_is_near(real_data, tmp_path):
    """Every fourth real training clip (13 natural videos, some of similar scenes): no two match;
    one re-encoded at half size and 100 kbit/s does. The whole measurement (51 clips, sizes 64 and
    256) is in `data_shards.fingerprint`'s docstring."""
    clips = sorted((real_data / "real" / "train").iterdir())[::4]
    prints = {p.name: _fingerprint(p) for p in clips}
    names = list(prints)
    distances = [prints[a].distance(prints[b]) for i, a in enumerate(names) for b in names[i + 1 :]]
    assert min(distances) > 2 * fp.MAX_DISTANCE, sorted(distances)[:5]
    assert fp.duplicate_groups(list(prints.values())) == []
    video = next(p for p in clips if p.suffix == ".mp4")
    copy = _fingerprint(_reencode(video, tmp_path / "copy.mp4"))
    assert prints[video.name].matches(copy), prints[video.name].distance(copy)
