"""Decoding sources: resize/crop arithmetic, frame picking, frame folders, source discovery."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from data_shards.video import (FramePicker, count_frames, find_sources, iter_frames, probe,
                               resize_center_crop, scaled_size)
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


def test_probe_and_decode_demo_video(demo_videos):
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


def test_find_sources_recursive(tmp_path, demo_videos):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "clip.mp4").write_bytes((demo_videos / "scene_000.mp4").read_bytes())
    (tmp_path / "a" / "notes.txt").write_text("x")
    seq = tmp_path / "a" / "JPEGImages" / "bear"
    seq.mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(seq / "00000.jpg")
    masks = tmp_path / "a" / "Annotations" / "bear"
    masks.mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(masks / "00000.png")
    found = find_sources(tmp_path)
    assert found == [seq, tmp_path / "a" / "b" / "clip.mp4"]
    assert find_sources(tmp_path / "a" / "notes.txt") == [tmp_path / "a" / "notes.txt"]  # explicit files stay


def test_probe_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VidcolorError, match=f"{empty}: empty file"):
        probe(empty)
    with pytest.raises(VidcolorError, match="no such file"):
        probe(tmp_path / "nope.mp4")
