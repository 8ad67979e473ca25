"""`vidcolor colorize` never clobbers an output unless `--overwrite`, and cleans what killed runs left.

Small self-contained inputs: an untrained tiny checkpoint (colors do not matter here) and
4-frame 32x32 videos. "Unchanged" is checked on bytes and mtimes.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from models.checkpoint import save_checkpoint
from models.gamut import ABGamut
from models.model import create_model
from models.presets import get_preset
from study.cli import main as cli
from study.media.partials import partial_tag
from study.media.video_out import write_video


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    gamut = ABGamut(10)
    model = create_model(get_preset("exp1").replace(size="tiny"), gamut).eval()
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "exp1", model, model.config, gamut, frame_size=16)


def frames(n: int = 4, size: int = 32) -> list[np.ndarray]:
    ramp = np.linspace(30, 220, size, dtype=np.float32)
    return [
        np.repeat(np.clip(ramp[None, :, None] + 5 * i, 0, 255), 3, -1).repeat(size, 0).astype(np.uint8)
        for i in range(n)
    ]


def video(path: Path, n: int = 4) -> Path:
    return write_video(path, frames(n), fps=12)


def count_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def snapshot(*paths: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}


def test_existing_output_is_refused_unless_overwrite(tmp_path, ckpt, capsys):
    src = video(tmp_path / "in.mp4")
    out = tmp_path / "existing.mp4"
    out.write_bytes(b"an earlier result")
    before = snapshot(out)
    assert cli(["colorize", str(ckpt), str(src), str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"error: OUT {out}: exists; pass --overwrite to replace it" in err and "Traceback" not in err
    assert snapshot(out) == before
    assert sorted(os.listdir(tmp_path)) == ["existing.mp4", "in.mp4"]  # no partial, nothing else
    assert cli(["colorize", str(ckpt), str(src), str(out), "--device", "cpu", "--overwrite"]) == 0
    assert count_frames(out) == 4
    # the default name is refused the same way on a second run
    assert cli(["colorize", str(ckpt), str(src), "--device", "cpu"]) == 0
    first = snapshot(tmp_path / "in_color.mp4")
    assert cli(["colorize", str(ckpt), str(src), "--device", "cpu"]) == 2
    assert f"error: OUT {tmp_path / 'in_color.mp4'}: exists; pass --overwrite" in capsys.readouterr().err
    assert snapshot(tmp_path / "in_color.mp4") == first


def test_directory_run_lists_every_existing_output_before_any_work(tmp_path, ckpt, capsys):
    films = tmp_path / "films"
    films.mkdir()
    for name in ("a", "b", "c"):
        video(films / f"{name}.mp4", n=3)
    out = tmp_path / "colored"
    out.mkdir()
    (out / "a.mp4").write_bytes(b"old a")
    (out / "b.mp4").write_bytes(b"old b")
    before = snapshot(out / "a.mp4", out / "b.mp4")
    assert cli(["colorize", str(ckpt), str(films), str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert (
        f"error: OUT {out}: 2 of the 3 outputs exist ({out / 'a.mp4'}, {out / 'b.mp4'}); "
        "pass --overwrite to replace them" in err
    )
    assert snapshot(out / "a.mp4", out / "b.mp4") == before
    assert sorted(os.listdir(out)) == ["a.mp4", "b.mp4"]  # c was not done either: refused before any work
    assert cli(["colorize", str(ckpt), str(films), str(out), "--device", "cpu", "--overwrite"]) == 0
    assert sorted(os.listdir(out)) == ["a.mp4", "b.mp4", "c.mp4"]
    assert [count_frames(out / f"{n}.mp4") for n in "abc"] == [3, 3, 3]


def test_frame_folder_output_is_refused_then_replaced_with_overwrite(tmp_path, ckpt, capsys):
    seq = tmp_path / "seq"
    seq.mkdir()
    for i, f in enumerate(frames(3)):
        Image.fromarray(f).save(seq / f"{i:05d}.png")
    out = tmp_path / "seq_out"
    assert cli(["colorize", str(ckpt), str(seq), str(out), "--device", "cpu"]) == 0
    first = snapshot(*sorted(out.iterdir()))
    assert len(first) == 3
    # the earlier frame output is OUT itself (not a folder to put an mp4 into), and it is kept
    assert cli(["colorize", str(ckpt), str(seq), str(out), "--device", "cpu"]) == 2
    assert f"error: OUT {out}: exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert snapshot(*sorted(out.iterdir())) == first
    assert cli(["colorize", str(ckpt), str(seq), str(out), "--device", "cpu", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_leftovers_of_killed_runs_are_removed_live_ones_kept(tmp_path, ckpt):
    src = video(tmp_path / "in.mp4")
    host = partial_tag().split("@", 1)[1]
    dead = dead_pid()
    stale_video = tmp_path / f".film.{dead}@{host}.partial.mp4"
    stale_old_style = tmp_path / f".film.{dead}.partial.mp4"  # named by pid only (before the host tag)
    live = tmp_path / f".film.{os.getppid()}@{host}.partial.mp4"  # a live process's: never touched
    elsewhere = tmp_path / f".film.{dead}@other-host.partial.mp4"  # another machine's: cannot tell
    for p in (stale_video, stale_old_style, live, elsewhere):
        p.write_bytes(b"half a film")
    stale_frames = tmp_path / f".frames.{dead}@{host}.partial"
    stale_frames.mkdir()
    (stale_frames / "00000.png").write_bytes(b"half a frame")
    assert cli(["colorize", str(ckpt), str(src), str(tmp_path / "film.mp4"), "--device", "cpu"]) == 0
    assert cli(["colorize", str(ckpt), str(src), str(tmp_path / "frames"), "--device", "cpu"]) == 0
    assert not stale_video.exists() and not stale_old_style.exists() and not stale_frames.exists()
    assert live.read_bytes() == b"half a film" and elsewhere.read_bytes() == b"half a film"
    assert count_frames(tmp_path / "film.mp4") == 4 and len(os.listdir(tmp_path / "frames")) == 4


def test_checkpoint_asking_for_a_huge_working_size_is_a_clear_error(tmp_path, ckpt, capsys):
    bad = tmp_path / "huge"
    bad.mkdir()
    for name in ("model.safetensors", "config.json"):
        (bad / name).write_bytes((ckpt / name).read_bytes())
    meta = json.loads((bad / "config.json").read_text())
    meta["frame_size"] = 100_000
    (bad / "config.json").write_text(json.dumps(meta))
    src = video(tmp_path / "in.mp4")
    assert cli(["colorize", str(bad), str(src), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"error: {bad / 'config.json'}: frame_size: must be an integer in [8, 4096], got 100000" in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "in_color.mp4").exists()
