"""Odd paths for every input and output argument: missing, a folder where a file goes (and the
reverse), a path under a file, dangling and looping links, over-long and odd names, /dev/null
as an input, and (when not root) a file or folder without permissions.

Outputs are only ever placed in the case's folder (never /dev/...): an output path is one of the
odd paths below made inside the case folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

KINDS = ["missing", "dir", "file", "under_file", "dangling", "loop", "long", "odd_name", "empty_dir", "unreadable"]


def _odd(fz, case, kind, name):
    """A path of ``kind`` in ``case`` (may create things next to it)."""
    p = case / name
    if kind == "missing":
        return case / "no" / name
    if kind in ("dir", "empty_dir"):
        p.mkdir()
        if kind == "dir":
            (p / "x.txt").write_text("x")
        return p
    if kind == "file":
        p.write_text("not what you expected\n")
        return p
    if kind == "under_file":
        (case / "afile").write_text("x")
        return case / "afile" / name
    if kind == "dangling":
        p.symlink_to(case / "nowhere")
        return p
    if kind == "loop":
        p.symlink_to(p)
        return p
    if kind == "long":
        return case / ("n" * 300)
    if kind == "odd_name":
        return case / "a\nb ü \t;$(x)'.mp4"
    # unreadable: as root (CI containers) permissions do not stop reads, so a plain file stands in
    p.write_text("secret")
    p.chmod(0o000)
    return p


@given(
    command=st.sampled_from(["shard", "colorize", "evaluate", "import-eccv16", "demo-data", "report", "export"]),
    in_kind=st.sampled_from([*KINDS, "good", "devnull"]),
    out_kind=st.sampled_from([*KINDS, "good"]),
    which=st.sampled_from(["input", "checkpoint", "output"]),
)
def test_odd_paths(fz, command, in_kind, out_kind, which):
    with fz.case() as case:
        good_in = {
            "shard": fz.base.gray,
            "colorize": fz.base.gray,
            "evaluate": fz.base.shards,
            "import-eccv16": fz.base.pth,
        }.get(command)
        src = good_in if in_kind == "good" else os.devnull if in_kind == "devnull" else _odd(fz, case, in_kind, "in")
        ckpt = fz.base.ckpt if which != "checkpoint" else src
        if which == "checkpoint":
            src = good_in
        out = case / "out" if out_kind == "good" else _odd(fz, case, out_kind, "out")
        if command == "shard":
            argv = ["shard", src, "--out", out, "--size", 16, "--clip-len", 2]
        elif command == "colorize":
            argv = ["colorize", ckpt, src, str(out) + (".mp4" if out_kind == "good" else "")]
            out = argv[-1]
        elif command == "evaluate":
            out = str(out) + (".json" if out_kind == "good" else "")
            argv = ["evaluate", ckpt, "--shards", src, "--device", "cpu", "--json", out]
        elif command == "import-eccv16":
            argv = ["import-eccv16", src, "--out", out]
        elif command == "demo-data":
            argv = ["demo-data", "--out", out, "--videos", 1, "--seconds", 0.25, "--size", 16, "--fps", 4]
        elif command == "report":
            argv, out = ["report", "fuzz", "--db", f"sqlite:///{src}"], None
        else:
            argv = ["ctt", "export", "--db", f"sqlite:///{fz.base.db}", "--out", out]
        # an output that existed before (a file or folder made above) may be refused, never replaced
        existed = out is not None and os.path.lexists(out) and not (os.path.isdir(out) and not os.listdir(out))
        before = fz.snapshot(out) if existed else None
        if out is not None and out_kind == "missing":
            out = case / "no"  # the output's missing parent: created with it, and part of it
        beside = ()
        if argv[:2] == ["ctt", "export"]:  # FILE-agreement.csv ... beside FILE
            from study.ctt.export import side_paths

            beside = tuple(side_paths(Path(argv[-1])).values())
        fz.check(argv, watch=[case, fz.base.root], out=None if existed else out, allowed=(0, 1, 2), beside=beside)
        if existed:
            assert fz.diff(before, fz.snapshot(out)) == [], f"{out} changed without --overwrite"
