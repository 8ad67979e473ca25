"""Finding sources: video files and DAVIS frame folders under a path, a folder's frames in number order."""

from __future__ import annotations

import pytest
from PIL import Image

from data_shards.sources import find_sources, frame_files, numbering_gaps
from models.errors import VidcolorError


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


def test_frame_files_in_number_order_with_gaps_and_refusals(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for n in (10, 2, 1, 5):  # as text "10" sorts before "2"
        Image.new("RGB", (2, 2)).save(folder / f"f{n}.png")
    (folder / ".DS_Store").write_text("hidden files are skipped")
    files = frame_files(folder)
    assert [p.name for p in files] == ["f1.png", "f2.png", "f5.png", "f10.png"]
    assert numbering_gaps(files) == [(3, 4), (6, 9)]
    (folder / "notes.txt").write_text("x")
    with pytest.raises(VidcolorError, match=r"notes\.txt: not an image file inside frame folder"):
        frame_files(folder)
    (folder / "notes.txt").unlink()
    Image.new("RGB", (2, 2)).save(folder / "g05.jpg")
    with pytest.raises(VidcolorError, match="two files carry frame number 5"):
        frame_files(folder)
