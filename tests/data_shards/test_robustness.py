"""`vidcolor shard` on footage its authors did not generate: rotated phone video, a still image
named .mp4, odd/portrait/tiny sizes, 10-bit and gray encodings, frame folders with gaps, and the
black-and-white rule on sepia (tinted monochrome) vs faded color footage (data_shards.stats)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from data_shards import stats
from data_shards.video import iter_frames, probe, resize_center_crop
from data_shards.writer import write_shard_set
from models.errors import VidcolorError


def pattern(i: int, w: int, h: int, sat: float = 1.0) -> np.ndarray:
    """Colored moving waves; ``sat`` scales the color away from the gray of each pixel."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack(
        [128 + 100 * np.sin((x + 3 * i) / 7), 128 + 100 * np.sin((y + 2 * i) / 5), 128 + 100 * np.cos((x + y + i) / 9)],
        -1,
    )
    gray = rgb.mean(-1, keepdims=True)
    return np.clip(gray + sat * (rgb - gray), 0, 255).astype(np.uint8)


def sepia(frame: np.ndarray) -> np.ndarray:
    g = frame.mean(-1, keepdims=True)
    return np.clip(g * np.array([1.07, 0.95, 0.78]), 0, 255).astype(np.uint8)


def write(path, frames, codec="libx264", pix_fmt="yuv444p", rotation=None, fps=12):
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        if rotation is not None:
            s.set_display_rotation(rotation)
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode(None))
    return path


def test_display_rotation_gives_upright_frames(tmp_path):
    # Stored landscape 64x48: white left band, red top band; a 90-degree (counter-clockwise)
    # display matrix makes it a 48x64 portrait picture with the white band at the bottom.
    img = np.full((48, 64, 3), 60, np.uint8)
    img[:, :16] = 255
    img[:8, 16:, 0] = 220
    path = write(tmp_path / "phone.mp4", [img] * 4, rotation=90)
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (48, 64, 90)
    frame = next(iter(iter_frames(path)))
    assert frame.shape == (64, 48, 3)
    np.testing.assert_allclose(frame[-16:, :].astype(float).mean(), 255, atol=4)  # white band at the bottom
    assert frame[:-16, :8, 0].mean() > 200 and frame[:-16, :8, 1].mean() < 90  # red band on the left
    # the resized path (swscale in the stored orientation, then rotated) matches resizing upright
    small = next(iter(iter_frames(path, size=24)))
    assert small.shape == (24, 24, 3)
    assert np.abs(small.astype(int) - resize_center_crop(frame, 24)).mean() < 6


def test_still_image_renamed_mp4_is_named_as_such(tmp_path):
    path = tmp_path / "photo.mp4"
    Image.fromarray(pattern(0, 32, 24)).save(path, format="PNG")
    with pytest.raises(VidcolorError, match=r"photo\.mp4: is a still image \(png\), not a video"):
        probe(path)
    with pytest.raises(VidcolorError, match="still image"):
        write_shard_set([path, tmp_path / "x"], tmp_path / "out", size=16, clip_len=2, show_progress=False)


def test_frame_folder_gaps_are_reported(tmp_path, caplog):
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in (0, 1, 2, 5, 6, 9):
        Image.fromarray(pattern(i, 16, 12)).save(folder / f"{i:05d}.png")
    with caplog.at_level(logging.WARNING, logger="data_shards.sources"):
        info = probe(folder)
    assert info.frames == 6
    assert "4 frame number(s) missing (3-4, 7-8)" in caplog.text and str(folder) in caplog.text


@pytest.mark.parametrize(
    "name,make,tone",
    [
        ("gray", lambda i: np.repeat(pattern(i, 64, 48).mean(-1, keepdims=True), 3, -1).astype(np.uint8), "gray"),
        ("sepia", lambda i: sepia(pattern(i, 64, 48)), "tinted"),
        ("faded", lambda i: pattern(i, 64, 48, sat=0.12), "color"),
        (
            "faded_yellowed",
            lambda i: np.clip(pattern(i, 64, 48, sat=0.15) * np.array([1.05, 1.0, 0.85]), 0, 255).astype(np.uint8),
            "color",
        ),
    ],
)
def test_black_and_white_rule_after_h264(tmp_path, name, make, tone):
    """Low saturation alone is color; near-zero chroma or a single hue (sepia) is black-and-white."""
    path = write(tmp_path / f"{name}.mp4", [make(i) for i in range(6)], pix_fmt="yuv420p")
    hist = stats.frames_histogram(np.stack(list(iter_frames(path))))
    assert stats.tone(hist) == tone


def test_off_hue_share_by_hand():
    hist = stats.empty_histogram()
    hist[128 + 20, 128 + 0] = 90  # a = 20, b = 0: hue 0 degrees
    hist[128 + 0, 128 + 20] = 10  # hue 90 degrees: off the mean hue by far more than 15
    hist[128, 128] = 1000  # gray pixels do not count
    assert stats.off_hue_share(hist) == pytest.approx(0.10)
    assert stats.tone(hist) == "color"
    hist[128, 128 + 20] = 1
    assert stats.off_hue_share(hist) == pytest.approx(1 / 91) and stats.tone(hist) == "tinted"


