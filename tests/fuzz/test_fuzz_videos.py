"""Damaged and oddly sized videos, PNG and JPEG frames into `vidcolor shard` and `vidcolor colorize`.

Bad sources are skipped by `shard` (exit 2 when none is left) and refused by `colorize` (exit 2);
never a traceback, never a changed input, never a replaced output without --overwrite.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

ODD_SIZES = st.one_of(
    st.sampled_from([(1, 1), (3, 1000), (1000, 3), (1, 2), (2, 1), (33, 17), (7, 5), (31, 33)]),
    st.tuples(st.integers(1, 48), st.integers(1, 48)),
)


@given(data=st.data())
def test_damaged_video_into_shard_and_colorize(fz, data):
    with fz.case() as case:
        name = data.draw(st.sampled_from(["scene_000.mp4", "bw_000.mp4"]), "video")
        raw = (fz.base.videos / name).read_bytes()
        src = case / "in" / data.draw(st.sampled_from(["clip.mp4", "clip.mkv", "clip.avi", "clip"]), "name")
        src.parent.mkdir()
        src.write_bytes(fz.damage(data, raw))
        fz.check(
            ["shard", src, "--out", case / "shards", "--size", 16, "--clip-len", 2],
            watch=[case, fz.base.root],
            out=case / "shards",
        )
        fz.check(
            ["colorize", fz.base.ckpt, src, case / "color.mp4", "--size", 16],
            watch=[case, fz.base.root],
            out=case / "color.mp4",
        )


@given(data=st.data())
def test_damaged_frames_into_shard_and_colorize(fz, data):
    """One or more PNG/JPEG frames of a frame folder damaged; a directory of such inputs too."""
    with fz.case() as case:
        ext = data.draw(st.sampled_from(["png", "jpg"]), "ext")
        base = fz.base.png if ext == "png" else fz.base.jpg
        folder = fz.copy(base, case / "in" / "film")
        frames = sorted(folder.iterdir())
        for i in data.draw(st.lists(st.integers(0, len(frames) - 1), min_size=1, max_size=3, unique=True), "which"):
            frames[i].write_bytes(fz.damage(data, frames[i].read_bytes(), f"frame{i}"))
        whole = data.draw(st.booleans(), "the directory")  # the film folder, or the folder holding it
        src = case / "in" if whole else folder
        fz.check(
            ["shard", src, "--out", case / "shards", "--size", 16, "--clip-len", 2, "--lossless"],
            watch=[case, fz.base.root],
            out=case / "shards",
        )
        out = case / ("colored" if whole else "colored.mp4")
        fz.check(
            ["colorize", fz.base.ckpt, src, out, "--size", 16],
            watch=[case, fz.base.root],
            out=out,
            allowed=(0, 1, 2) if whole else (0, 2),  # a directory run: one failed input is status 1
        )


@given(size=ODD_SIZES, n=st.integers(1, 5), form=st.sampled_from(["mkv", "avi", "png", "jpg"]))
def test_odd_sizes(fz, size, n, form):
    """1x1, 3x1000, odd widths ...: sharded and colorized, or refused by name; never a crash."""
    width, height = size
    with fz.case() as case:
        frames = fz.gray_frames(n, width, height)
        if form in ("mkv", "avi"):
            src = fz.write_mjpeg(case / f"odd.{form}", frames)
        else:
            src = fz.write_frame_folder(case / "odd", frames, form)
        fz.check(
            ["shard", src, "--out", case / "shards", "--size", 8, "--clip-len", 1],
            watch=[case, fz.base.root],
            out=case / "shards",
        )
        fz.check(
            ["colorize", fz.base.ckpt, src, case / "odd_color.mp4", "--size", 16],
            watch=[case, fz.base.root],
            out=case / "odd_color.mp4",
        )
