"""The crashes the fuzzing suite found, each as a fixed case with its message asserted.

Each one was a traceback (or an exception escaping `study.cli.main`) before its fix; now it is one
``error:`` line naming the file, field or value, with exit status 2.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
import torch

from data_shards.video import probe
from models.errors import VidcolorError
from study.config.spec import load_spec


def _err(fz, argv) -> str:
    rc, text = fz.run_cli(argv)
    assert rc == 2, text
    assert "Traceback" not in text
    return text


# -- videos ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def codecless(fz, tmp_path_factory):
    """An mp4 whose sample entry names a codec FFmpeg does not know ('avc1' -> 'zzzz'): PyAV opens
    it, with a video stream that has no codec context (it used to crash probe with AttributeError)."""
    path = tmp_path_factory.mktemp("codecless") / "film.mp4"
    raw = (fz.base.videos / "bw_000.mp4").read_bytes()
    assert b"avc1" in raw
    path.write_bytes(raw.replace(b"avc1", b"zzzz"))
    return path


def test_video_stream_without_codec_is_refused(fz, codecless, tmp_path):
    with pytest.raises(VidcolorError, match="its video stream names no codec FFmpeg can decode"):
        probe(codecless)
    text = _err(fz, ["shard", codecless, "--out", tmp_path / "s", "--size", 16, "--clip-len", 2])
    assert f"{codecless}: its video stream names no codec FFmpeg can decode (damaged header?)" in text
    text = _err(fz, ["colorize", fz.base.ckpt, codecless, tmp_path / "o.mp4"])
    assert f"error: {codecless}: its video stream names no codec" in text
    assert not (tmp_path / "o.mp4").exists()


# -- import-eccv16 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state, message",
    [
        ({"model_out.weight": None}, "ECCV16 weights: 'model_out.weight' is a NoneType, not a tensor"),
        ({"model_out.weight": [1, 2]}, "ECCV16 weights: 'model_out.weight' is a list, not a tensor"),
        ({"model_out.weight": torch.zeros(2, 3, 1, 1), 1: torch.zeros(1)}, "ECCV16 weights: key 1 is a int"),
        (
            {"model_out.weight": torch.zeros(2, 3, 1, 1, dtype=torch.int64)},
            "ECCV16 weights: model_out.weight is stored as torch.int64, expected a floating-point tensor",
        ),
        (
            {"model_out.weight": torch.full((2, 3, 1, 1), float("nan"))},
            "ECCV16 weights: model_out.weight holds 6 non-finite value(s) (NaN or Inf)",
        ),
    ],
)
def test_import_eccv16_ill_formed_state_dict(fz, tmp_path, state, message):
    pth = tmp_path / "w.pth"
    torch.save(state, pth)
    assert message in _err(fz, ["import-eccv16", pth, "--out", tmp_path / "ck"])
    assert not (tmp_path / "ck").exists()


# -- demo-data ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seconds", "nan"], "--seconds must be a positive finite number, got nan"),
        (["--seconds", "inf"], "--seconds must be a positive finite number, got inf"),
        (["--seed", "-1"], "--seed must be 0 to 4294967295, got -1"),
        (["--seed", str(2**32)], "--seed must be 0 to 4294967295, got 4294967296"),
        (["--size", "5000"], "--size must be 16 to 4096 px, got 5000"),
        (
            ["--seconds", "0.1", "--fps", "1000000000", "--size", "16"],
            "a video of 1e+08 frames of 22x16 px takes 100,708 MiB, over the 1024 MiB limit per video",
        ),
        (["--seconds", "1e300", "--fps", "1000000000"], "a video of inf frames"),
    ],
)
def test_demo_data_refuses_values_it_cannot_render(fz, tmp_path, args, message):
    assert message in _err(fz, ["demo-data", "--out", tmp_path / "d", *args])
    assert not (tmp_path / "d").exists()


# -- evaluate --batch-size ---------------------------------------------------------------------------


def test_evaluate_huge_batch_size_takes_the_split_clips(fz, tmp_path):
    """Batches are padded to --batch-size clips: 1000000000 used to allocate that many (an OOM kill);
    now a batch is never larger than the split, and the figures are those of a small batch."""
    base = ["evaluate", fz.base.ckpt, "--shards", fz.base.shards, "--device", "cpu"]
    assert fz.run_cli([*base, "--batch-size", "1000000000", "--json", tmp_path / "huge.json"])[0] == 0
    assert fz.run_cli([*base, "--batch-size", "1", "--json", tmp_path / "one.json"])[0] == 0
    huge, one = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("huge", "one"))
    assert huge["num_frames"] == one["num_frames"] > 0
    assert huge["mean"] == pytest.approx(one["mean"], rel=1e-4, nan_ok=True)


# -- --device ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "device, message",
    [
        ("meta", "--device: 'meta' is not one vidcolor runs on (cpu, cuda, cuda:N, mps)"),
        ("mps", "--device: 'mps' asked for, but MPS (Apple GPU) is not available here"),
    ],
)
def test_device_torch_knows_but_vidcolor_cannot_use(fz, tmp_path, device, message):
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    text = _err(fz, ["colorize", fz.base.ckpt, fz.base.gray, tmp_path / "o.mp4", f"--device={device}"])
    assert message in text
    text = _err(fz, ["evaluate", fz.base.ckpt, "--shards", fz.base.shards, f"--device={device}"])
    assert message in text


def test_cuda_index_beyond_the_devices(fz, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA here (the CUDA-missing error is tested elsewhere)")
    n = torch.cuda.device_count()
    text = _err(fz, ["colorize", fz.base.ckpt, fz.base.gray, tmp_path / "o.mp4", f"--device=cuda:{n}"])
    assert f"--device: 'cuda:{n}' asked for, but this machine has {n} CUDA device(s)" in text


# -- results databases ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "table, column, value, message",
    [
        ("vc_trials", "best_metrics", "NaN", "table vc_trials, row id 1, column best_metrics holds float 'nan', not a"),
        ("vc_trials", "params", "[1, 2]", "table vc_trials, row id 1, column params holds list '[1, 2]', not a JSON"),
        ("vc_studies", "spec", "NaN", "table vc_studies, row id 1, column spec holds float 'nan', not a JSON object"),
        ("vc_studies", "spec", b"\x80", "a stored value does not convert"),
        ("vc_studies", "created", "{", "a stored value does not convert (Invalid isoformat string: '{')"),
    ],
)
def test_damaged_database_value(fz, tmp_path, table, column, value, message):
    db = fz.copy(fz.base.db, tmp_path / "results.db")
    with sqlite3.connect(db) as con:
        con.execute(f"UPDATE {table} SET {column} = ?", (value,))
    con.close()
    text = _err(fz, ["report", "fuzz", "--db", f"sqlite:///{db}"])
    assert f"error: results database {db}: " in text and message in text, text
    assert "restore the file from a copy or correct that value" in text


def test_database_url_through_a_symlink_loop(fz, tmp_path):
    loop = tmp_path / "loop.db"
    loop.symlink_to(loop)
    assert f"no results database at {loop}" in _err(fz, ["report", "fuzz", "--db", f"sqlite:///{loop}"])


# -- study specs ----------------------------------------------------------------------------------------


def test_spec_that_is_not_utf8(tmp_path):
    spec = tmp_path / "study.toml"
    spec.write_bytes(b'name = "x"\n\x80\n')
    with pytest.raises(VidcolorError, match=r"study.toml: not UTF-8 text, so not a TOML spec \(byte 11: invalid"):
        load_spec(spec)


# -- paths the system cannot use ------------------------------------------------------------------------


def test_names_too_long_and_link_loops(fz, tmp_path):
    long = tmp_path / ("n" * 300)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert f"error: IN {long}: cannot be used (File name too long)" in _err(
        fz, ["colorize", fz.base.ckpt, long, tmp_path / "o.mp4"]
    )
    assert f"error: OUT {loop}: cannot be used (a symbolic link loop)" in _err(
        fz, ["colorize", fz.base.ckpt, fz.base.gray, loop]
    )
    assert f"error: OUT {long}.mp4: cannot be used (File name too long)" in _err(
        fz, ["colorize", fz.base.ckpt, fz.base.gray, f"{long}.mp4"]
    )
    assert f"error: {long}: cannot be used as a checkpoint folder (File name too long)" in _err(
        fz, ["colorize", long, fz.base.gray, tmp_path / "o.mp4"]
    )
    assert f"error: --out {long}: cannot be used (File name too long)" in _err(
        fz, ["shard", fz.base.gray, "--out", long]
    )
    # anywhere else a command first touches such a path: the CLI's one line naming it
    assert f"error: {long}: cannot be used (File name too long)" in _err(
        fz, ["evaluate", fz.base.ckpt, "--shards", long]
    )
    assert f"error: {long}: cannot be used (File name too long)" in _err(fz, ["shard", long, "--out", tmp_path / "s"])


# -- parse_manifest: entries of the wrong kind ------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("videos", [None], "videos[0] is null, not an object"),
        ("splits", {"test": None}, "splits.test is null, not an object"),
        (
            "splits",
            {"test": {"shards": "x.tar", "clips": 1, "frames": 1, "videos": 1}},
            'splits.test.shards is a string ("x.tar"), not a list',
        ),
        (
            "splits",
            {"test": {"shards": [{}], "clips": 1, "frames": 1, "videos": 1}},
            "splits.test.shards[0] is an object ({}), not a file name",
        ),
    ],
)
def test_manifest_entries_of_the_wrong_kind(fz, tmp_path, capsys, field, value, message):
    shards = fz.copy(fz.base.shards, tmp_path / "shards")
    doc = json.loads((shards / "manifest.json").read_text())
    doc[field] = value
    (shards / "manifest.json").write_text(json.dumps(doc))
    from study.cli import main

    assert main(["evaluate", str(fz.base.ckpt), "--shards", str(shards), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"{shards / 'manifest.json'}: {message}" in err and "Traceback" not in err
