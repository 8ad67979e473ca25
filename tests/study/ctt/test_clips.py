"""The CTT media files (study.ctt.clips): opaque copies, wrong recolorings, rendering folders."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from models.errors import VidcolorError
from study.ctt import clips


def test_wrong_recoloring_rotates_channels():
    px = np.array([[[200, 100, 50]]], np.uint8)
    out = clips.wrong_recoloring(px)
    # rotated to (50, 200, 100); gray 0.299·50 + 0.587·200 + 0.114·100 = 143.75; chroma doubled
    assert out[0, 0].tolist() == [0, 255, 56]


def test_png_pairs_keep_pixels_within_the_dither_but_not_bytes_or_name(tmp_path):
    still = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    src = tmp_path / "t_002_vid_a_gt.png"
    Image.fromarray(still).save(src)
    out = tmp_path / "out"
    out.mkdir()
    rng = np.random.default_rng(0)
    a, b = clips.write_pair(src, src, out, rng)
    assert a != b and a.parent == out and b.parent == out
    assert len(a.name) == 28 and a.suffix == ".png" and all(ch in "0123456789abcdef" for ch in a.stem)
    digests = {hashlib.md5(p.read_bytes()).hexdigest() for p in (src, a, b)}
    assert len(digests) == 3
    for p in (a, b):
        got = clips.read_png(p).astype(int)
        assert np.abs(got - still).max() == 1 and (got != still).mean() > 0.3  # every low bit is coin-flipped
    real, wrong = clips.write_pair(src, src, out, rng, recolor=clips.wrong_recoloring, recolor_real=True)
    assert np.abs(clips.read_png(wrong).astype(int) - clips.wrong_recoloring(still)).max() <= 1
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (a, b, real, wrong))  # nothing else left


def test_bad_media_are_named(tmp_path):
    rng = np.random.default_rng(0)
    with pytest.raises(VidcolorError, match="CTT media file .*missing.mp4 does not exist"):
        clips.write_pair(tmp_path / "missing.mp4", tmp_path / "missing.mp4", tmp_path, rng)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(VidcolorError, match="cannot read CTT still .*bad.png"):
        clips.read_png(bad)
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(VidcolorError, match=r"a\.png / .*b\.png: sizes differ"):
        clips.write_pair(tmp_path / "a.png", tmp_path / "b.png", tmp_path, rng)


def test_rendered_media_folder_is_removed(monkeypatch):
    seen = []

    def fake_render(checkpoint, shards, out_dir, *, split, clips, png):
        seen.append((checkpoint, shards, split, clips, png))
        path = Path(out_dir) / "pred.png"
        path.write_bytes(b"x")
        return [SimpleNamespace(media_type="pred_png", path=str(path), video_id="vid", clip=3, frame=4)]

    # stands in for study.media.samples (which imports torch): the renderer's call and its files
    monkeypatch.setitem(sys.modules, "study.media.samples", SimpleNamespace(render_samples=fake_render))
    with clips.rendered_media("ck", "shards", "legacy", 2, stills=True) as media:
        assert media.to_dict("records") == [
            {"media_type": "pred_png", "path": media["path"][0], "video_id": "vid", "clip": 3, "frame": 4}
        ]
        folder = Path(media["path"][0]).parent
        assert folder.is_dir() and folder.name.startswith("vidcolor-ctt-")
    assert seen == [("ck", "shards", "legacy", 2, True)] and not folder.exists()
    with pytest.raises(RuntimeError), clips.rendered_media("ck", "shards", "test", 1, stills=False) as media:
        folder = Path(media["path"][0]).parent
        raise RuntimeError("copying failed")
    assert not folder.exists()  # removed on errors too
