"""`data_shards.outdir`: the one output-path check of every command, and how a folder is replaced.

"Unchanged" is checked on bytes, mtimes and folder listings. Tests run as root here, where
permission bits stop nothing; the permission case skips then, and a file on the parent path (which
stops root too) stands in for an unwritable place.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from data_shards import outdir
from models.errors import VidcolorError


def tree(folder: Path) -> dict[str, tuple[bytes, int] | None]:
    """Every entry under ``folder``: a file's (bytes, mtime), None for a folder."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None
        for p in sorted(folder.rglob("*"))
    }


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# -- files -----------------------------------------------------------------------------------------


def test_existing_file_is_refused_by_flag_and_path_unless_overwrite(tmp_path):
    out = tmp_path / "eval.json"
    out.write_bytes(b"earlier figures")
    with pytest.raises(VidcolorError) as err:
        outdir.check_file(out, "--json")
    assert str(err.value) == f"--json {out}: exists; pass --overwrite to replace it"
    assert out.read_bytes() == b"earlier figures"
    assert outdir.check_file(out, "--json", overwrite=True) == out
    link = tmp_path / "dangling.json"
    link.symlink_to(tmp_path / "nowhere")  # a link to nothing is still something the output would replace
    with pytest.raises(VidcolorError, match="dangling.json: exists; pass --overwrite"):
        outdir.check_file(link, "--json")


def test_file_path_shapes(tmp_path, monkeypatch):
    blocker = tmp_path / "notes.txt"
    blocker.write_bytes(b"mine")
    with pytest.raises(VidcolorError) as err:
        outdir.check_file(blocker / "sub" / "res.csv", "--out")
    assert str(err.value) == f"--out {blocker / 'sub' / 'res.csv'}: {blocker} is a file, not a folder"
    with pytest.raises(VidcolorError) as err:
        outdir.check_file(tmp_path, "--out", overwrite=True, expected="a CSV file name")
    assert str(err.value) == f"--out {tmp_path}: is a folder, expected a CSV file name"
    # missing parent folders are fine (created on writing); a relative path comes back absolute
    monkeypatch.chdir(tmp_path)
    assert outdir.check_file(Path("new") / "deep" / "res.csv", "--out") == tmp_path / "new" / "deep" / "res.csv"
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"] and blocker.read_bytes() == b"mine"


# -- folders ---------------------------------------------------------------------------------------


def test_non_empty_folder_is_refused_unless_overwrite_and_listed(tmp_path):
    out = tmp_path / "ck"
    out.mkdir()
    for name in ("config.json", "model.safetensors", "optimizer.safetensors", "train_state.json"):
        (out / name).write_text(name)
    before = tree(out)
    with pytest.raises(VidcolorError) as err:
        outdir.check_folder(out, "--out", holds=("config.json",), what="checkpoint")
    assert str(err.value) == (
        f"--out {out}: exists and is not empty (config.json, model.safetensors, "
        "optimizer.safetensors, ...); pass --overwrite to replace it"
    )
    assert outdir.check_folder(out, "--out", True, holds=("config.json",), what="checkpoint") == out
    assert tree(out) == before  # checking changes nothing
    empty, missing = tmp_path / "empty", tmp_path / "a" / "b"
    empty.mkdir()
    assert outdir.check_folder(empty, "--out") == empty and outdir.check_folder(missing, "--out") == missing
    assert not (tmp_path / "a").exists()


