"""`vidcolor import-eccv16 ... --out DIR` (`study.train.import_weights`): the output folder is checked
before the weights are read, and replaced whole with --overwrite, never mixed with an earlier
checkpoint's files. The release file itself is stood in for by a tiny converted model (the
conversion is tested in tests/models/test_eccv16.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from models import eccv16
from models.checkpoint import load_checkpoint, save_checkpoint
from models.gamut import ABGamut
from models.model import create_model
from models.presets import get_preset
from study.cli import main as cli

TRAINED = (
    "config.json",
    "model.safetensors",
    "optimizer.safetensors",
    "optimizer.json",
    "train_state.json",
    "train_weights.safetensors",
)


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def release(monkeypatch, tmp_path):
    """A stand-in release: a tiny model read from ``weights.pth`` (a file that must exist)."""
    gamut = ABGamut(10)
    model = create_model(get_preset("exp2").replace(size="tiny", name="eccv16"), gamut).eval()
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"stand-in")
    reads = []

    def read(path):
        reads.append(Path(path))
        return eccv16.Release(model, gamut, {"source": "eccv16", "weights_file": Path(path).name})

    monkeypatch.setattr(eccv16, "read_release", read)
    return weights, reads


@pytest.fixture
def trained(tmp_path):
    """A trained checkpoint's folder: the two checkpoint files and the four a training run adds."""
    gamut = ABGamut(10)
    model = create_model(get_preset("exp1").replace(size="tiny"), gamut)
    folder = save_checkpoint(tmp_path / "ck", model, model.config, gamut, frame_size=16)
    for name in TRAINED[2:]:
        (folder / name).write_text(f"{name} of the trained run")
    assert sorted(os.listdir(folder)) == sorted(TRAINED)
    return folder


def test_existing_checkpoint_is_refused_before_the_weights_are_read(release, trained, capsys):
    weights, reads = release
    before = listing(trained)
    assert cli(["import-eccv16", str(weights), "--out", str(trained)]) == 2
    err = capsys.readouterr().err
    assert (
        f"error: --out {trained}: exists and is not empty (config.json, model.safetensors, optimizer.json, "
        "...); pass --overwrite to replace it"
    ) in err and "Traceback" not in err
    assert listing(trained) == before and reads == []


def test_overwrite_replaces_the_whole_folder(release, trained, capsys):
    weights, reads = release
    assert cli(["import-eccv16", str(weights), "--out", str(trained), "--overwrite"]) == 0
    assert f"checkpoint  {trained}" in capsys.readouterr().out and reads == [weights]
    assert sorted(os.listdir(trained)) == ["config.json", "model.safetensors"]  # nothing of the trained run left
    loaded = load_checkpoint(trained)
    assert loaded.meta["extra"]["source"] == "eccv16" and loaded.frame_size == eccv16.ECCV16_FRAME_SIZE
    assert sorted(os.listdir(trained.parent)) == ["ck", "weights.pth"]  # no temporary folder left


def test_failed_overwrite_keeps_the_old_checkpoint(release, trained, monkeypatch, capsys):
    weights, _ = release
    before = listing(trained)

    def broken(rel, out):
        (Path(out) / "model.safetensors").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(eccv16, "write_checkpoint", broken)
    with pytest.raises(OSError, match="No space left"):
        cli(["import-eccv16", str(weights), "--out", str(trained), "--overwrite"])
    assert listing(trained) == before and sorted(os.listdir(trained.parent)) == ["ck", "weights.pth"]


def test_folder_that_holds_no_checkpoint_and_a_file_in_the_way(release, tmp_path, capsys):
    weights, reads = release
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    assert cli(["import-eccv16", str(weights), "--out", str(notes), "--overwrite"]) == 2
    assert (
        f"error: --out {notes}: not empty (todo.txt) and holds no checkpoint (config.json missing); "
        "refusing to replace it"
    ) in capsys.readouterr().err
    assert listing(notes) == {"todo.txt": b"mine"}
    assert cli(["import-eccv16", str(weights), "--out", str(notes / "todo.txt")]) == 2
    assert f"error: --out {notes / 'todo.txt'}: exists and is a file, not a folder" in capsys.readouterr().err
    assert cli(["import-eccv16", str(weights), "--out", str(notes / "todo.txt" / "ck")]) == 2
    assert (
        f"error: --out {notes / 'todo.txt' / 'ck'}: {notes / 'todo.txt'} is a file, not a folder"
        in capsys.readouterr().err
    )
    assert reads == [] and listing(notes) == {"todo.txt": b"mine"}
    # a new folder, and an existing empty one, need no --overwrite
    empty = tmp_path / "empty"
    empty.mkdir()
    for out in (tmp_path / "new" / "ck", empty):
        assert cli(["import-eccv16", str(weights), "--out", str(out)]) == 0
        assert sorted(os.listdir(out)) == ["config.json", "model.safetensors"]


def test_cli_reports_a_missing_file(tmp_path, capsys):
    assert cli(["import-eccv16", str(tmp_path / "none.pth"), "--out", str(tmp_path / "ck")]) == 2
    assert "none.pth: file not found" in capsys.readouterr().err
    assert not (tmp_path / "ck").exists()
