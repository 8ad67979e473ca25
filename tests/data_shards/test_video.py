"""Decoding sources: resize/crop arithmetic, frame picking, frame folders, and the one decoding path
in its strict (shard writer) and tolerant (colorize) forms (finding sources: test_sources.py)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from data_shards.video import (
    FramePicker,
    decode_frames,
    iter_frames,
    iter_frames_tolerant,
    probe,
    resize_center_crop,
    scaled_size,
)
from models.errors import VidcolorError


def test_scaled_size_and_center_crop_by_hand():
    assert scaled_size(1280, 720, 256) == (455, 256)
    assert scaled_size(240, 320, 64) == (64, 85)
    frame = np.zeros((4, 8, 3), np.uint8)
    frame[:, :, 0] = np.arange(8, dtype=np.uint8)[None, :] * 10  # column index in red
    out = resize_center_crop(frame, 4)  # no resize needed (short side is 4): a pure crop of columns 2..5
    assert out.shape == (4, 4, 3)
    assert out[0, :, 0].tolist() == [20, 30, 40, 50]
    assert resize_center_crop(np.full((30, 50, 3), 7, np.uint8), 10).shape == (10, 10, 3)
    assert (resize_center_crop(np.full((30, 50, 3), 7, np.uint8), 10) == 7).all()  # a flat image stays flat
    with pytest.raises(VidcolorError, match="uint8"):
        resize_center_crop(np.zeros((4, 4), np.float32), 2)


def test_frame_picker_by_hand():
    def picked(src, fps, n):
        p = FramePicker(src, fps)
        return [i for i in range(n) if p.take(i)], p.out_fps

    assert picked(30, 10, 10) == ([0, 3, 6, 9], 10.0)
    assert picked(12, 6, 6) == ([0, 2, 4], 6.0)
    assert picked(12, None, 3) == ([0, 1, 2], 12.0)
    assert picked(12, 24, 3) == ([0, 1, 2], 12.0)  # never upsamples by repeating frames
    idx, fps = picked(29.97, 12, 30)
    assert fps == pytest.approx(12) and len(idx) == 12 and idx[:3] == [0, 2, 5]


def test_probe_and_decode_demo_video(demo_videos, count_frames):
    path = demo_videos / "scene_000.mp4"
    info = probe(path)
    assert (info.frames, info.fps, info.width, info.height, info.has_audio) == (24, 12.0, 86, 64, False)
    frames = list(iter_frames(path))
    assert len(frames) == count_frames(path) == 24 and frames[0].shape == (64, 86, 3)
    assert frames[0].dtype == np.uint8
    small = list(iter_frames(path, 32, fps=6))
    assert len(small) == 12 and small[0].shape == (32, 32, 3)


def test_frame_folder_numeric_order_and_exact_pixels(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    colors = {1: (255, 0, 0), 2: (0, 255, 0), 10: (0, 0, 255)}  # "10" sorts before "2" as text
    for n, c in colors.items():
        Image.new("RGB", (6, 4), c).save(folder / f"frame{n}.png")
    info = probe(folder)
    assert (info.frames, info.width, info.height, info.fps) == (3, 6, 4, 24.0)
    frames = list(iter_frames(folder))
    assert [tuple(f[0, 0]) for f in frames] == [colors[1], colors[2], colors[10]]


def test_probe_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VidcolorError, match=f"{empty}: empty file"):
        probe(empty)
    with pytest.raises(VidcolorError, match="no such file"):
        probe(tmp_path / "nope.mp4")


# ----------------------------------------------------------------------------- strict and tolerant decoding


def _gradient(i: int, h: int = 24, w: int = 32) -> np.ndarray:
    xx = np.tile(np.arange(w, dtype=np.float32), (h, 1))
    g = np.clip(40 + 5 * xx + 10 * i, 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, -1)


def test_probe_records_the_path_and_kind(tmp_path, demo_videos):
    info = probe(demo_videos / "scene_000.mp4")
    assert info.path == demo_videos / "scene_000.mp4" and not info.is_folder
    folder = tmp_path / "seq"
    folder.mkdir()
    Image.fromarray(_gradient(0)).save(folder / "00000.png")
    info = probe(folder)
    assert info.path == folder and info.is_folder and info.frames == 1


def test_bad_frame_strict_is_an_error_tolerant_is_none(tmp_path, caplog, mjpeg_with_bad_frame):
    frames = [_gradient(i) for i in range(6)]
    path = mjpeg_with_bad_frame(tmp_path / "damaged.mkv", frames, bad=2)
    with pytest.raises(VidcolorError, match=r"damaged\.mkv: corrupt or truncated video, frame 2 failed to decode"):
        list(iter_frames(path))
    with caplog.at_level(logging.WARNING, logger="data_shards.video"):
        got = list(iter_frames_tolerant(probe(path)))
    assert [f is None for f in got] == [i == 2 for i in range(6)]
    assert "damaged.mkv: frame 2 failed to decode" in caplog.text
    for i in (0, 1, 3, 4, 5):  # the other frames are the real ones (4:4:4 JPEG: a few levels off)
        assert np.abs(got[i].astype(int) - frames[i]).mean() < 3


def test_unreadable_folder_frame_strict_and_tolerant(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(_gradient(i)).save(folder / f"{i:05d}.png")
    data = (folder / "00001.png").read_bytes()
    (folder / "00001.png").write_bytes(data[: len(data) // 2])  # header intact (probe passes), pixels cut
    info = probe(folder)
    with pytest.raises(VidcolorError, match=r"00001\.png: not a readable image"):
        list(decode_frames(info))
    got = list(iter_frames_tolerant(info))
    assert got[1] is None and np.array_equal(got[0], _gradient(0)) and np.array_equal(got[2], _gradient(2))


def test_keep_and_size_pick_and_shrink_frames(demo_videos):
    info = probe(demo_videos / "scene_000.mp4")
    full = [f for _, f in decode_frames(info)]
    picked = list(decode_frames(info, 16, keep=lambda i: i % 5 == 0))
    assert [i for i, _ in picked] == [0, 5, 10, 15, 20]
    assert all(f.shape == (16, 16, 3) for _, f in picked)
    # swscale's area filter in the decoder against Pillow's resize of the full frame: close, not equal
    assert np.abs(picked[1][1].astype(int) - resize_center_crop(full[5], 16)).mean() < 6


def test_truncated_file_is_an_error_in_both_modes(tmp_path, demo_videos):
    data = (demo_videos / "scene_000.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])  # the index is up front: it opens, then breaks off
    for frames in (lambda: iter_frames(cut), lambda: iter_frames_tolerant(probe(cut))):
        with pytest.raises(VidcolorError, match=r"cut\.mp4: .*truncated"):
            list(frames())