def test_odd_encodings_shard_with_decoded_frame_counts(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    color = [pattern(i, 64, 48) for i in range(5)]
    write(src / "odd.mp4", [pattern(i, 33, 19) for i in range(5)])  # odd size, smaller than --size
    write(src / "portrait.mp4", [pattern(i, 24, 40) for i in range(5)])
    write(src / "tenbit.mp4", color, pix_fmt="yuv420p10le")
    write(
        src / "gray8.mkv",
        [np.repeat(f.mean(-1, keepdims=True), 3, -1).astype(np.uint8) for f in color],
        codec="ffv1",
        pix_fmt="gray",
    )
    write(src / "vp9.webm", color, codec="libvpx-vp9", pix_fmt="yuv420p")
    write(src / "mj.avi", color, codec="mjpeg", pix_fmt="yuvj444p")
    write(src / "one.mp4", color[:1])
    (src / "notes.txt").write_text("not a video")
    sub = src / "dup stems.v2"
    sub.mkdir()
    write(sub / "odd.mp4", color)  # same stem as ../odd.mp4, dotted folder name
    out = tmp_path / "shards"
    m = write_shard_set([src], out, size=32, clip_len=4, split="100,0,0", show_progress=False)
    by_source = {v["source"]: v for v in m["videos"]}
    assert {p.split("/")[-1] for p in by_source} == {
        "odd.mp4",
        "portrait.mp4",
        "tenbit.mp4",
        "gray8.mkv",
        "vp9.webm",
        "mj.avi",
    }
    ids = [v["id"] for v in m["videos"]]
    assert len(set(ids)) == len(ids) and all("." not in i for i in ids)
    assert all(v["frames"] == 5 for v in m["videos"])
    assert by_source[str(src / "gray8.mkv")]["split"] == "legacy"
    assert by_source[str(src / "portrait.mp4")]["width"] == 24
    assert [s["reason"] for s in m["skipped"]] == [f"{src / 'one.mp4'}: too short, 1 frames is less than one clip of 4"]
    assert json.loads((out / "manifest.json").read_text())["videos"][0]["tone"] in ("gray", "tinted", "color")


def test_tiny_source_upscaled_more_than_4x_is_noted(tmp_path, caplog):
    src = write(tmp_path / "tiny.mp4", [pattern(i, 4, 4) for i in range(4)])
    with caplog.at_level(logging.WARNING, logger="data_shards.staging"):
        m = write_shard_set([src], tmp_path / "out", size=64, clip_len=2, split="100,0,0", show_progress=False)
    assert m["skipped"] == []  # noted, not refused
    assert f"{src}: 4x4 upscaled 16x to 64 px (short side); detail invented, not restored" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="data_shards.staging"):
        write_shard_set([src], tmp_path / "out16", size=16, clip_len=2, split="100,0,0", show_progress=False)
    assert "upscaled" not in caplog.text  # 4x: no note


def _deny(monkeypatch, *denied):
    """Reading the ``denied`` folders raises PermissionError (chmod does not stop root)."""
    iterdir = Path.iterdir

    def fake(self):
        if self in denied:
            raise PermissionError(13, "Permission denied", str(self))
        return iterdir(self)

    monkeypatch.setattr(Path, "iterdir", fake)


def test_unreadable_folders_are_skipped_naming_them(tmp_path, monkeypatch, caplog):
    root = tmp_path / "src"
    (root / "locked").mkdir(parents=True)
    write(root / "good.mp4", [pattern(i, 32, 24) for i in range(4)])
    seq = tmp_path / "seq"  # an unreadable frame folder named as a source
    seq.mkdir()
    for i in range(4):
        Image.fromarray(pattern(i, 32, 24)).save(seq / f"{i:05d}.png")
    _deny(monkeypatch, root / "locked", seq)
    m = write_shard_set([root, seq], tmp_path / "out", size=16, clip_len=2, split="100,0,0", show_progress=False)
    assert m["skipped"] == [
        {"source": str(root / "locked"), "reason": f"{root / 'locked'}: cannot be read (Permission denied)"},
        {"source": str(seq), "reason": f"{seq}: cannot be read (Permission denied)"},
    ]
    assert f"skipped {seq}: cannot be read (Permission denied)" in caplog.text


def test_only_unreadable_sources_is_an_error_naming_them(tmp_path, monkeypatch, capsys):
    from study.cli import main as cli

    seq = tmp_path / "seq"
    seq.mkdir()
    _deny(monkeypatch, seq)
    assert cli(["shard", str(seq), "--out", str(tmp_path / "out"), "--size", "16", "--clip-len", "2"]) == 2
    err = capsys.readouterr().err
    assert f"{seq}: cannot be read (Permission denied)" in err and "Traceback" not in err
