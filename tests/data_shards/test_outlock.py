"""`vidcolor shard --out`: one run at a time (a lock naming its holder), killed runs' leftovers removed
(`data_shards.outlock`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from data_shards.outlock import LOCK_FILE, OutLock
from data_shards.writer import write_shard_set
from models.errors import VidcolorError
from study.cli import main as cli

HOLD = """
import sys
from pathlib import Path
from data_shards.outlock import OutLock
with OutLock(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.read()  # hold until the test closes our stdin
"""


def _shard(sources, out, **kw):
    return write_shard_set([str(s) for s in sources], out, size=32, clip_len=8, show_progress=False, **kw)


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def holder():
    """``hold(out)``: a separate process holding ``out``'s lock, as a running `vidcolor shard` does."""
    procs = []

    def hold(out: Path) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        procs.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield hold
    for proc in procs:
        proc.stdin.close()
        proc.wait(timeout=30)


def test_second_run_into_a_locked_folder_fails_at_once(tmp_path, demo_videos, holder, capsys):
    src = [demo_videos / "scene_000.mp4"]
    out = tmp_path / "s"
    _shard(src, out)
    (out / ".vidcolor-build-old").mkdir()  # a leftover: not touched while a live run holds the lock
    (out / ".vidcolor-build-old" / "x.tar").write_bytes(b"partial")
    before = _snapshot(out)
    proc = holder(out)
    message = (
        f"--out {out}: another `vidcolor shard` run is writing there (pid {proc.pid}, lock "
        f"{out / LOCK_FILE}); wait for it to finish or choose another folder"
    )
    with pytest.raises(VidcolorError) as err:
        _shard(src + [demo_videos / "scene_001.mp4"], out, overwrite=True)
    assert str(err.value) == message
    assert cli(["shard", str(src[0]), "--out", str(out), "--size", "32", "--overwrite"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"
    after = _snapshot(out)
    assert after.pop(LOCK_FILE)[0] == f"{proc.pid}\n".encode()  # the holder's lock file, untouched
    assert after == before  # nothing replaced, nothing removed
    # once the holder is gone, the next run succeeds, cleans up, and leaves no lock behind
    proc.stdin.close()
    proc.wait(timeout=30)
    assert not (out / LOCK_FILE).exists()
    m = _shard(src + [demo_videos / "scene_001.mp4"], out, overwrite=True)
    assert len(m["videos"]) == 2 and not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_lock_of_a_dead_run_is_taken_over(tmp_path, demo_videos):
    out = tmp_path / "s"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK_FILE).write_text(f"{dead.pid}\n")  # what a killed run leaves: the file, no lock on it
    m = _shard([demo_videos / "scene_000.mp4"], out)
    assert len(m["videos"]) == 1 and not (out / LOCK_FILE).exists()
    assert sorted(p.name for p in out.iterdir()) == ["ab_hist.npy", "manifest.json", "train-000000.tar"]


def test_leftover_build_folders_are_removed_by_the_next_run(tmp_path, demo_videos):
    out = tmp_path / "s"
    _shard([demo_videos / "scene_000.mp4"], out)
    left = out / ".vidcolor-build-x"
    (left / "staging").mkdir(parents=True)
    (left / "staging" / "000000.tar").write_bytes(b"\0" * 1024)
    (out / ".vidcolor-build-empty").mkdir()
    mine = out / ".vidcolor-build-notes.txt"  # a file, not a build folder: kept
    mine.write_text("x")
    _shard([demo_videos / "scene_001.mp4"], out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [
        ".vidcolor-build-notes.txt",
        "ab_hist.npy",
        "manifest.json",
        "train-000000.tar",
    ]


def test_leftovers_alone_do_not_make_the_folder_non_empty(tmp_path, demo_videos):
    out = tmp_path / "s"
    (out / ".vidcolor-build-abc").mkdir(parents=True)
    m = _shard([demo_videos / "scene_000.mp4"], out)  # no --overwrite needed
    assert len(m["videos"]) == 1 and not (out / ".vidcolor-build-abc").exists()


def test_lock_is_exclusive_within_one_process_and_released(tmp_path):
    with OutLock(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text().strip().isdigit()
        with pytest.raises(VidcolorError, match=f"^--out {tmp_path}: another `vidcolor shard` run"):
            OutLock(tmp_path).__enter__()
    assert not (tmp_path / LOCK_FILE).exists()
    with OutLock(tmp_path):  # free again
        pass
