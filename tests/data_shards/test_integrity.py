"""Damaged shards are never silent: per-shard checksums and counts, shortfall warnings, verify."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_shards import manifest as mf
from data_shards.reader import ShardSet, eval_loader, train_loader
from models.errors import VidcolorError


def flip_header_byte(tar_path: Path, member_prefix: str) -> None:
    """Flip one bit in the name field of the first tar header whose member name starts with
    ``member_prefix``: its checksum no longer matches, and tarfile takes it for the end of the archive."""
    with tarfile.open(tar_path) as tar:
        offset = next(m.offset for m in tar.getmembers() if m.name.startswith(member_prefix))
    data = bytearray(tar_path.read_bytes())
    data[offset] ^= 0x01
    tar_path.write_bytes(bytes(data))


def _change_member(tar_path: Path, member: str, pick) -> tuple[bytes, bytes]:
    """Change one byte of a tar member in place (``pick(data) -> offset`` inside the member);
    returns the member's (bytes before, bytes after)."""
    with tarfile.open(tar_path) as tar:
        info = tar.getmember(member)
        before = tar.extractfile(info).read()
    data = bytearray(tar_path.read_bytes())
    at = info.offset_data + pick(before)
    data[at] ^= 0x10
    tar_path.write_bytes(bytes(data))
    return before, bytes(data[info.offset_data : info.offset_data + info.size])


def flip_entropy_byte(tar_path: Path, member: str) -> tuple[bytes, bytes]:
    """One bit in the middle of a JPEG member's entropy-coded data (no marker touched)."""

    def pick(jpeg: bytes) -> int:
        at = len(jpeg) // 2
        while jpeg[at] == 0xFF or jpeg[at - 1] == 0xFF:
            at += 1
        return at

    return _change_member(tar_path, member, pick)


def change_quant_table(tar_path: Path, member: str) -> tuple[bytes, bytes]:
    """One value of a JPEG member's first quantization table (DQT segment: marker, length, Pq/Tq,
    then 64 values): the image still decodes, cleanly, to other pixels."""
    return _change_member(tar_path, member, lambda jpeg: jpeg.index(b"\xff\xdb") + 5 + 10)