def test_a_folder_not_made_by_the_command_is_never_replaced(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    for overwrite in (False, True):
        with pytest.raises(VidcolorError) as err:
            outdir.check_folder(home, "--out", overwrite, holds=("config.json", "model.safetensors"), what="checkpoint")
        assert str(err.value) == (
            f"--out {home}: not empty (thesis.tex) and holds no checkpoint (config.json "
            "missing); refusing to replace it: choose a new or empty folder"
        )
    # names the caller ignores (a lock file, build leftovers) do not make a folder non-empty
    (home / "thesis.tex").unlink()
    (home / ".lock").write_text("1")
    assert outdir.check_folder(home, "--out", ignore=(".lock",), holds=("config.json",)) == home


def test_folder_path_shapes(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_bytes(b"a file named like the folder")
    with pytest.raises(VidcolorError) as err:
        outdir.check_folder(blocker, "--out", overwrite=True)
    assert str(err.value) == f"--out {blocker}: exists and is a file, not a folder"
    with pytest.raises(VidcolorError) as err:
        outdir.check_place(blocker / "exp1" / "best", "--out", folder=True)
    assert str(err.value) == f"--out {blocker / 'exp1' / 'best'}: {blocker} is a file, not a folder"
    assert blocker.read_bytes() == b"a file named like the folder"
    # a folder the command adds to may hold anything
    media = tmp_path / "media"
    media.mkdir()
    (media / "abc.mp4").write_bytes(b"an item's clip")
    assert outdir.check_place(media, "--out", folder=True) == media


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: permission bits do not stop writes")
def test_unwritable_nearest_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        for check in (
            lambda: outdir.check_file(locked / "a" / "res.csv", "--out"),
            lambda: outdir.check_folder(locked / "run", "--out"),
        ):
            with pytest.raises(VidcolorError, match=f"cannot write to {locked} \\(permission denied\\)"):
                check()
        with pytest.raises(VidcolorError, match=f"--out {locked}: cannot write to {locked}"):
            outdir.check_place(locked, "--out", folder=True)  # an existing folder: itself must be writable
    finally:
        locked.chmod(0o700)


# -- replacing a folder ----------------------------------------------------------------------------


def test_replace_folder_swaps_in_a_whole_new_folder(tmp_path):
    out = tmp_path / "ck"
    out.mkdir()
    (out / "config.json").write_text("old")
    (out / "optimizer.safetensors").write_text("old state")  # not written by the new output: must go
    with outdir.replace_folder(out) as folder:
        assert folder != out and folder.parent == tmp_path and folder.name.startswith(".ck.vidcolor-new-")
        assert sorted(os.listdir(out)) == ["config.json", "optimizer.safetensors"]  # the old one, while writing
        (folder / "config.json").write_text("new")
    assert {k: v[0] for k, v in tree(out).items()} == {"config.json": b"new"}
    assert sorted(os.listdir(tmp_path)) == ["ck"]  # no temporary or old folder left


def test_failed_replacement_keeps_the_old_folder(tmp_path):
    out = tmp_path / "ck"
    out.mkdir()
    (out / "config.json").write_text("old")
    before = tree(out)
    with pytest.raises(RuntimeError, match="conversion failed"):
        with outdir.replace_folder(out) as folder:
            (folder / "config.json").write_text("half")
            raise RuntimeError("conversion failed")
    assert tree(out) == before and sorted(os.listdir(tmp_path)) == ["ck"]


def test_a_new_or_empty_folder_is_written_in_place_and_cleaned_on_failure(tmp_path):
    out = tmp_path / "new" / "videos"
    with outdir.replace_folder(out) as folder:
        assert folder == out and out.is_dir()
        (folder / "a.mp4").write_bytes(b"a")
    assert os.listdir(out) == ["a.mp4"]
    with pytest.raises(KeyboardInterrupt):
        with outdir.replace_folder(tmp_path / "fresh") as folder:
            (folder / "half.mp4").write_bytes(b"h")
            raise KeyboardInterrupt
    assert not (tmp_path / "fresh").exists()
    empty = tmp_path / "empty"  # made by the user, perhaps a mount point: kept, left empty on failure
    empty.mkdir()
    with pytest.raises(ValueError):
        with outdir.replace_folder(empty) as folder:
            assert folder == empty
            (folder / "sub").mkdir()
            raise ValueError
    assert empty.is_dir() and os.listdir(empty) == []


def test_leftovers_of_killed_replacements_are_removed(tmp_path):
    out = tmp_path / "ck"
    out.mkdir()
    (out / "config.json").write_text("old")
    stale = tmp_path / f".ck.vidcolor-new-{dead_pid()}"
    live = tmp_path / f".ck.vidcolor-new-{os.getppid()}"  # a live process's: never touched
    for p in (stale, live):
        p.mkdir()
        (p / "config.json").write_text("half")
    with outdir.replace_folder(out) as folder:
        (folder / "config.json").write_text("new")
    assert sorted(os.listdir(tmp_path)) == [live.name, "ck"] and (out / "config.json").read_text() == "new"


def test_empty_folder_removes_the_old_output_and_remakes_it(tmp_path):
    run = tmp_path / "run"
    (run / "ray" / "train").mkdir(parents=True)
    (run / "best").mkdir()
    (run / "best" / "config.json").write_text("old")
    assert outdir.empty_folder(run) == run and run.is_dir() and os.listdir(run) == []
    assert outdir.empty_folder(tmp_path / "x" / "y").is_dir()
