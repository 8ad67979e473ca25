"""`study.cli`: one `--overwrite` convention for every command that can replace an output."""

from __future__ import annotations

import argparse

from study.cli import OVERWRITE_HELP, build_parser
from study.cli import main as cli

# the commands whose outputs can already exist and be replaced (data_shards.outdir checks them all);
# the others only add (tune --resume, ctt build's new media files, demo's reused work folder) or
# write to the results database
REPLACING = {
    "demo-data",
    "shard",
    "import-eccv16",
    "train",
    "evaluate",
    "experiments",
    "colorize",
    "ctt export",
    "report",
}


def commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every leaf (sub)command of ``parser``, by its full name (``ctt campaign create``)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {prefix.strip(): parser}
    found = {}
    for name, sub in subs[0].choices.items():
        found.update(commands(sub, f"{prefix} {name}"))
    return found


def test_every_command_that_replaces_outputs_takes_the_same_overwrite():
    found = commands(build_parser())
    assert REPLACING < set(found) and "ctt campaign create" in found
    helps = {
        name: next((a.help for a in p._actions if "--overwrite" in a.option_strings), None) for name, p in found.items()
    }
    assert {name for name, h in helps.items() if h is not None} == REPLACING
    assert {helps[name] for name in REPLACING} == {OVERWRITE_HELP}
    assert OVERWRITE_HELP == "replace outputs that already exist (default: refuse them, before any work)"


def test_demo_work_folder_in_the_way_of_a_file(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"mine")
    for workdir, message in (
        (notes, f"{notes}: exists and is a file, not a folder"),
        (notes / "run", f"{notes / 'run'}: {notes} is a file, not a folder"),
    ):
        assert cli(["demo", "--workdir", str(workdir), "--no-dashboard"]) == 2
        err = capsys.readouterr().err
        assert f"error: --workdir {message}" in err and "Traceback" not in err
    assert notes.read_bytes() == b"mine" and [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