def _pixels(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


def _copy(demo_shards: Path, tmp_path: Path) -> Path:
    out = tmp_path / "set"
    shutil.copytree(demo_shards, out)
    return out


def _test_keys(shard_dir: Path) -> list[str]:
    with tarfile.open(shard_dir / "test-000000.tar") as tar:
        return list(dict.fromkeys(m.name.split(".")[0] for m in tar.getmembers()))


# ----------------------------------------------------------------------------- the manifest


def test_manifest_records_each_shards_sha256_size_and_counts(demo_shards):
    m = json.loads((demo_shards / "manifest.json").read_text())
    assert m["format"] == "vidcolor-shards/2"
    tars = sorted(p.name for p in demo_shards.glob("*.tar"))
    assert (
        sorted(m["shard_stats"])
        == tars
        == ["legacy-000000.tar", "test-000000.tar", "train-000000.tar", "val-000000.tar"]
    )
    for name in tars:
        data = (demo_shards / name).read_bytes()
        stat = m["shard_stats"][name]
        assert stat["sha256"] == hashlib.sha256(data).hexdigest() and stat["bytes"] == len(data)
        with tarfile.open(demo_shards / name) as tar:
            keys = {info.name.split(".")[0] for info in tar}
        assert stat["clips"] == len(keys) == 3 * (4 if name.startswith("train") else 1)
        assert stat["frames"] == 8 * stat["clips"]


def test_format_1_is_read_and_format_2_needs_checksums(demo_shards, tmp_path):
    m = json.loads((demo_shards / "manifest.json").read_text())
    old = dict(
        m,
        format="vidcolor-shards/1",
        shard_stats={n: {"clips": s["clips"], "frames": s["frames"]} for n, s in m["shard_stats"].items()},
    )
    assert mf.parse_manifest(json.dumps(old), "old.json")["format"] == "vidcolor-shards/1"
    broken = json.loads(json.dumps(m))
    del broken["shard_stats"]["val-000000.tar"]["sha256"]
    with pytest.raises(VidcolorError, match=r"^new\.json: shard_stats\.val-000000\.tar has no field 'sha256'$"):
        mf.parse_manifest(json.dumps(broken), "new.json")
    del broken["shard_stats"]["val-000000.tar"]
    with pytest.raises(VidcolorError, match=r"^new\.json: shard_stats has no entry for shard 'val-000000\.tar'$"):
        mf.parse_manifest(json.dumps(broken), "new.json")
    with pytest.raises(VidcolorError, match="field 'format' is 'vidcolor-shards/9'"):
        mf.parse_manifest(json.dumps(dict(m, format="vidcolor-shards/9")), "x.json")
    # an old set reads as before, but cannot be verified
    folder = _copy(demo_shards, tmp_path)
    (folder / "manifest.json").write_text(json.dumps(old))
    s = ShardSet(folder)
    assert sum(int(b["valid"].sum()) for b in eval_loader(s, "test", batch_size=4)) == 24
    with pytest.raises(
        VidcolorError, match=f"{folder / 'manifest.json'}: format 'vidcolor-shards/1' records no checksums"
    ):
        s.verify()


# ----------------------------------------------------------------------------- counted against the manifest


def test_flipped_tar_header_byte_is_a_warning_naming_the_shard(demo_shards, tmp_path, caplog):
    folder = _copy(demo_shards, tmp_path)
    keys = _test_keys(folder)
    flip_header_byte(folder / "test-000000.tar", keys[1] + ".")  # the 2nd of 3 clips: tarfile stops there
    with caplog.at_level(logging.WARNING, logger="data_shards"):
        loader = eval_loader(folder, "test", window=1, batch_size=4)
        assert loader.shortfalls == []  # nothing known before the pass
        valid = sum(int(b["valid"].sum()) for b in loader)
    assert valid == 8 and loader.expected_windows == 24 and loader.windows_read == 8
    shard = folder / "test-000000.tar"
    message = f"{shard}: read 1 of 3 samples the manifest lists (damaged or truncated?)"
    assert loader.shortfalls[0] == {
        "shard": "test-000000.tar",
        "expected": 3,
        "read": 1,
        "unreadable": 0,
        "message": message,
    }
    assert loader.shortfalls[1]["shard"] is None and loader.shortfalls[1]["message"] == (
        f"{folder} split 'test': 8 of the 24 windows of 1 frame(s) the manifest promises were read "
        "(8 of 24 frames); results are incomplete"
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [message, loader.shortfalls[1]["message"]]
    # the training stream warns too, once per shard however often it rereads it
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="data_shards"):
        assert len(list(train_loader(folder, "test", batch_size=2, steps_per_epoch=4, shuffle_buffer=2))) == 4
    assert [r.getMessage() for r in caplog.records] == [message]


def test_whole_split_gives_no_shortfall(demo_shards, caplog):
    with caplog.at_level(logging.WARNING, logger="data_shards"):
        for split, frames in (("train", 96), ("val", 24), ("test", 24)):
            loader = eval_loader(demo_shards, split, window=3, batch_size=5)
            assert sum(int(b["valid"].sum()) for b in loader) * 3 == frames
            assert loader.shortfalls == [] and loader.windows_read == loader.expected_windows == frames // 3
    assert not caplog.records


def test_undecodable_sample_counts_as_a_shortfall(demo_shards, tmp_path):
    folder = _copy(demo_shards, tmp_path)
    tar_path = folder / "val-000000.tar"
    with tarfile.open(tar_path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar]
    with tarfile.open(tar_path, "w") as tar:
        for m, data in members:
            if m.name.endswith("clip00002.005.jpg"):
                data = b"not a jpeg" * 10
                m.size = len(data)
            tar.addfile(m, io.BytesIO(data))
    loader = eval_loader(folder, "val", window=1, batch_size=8)
    assert sum(int(b["valid"].sum()) for b in loader) == 16  # the last clip is gone
    assert loader.shortfalls[0] == {
        "shard": "val-000000.tar",
        "expected": 3,
        "read": 3,
        "unreadable": 1,
        "message": f"{tar_path}: read 3 of 3 samples the manifest lists, 1 of them unreadable (damaged or truncated?)",
    }


# ----------------------------------------------------------------------------- checksums


def test_damaged_entropy_data_is_refused_by_the_loader(demo_shards, tmp_path):
    folder = _copy(demo_shards, tmp_path)
    key = _test_keys(folder)[0]
    flip_entropy_byte(folder / "test-000000.tar", key + ".004.jpg")
    loader = eval_loader(folder, "test", batch_size=8)
    # the strict JPEG decoder refuses the frame, so its 8-frame clip is skipped, counted and named
    assert sum(int(b["valid"].sum()) for b in loader) == 16
    unreadable = [f for f in loader.shortfalls if f["shard"] is not None]
    assert [(Path(f["shard"]).name, f["unreadable"]) for f in unreadable] == [("test-000000.tar", 1)]


def test_verify_names_a_shard_whose_jpeg_changed(demo_shards, tmp_path):
    folder = _copy(demo_shards, tmp_path)
    assert ShardSet(folder).verify() == ["train-000000.tar", "val-000000.tar", "test-000000.tar", "legacy-000000.tar"]
    before, after = change_quant_table(folder / "test-000000.tar", _test_keys(folder)[0] + ".004.jpg")
    assert _pixels(before).shape == _pixels(after).shape == (64, 64, 3)
    assert (_pixels(before) != _pixels(after)).any()  # other pixels, no error
    loader = eval_loader(folder, "test", batch_size=8)
    assert sum(int(b["valid"].sum()) for b in loader) == 24 and loader.shortfalls == []  # unseen by counts
    s = ShardSet(folder)
    assert s.verify("train") == ["train-000000.tar"]
    want = json.loads((folder / "manifest.json").read_text())["shard_stats"]["test-000000.tar"]["sha256"]
    got = hashlib.sha256((folder / "test-000000.tar").read_bytes()).hexdigest()
    with pytest.raises(VidcolorError) as err:
        s.verify("test")
    assert str(err.value) == (
        f"1 of 1 shard(s) fail their checksum (damaged, or changed after `vidcolor shard` "
        f"wrote {folder / 'manifest.json'}): {folder / 'test-000000.tar'} "
        f"(sha256 {got[:16]}..., the manifest lists {want[:16]}...)"
    )
    with pytest.raises(VidcolorError, match=r"^1 of 4 shard\(s\) fail.*test-000000\.tar"):
        s.verify()


def test_verify_a_missing_shard_names_it(demo_shards, tmp_path):
    folder = _copy(demo_shards, tmp_path)
    (folder / "val-000000.tar").unlink()
    with pytest.raises(VidcolorError, match=f"^{folder / 'val-000000.tar'}: not found"):
        ShardSet(folder).verify("val")
