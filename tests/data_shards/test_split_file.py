"""`vidcolor shard --split-file`: parsing, matching sources by id and path, every error (naming the
file, the line and the value), black-and-white entries, unlisted sources, and the manifest record."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import pytest

from data_shards import writer
from data_shards.sources import find_sources
from data_shards.splits import SplitEntry, match_split_file, read_split_file
from data_shards.writer import make_video_ids, write_shard_set
from models.errors import VidcolorError
from study.cli import main as cli

SCENES = [f"scene_{i:03d}" for i in range(6)]


def _file(tmp_path: Path, text: str, name: str = "splits.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _shard(sources, out, **kw):
    return write_shard_set([str(s) for s in sources], out, size=32, clip_len=8, show_progress=False, **kw)


def _match(split_file: Path, roots: list[Path]):
    paths = [p for r in roots for p in find_sources(r)]
    return match_split_file(read_split_file(split_file), paths, make_video_ids(paths), roots)


# ----------------------------------------------------------------------------- parsing


def test_reads_csv_with_header_comments_blanks_and_quotes(tmp_path):
    text = (
        "# benchmark split v1\n\nsource,split\n  scene_000 , Train\n# held out\n"
        '"odd, name.mp4",test\nvideos/scene_001.mp4,val\n'
    )
    path = _file(tmp_path, text)
    sf = read_split_file(path)
    assert sf.entries == (
        SplitEntry(4, "scene_000", "train"),
        SplitEntry(6, "odd, name.mp4", "test"),
        SplitEntry(7, "videos/scene_001.mp4", "val"),
    )
    assert sf.sha256 == hashlib.sha256(text.encode()).hexdigest() and sf.path == path
    # no header: the first line is an entry
    no_header = read_split_file(_file(tmp_path, "scene_000,test\n", "b.csv"))
    assert no_header.entries == (SplitEntry(1, "scene_000", "test"),)


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "source,split\nscene_000,train,extra\n",
            "line 2: 'scene_000,train,extra' has 3 field(s), expected 'source,split' (quote a source that has a comma",
        ),
        ("scene_000\n", "line 1: 'scene_000' has 1 field(s), expected 'source,split'"),
        (
            "scene_000,train\n\nscene_001,training\n",
            "line 3: unknown split 'training' for 'scene_001' (use train, val or test)",
        ),
        (
            "bw_000,legacy\n",
            "line 1: unknown split 'legacy' for 'bw_000' (use train, val or test; black-and-white "
            "sources go to legacy by themselves)",
        ),
        ("# c\n ,train\n", "line 2: ',train' has an empty source"),
        ("scene_000,\n", "line 1: unknown split '' for 'scene_000'"),
        ("# nothing but comments\n\nsource,split\n", ": no 'source,split' entries in it"),
    ],
)
def test_malformed_files_name_file_line_and_value(tmp_path, text, message):
    path = _file(tmp_path, text)
    with pytest.raises(VidcolorError) as err:
        read_split_file(path)
    assert str(err.value).startswith(f"--split-file {path}") and message in str(err.value)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(VidcolorError, match=f"--split-file {tmp_path / 'nope.csv'}: no such file"):
        read_split_file(tmp_path / "nope.csv")
    (tmp_path / "bin.csv").write_bytes(b"scene_000,train\n\xff\xfe\n")
    with pytest.raises(VidcolorError, match=r"bin.csv: not UTF-8 text \(byte 16\)"):
        read_split_file(tmp_path / "bin.csv")


# ----------------------------------------------------------------------------- matching


def test_matches_by_id_by_path_as_given_relative_and_absolute(tmp_path, demo_videos, monkeypatch):
    monkeypatch.chdir(demo_videos.parent)
    root = Path(demo_videos.name)  # a relative folder, as on a command line
    path = _file(
        tmp_path,
        "\n".join(
            [
                "scene_000,train",  # video id
                f"{root}/scene_001.mp4,val",  # the path as found under the folder given
                "scene_002.mp4,test",  # relative to the folder given
                f"{(demo_videos / 'scene_003.mp4').resolve()},train",  # absolute
                f"./{root}/scene_004.mp4,train",  # the same file, spelled otherwise
                "scene_004,train",  # listed twice with the same split: fine
            ]
        ),
    )
    listed = _match(path, [root])
    assert {vid: e.split for vid, e in listed.items()} == {
        "scene_000": "train",
        "scene_001": "val",
        "scene_002": "test",
        "scene_003": "train",
        "scene_004": "train",
    }
    assert listed["scene_004"].line == 5  # the first entry naming it


def test_matching_errors_name_file_line_and_value(tmp_path, demo_videos):
    conflict = _file(tmp_path, f"scene_000,train\n{demo_videos}/scene_000.mp4,test\n", "c.csv")
    with pytest.raises(VidcolorError) as err:
        _match(conflict, [demo_videos])
    assert str(err.value) == (
        f"--split-file {conflict} line 2: '{demo_videos}/scene_000.mp4' puts "
        f"{demo_videos}/scene_000.mp4 in 'test', but line 1 ('scene_000') puts it in 'train'"
    )

    unknown = _file(tmp_path, "scene_000,train\nscene_999.mp4,test\n", "u.csv")
    with pytest.raises(VidcolorError) as err:
        _match(unknown, [demo_videos])
    assert str(err.value).startswith(f"--split-file {unknown} line 2: 'scene_999.mp4' matches no source")
    assert "video ids: bw_000, scene_000, scene_001, scene_002, scene_003 ... (7 in all)" in str(err.value)

    for sub in ("a", "b"):  # the same name inside two folders given
        (tmp_path / sub).mkdir()
        shutil.copy(demo_videos / "scene_000.mp4", tmp_path / sub / "x.mp4")
    ambiguous = _file(tmp_path, "x.mp4,train\n", "a.csv")
    with pytest.raises(VidcolorError) as err:
        _match(ambiguous, [tmp_path / "a", tmp_path / "b"])
    assert str(err.value) == (
        f"--split-file {ambiguous} line 1: 'x.mp4' matches 2 sources ({tmp_path}/a/x.mp4, "
        f"{tmp_path}/b/x.mp4); name one by its video id or its full path"
    )
    assert {
        v: e.split for v, e in _match(_file(tmp_path, "x-2,val\n", "i.csv"), [tmp_path / "a", tmp_path / "b"]).items()
    } == {"x-2": "val"}


def test_split_file_errors_come_before_anything_is_decoded(tmp_path, demo_videos, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded before the split file was checked")

    monkeypatch.setattr(writer, "_decode_sources", no_decoding)
    bad = _file(tmp_path, "scene_000,train\nnope,val\n")
    with pytest.raises(VidcolorError, match=f"--split-file {bad} line 2: 'nope' matches no source"):
        _shard([demo_videos], tmp_path / "s", split_file=str(bad))
    malformed = _file(tmp_path, "scene_000;train\n", "m.csv")
    with pytest.raises(VidcolorError, match="line 1: 'scene_000;train' has 1 field"):
        _shard([demo_videos], tmp_path / "m", split_file=str(malformed))
    assert not (tmp_path / "m").exists()  # a malformed file: refused before --out is made
    assert not (tmp_path / "s" / "manifest.json").exists()


# ----------------------------------------------------------------------------- whole runs


def test_split_file_assigns_the_demo_videos(tmp_path, demo_videos, caplog, capsys):
    want = {
        "scene_000": "test",
        "scene_001": "train",
        "scene_002": "val",
        "scene_003": "train",
        "scene_004": "test",
        "scene_005": "train",
    }
    lines = [
        f"{demo_videos}/{vid}.mp4,{split}" if i % 2 else f"{vid},{split}" for i, (vid, split) in enumerate(want.items())
    ]
    path = _file(tmp_path, "source,split\n" + "\n".join(lines) + "\nbw_000.mp4,train\n")
    out = tmp_path / "s"
    with caplog.at_level(logging.WARNING, logger="data_shards.splits"):
        rc = cli(
            ["shard", str(demo_videos), "--out", str(out), "--split-file", str(path), "--size", "32", "--clip-len", "8"]
        )
    assert rc == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert {v["id"]: v["split"] for v in manifest["videos"]} == {**want, "bw_000": "legacy"}
    assert {s: v["videos"] for s, v in manifest["splits"].items()} == {"train": 3, "val": 1, "test": 2, "legacy": 1}
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["split_file"] == {"path": str(path.resolve()), "sha256": digest, "drawn": []}
    assert f"--split-file {path}" in manifest["command"] and "--split " not in manifest["command"]
    assert f"splits from {path.resolve()} (sha256 {digest[:12]})\n" in capsys.readouterr().out
    assert [r.getMessage() for r in caplog.records if r.name == "data_shards.splits"] == [
        f"--split-file {path} line 8: {demo_videos / 'bw_000.mp4'} is black-and-white: it stays in legacy, not train"
    ]


def test_unlisted_color_sources_are_an_error_without_split(tmp_path, demo_videos):
    path = _file(tmp_path, "bw_000,test\n")  # only the black-and-white one: every color scene unlisted
    with pytest.raises(VidcolorError) as err:
        _shard([demo_videos], tmp_path / "s", split_file=str(path))
    shown = ", ".join(str(demo_videos / f"{v}.mp4") for v in SCENES[:5])
    assert str(err.value) == (
        f"--split-file {path}: 6 color source(s) not listed: {shown} and 1 more; list them, or "
        "give --split too to draw the unlisted ones by those percentages (among themselves)"
    )
    assert not (tmp_path / "s" / "manifest.json").exists()


def test_unlisted_sources_drawn_by_an_explicit_split(tmp_path, demo_videos):
    path = _file(tmp_path, "scene_000,test\nscene_001,val\n")  # bw_000 needs no entry
    m = _shard([demo_videos], tmp_path / "s", split_file=str(path), split="100,0,0", seed=3)
    assert {v["id"]: v["split"] for v in m["videos"]} == {
        "scene_000": "test",
        "scene_001": "val",
        "bw_000": "legacy",
        **{v: "train" for v in SCENES[2:]},
    }
    assert m["split_file"]["drawn"] == SCENES[2:]
    # drawn among themselves: 0,0,100 puts every unlisted one in test, whatever the file lists
    m = _shard([demo_videos], tmp_path / "t", split_file=str(path), split="0,0,100")
    assert sorted(v["id"] for v in m["videos"] if v["split"] == "test") == ["scene_000", *SCENES[2:]]
    assert m["splits"]["val"]["videos"] == 1 and "train" not in m["splits"]
