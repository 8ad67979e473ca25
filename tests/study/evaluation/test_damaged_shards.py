"""`vidcolor evaluate` on damaged shards: a loud warning naming the shard, exit 1, `incomplete` in
the JSON; `--verify` refuses a shard whose checksum differs, naming it."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from study.cli import main


def _copy(demo_shards: Path, tmp_path: Path) -> Path:
    out = tmp_path / "set"
    shutil.copytree(demo_shards, out)
    return out


def _member_offsets(tar_path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(tar_path) as tar:
        return tar.getmembers()


def _flip(tar_path: Path, at: int, bit: int) -> None:
    data = bytearray(tar_path.read_bytes())
    data[at] ^= bit
    tar_path.write_bytes(bytes(data))


def _evaluate(ckpt: Path, shards: Path, *extra: str) -> int:
    return main(
        [
            "evaluate",
            str(ckpt),
            "--shards",
            str(shards),
            "--split",
            "test",
            "--device",
            "cpu",
            "--batch-size",
            "4",
            *extra,
        ]
    )


def test_flipped_tar_header_byte_warns_naming_the_shard_and_exits_1(demo_shards, tiny_checkpoint, tmp_path, capsys):
    folder = _copy(demo_shards, tmp_path)
    shard = folder / "test-000000.tar"
    second_clip = next(m for m in _member_offsets(shard) if "_clip00001." in m.name)
    _flip(shard, second_clip.offset, 0x01)  # its header checksum fails: tarfile ends the archive there
    out = tmp_path / "eval.json"
    assert _evaluate(tiny_checkpoint, folder, "--json", str(out)) == 1
    captured = capsys.readouterr()
    assert f"wrote {out}" in captured.out  # the figures are still there, marked
    err = captured.err.splitlines()
    assert f"warning: {shard}: read 1 of 3 samples the manifest lists (damaged or truncated?)" in err
    assert "warning: these metrics cover 8 of the 24 frames of split 'test'; exit status 1" in err
    doc = json.loads(out.read_text())
    assert doc["num_frames"] == 8 and doc["expected_frames"] == 24 and doc["verified"] is False
    assert [(i["shard"], i["expected"], i["read"]) for i in doc["incomplete"]] == [
        ("test-000000.tar", 3, 1),
        (None, 3, 1),  # the split's windows: evaluation reads whole clips of 8 frames
    ]
    # --verify stops before reading, naming the shard
    assert _evaluate(tiny_checkpoint, folder, "--verify") == 2
    assert f"{shard} (sha256 " in capsys.readouterr().err


def _entropy_byte(shard: Path) -> int:
    """An offset in the middle of a JPEG member's entropy-coded data, clear of markers."""
    jpeg = next(m for m in _member_offsets(shard) if m.name.endswith("_clip00000.004.jpg"))
    at = jpeg.offset_data + jpeg.size // 2
    data = shard.read_bytes()
    while 0xFF in (data[at], data[at - 1]):
        at += 1
    return at


def test_damaged_jpeg_data_is_an_incomplete_pass(demo_shards, tiny_checkpoint, tmp_path, capsys):
    folder = _copy(demo_shards, tmp_path)
    shard = folder / "test-000000.tar"
    _flip(shard, _entropy_byte(shard), 0x10)
    out = tmp_path / "eval.json"
    assert _evaluate(tiny_checkpoint, folder, "--json", str(out)) == 1  # an incomplete pass
    err = capsys.readouterr().err  # the strict decoder refused the frame, so its 8-frame clip is skipped
    assert "warning: these metrics cover 16 of the 24 frames of split 'test'; exit status 1" in err.splitlines()
    doc = json.loads(out.read_text())
    assert [(i["shard"], i["unreadable"]) for i in doc["incomplete"]] == [("test-000000.tar", 1), (None, 0)]


def test_changed_jpeg_table_is_caught_by_verify_only(demo_shards, tiny_checkpoint, tmp_path, capsys):
    folder = _copy(demo_shards, tmp_path)
    shard = folder / "test-000000.tar"
    jpeg = next(m for m in _member_offsets(shard) if m.name.endswith("_clip00000.004.jpg"))
    member = shard.read_bytes()[jpeg.offset_data : jpeg.offset_data + jpeg.size]
    _flip(shard, jpeg.offset_data + member.index(b"\xff\xdb") + 5 + 10, 0x10)  # a quantization table value
    out = tmp_path / "eval.json"
    assert _evaluate(tiny_checkpoint, folder, "--json", str(out)) == 0  # other pixels, nothing to count
    capsys.readouterr()
    assert json.loads(out.read_text())["incomplete"] == []
    out.unlink()
    assert _evaluate(tiny_checkpoint, folder, "--verify", "--json", str(out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 1 of 1 shard(s) fail their checksum") and f"{shard} (sha256 " in err
    assert "evaluate:" not in err  # refused before the pass began
    assert not out.exists()  # refused before any work, nothing written


def test_verify_passes_on_a_whole_set(demo_shards, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert _evaluate(tiny_checkpoint, demo_shards, "--verify", "--json", str(out)) == 0
    assert "warning" not in capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["verified"] is True and doc["incomplete"] == [] and doc["num_frames"] == doc["expected_frames"] == 24


@pytest.mark.parametrize("damage", ["empty", "first-header"])
def test_a_split_with_nothing_readable_is_an_error_naming_the_shard(
    demo_shards, tiny_checkpoint, tmp_path, capsys, damage
):
    folder = _copy(demo_shards, tmp_path)
    shard = folder / "test-000000.tar"
    if damage == "empty":
        shard.write_bytes(b"")
    else:
        _flip(shard, 0, 0x01)
    assert _evaluate(tiny_checkpoint, folder) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert err.startswith("error: split 'test' of ") and "yielded no frames: " in err
    assert f"{shard}: read 0 of 3 samples the manifest lists (damaged or truncated?)" in err
