"""study.media.video_out: H.264 mp4 writing, checked by decoding the result with PyAV."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from models.errors import VidcolorError
from study.media.video_out import VideoWriter, even_size, write_video


def write_tone(path: Path, seconds: float, codec: str = "aac", rate: int = 44100) -> Path:
    """An audio-only file with a 440 Hz tone (AAC in .m4a, or PCM in .wav)."""
    fmt = {"aac": "mp4", "pcm_s16le": "wav"}[codec]
    sample_fmt = {"aac": "fltp", "pcm_s16le": "s16"}[codec]
    with av.open(str(path), "w", format=fmt) as c:
        stream = c.add_stream(codec, rate=rate)
        stream.layout = "mono"
        t = np.arange(int(rate * seconds)) / rate
        tone = 0.3 * np.sin(2 * np.pi * 440 * t)
        samples = tone.astype(np.float32) if sample_fmt == "fltp" else (tone * 32767).astype(np.int16)
        for k in range(0, samples.size, 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, k : k + 1024], format=sample_fmt, layout="mono")
            frame.sample_rate = rate
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))
    return path


def gradient_frames(n: int, h: int, w: int) -> list[np.ndarray]:
    """Smooth moving color gradients (codec-friendly, so errors stay small)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return [
        np.stack([xx / w * 150 + 4 * i, yy / h * 200 + 20, np.full_like(xx, 100 + 5 * i)], -1).astype(np.uint8)
        for i in range(n)
    ]


def decode(path: Path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        info = {
            "fps": v.average_rate,
            "codec": v.codec_context.name,
            "pix_fmt": v.codec_context.pix_fmt,
            "audio": [(s.codec_context.name, float(s.duration * s.time_base)) for s in c.streams.audio],
        }
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return frames, info


def test_round_trip_even_size(tmp_path):
    frames = gradient_frames(10, 48, 64)
    out = write_video(tmp_path / "clip.mp4", frames, fps=12)
    decoded, info = decode(out)
    assert len(decoded) == 10
    assert decoded[0].shape == (48, 64, 3)
    assert info["fps"] == 12
    assert (info["codec"], info["pix_fmt"]) == ("h264", "yuv420p")
    # RGB -> yuv420p -> RGB alone costs ~1.6 levels on these gradients (4:2:0 chroma); crf 18 adds
    # little. Mean error under 3 levels, no pixel far off.
    for src, got in zip(frames, decoded):
        err = np.abs(src.astype(int) - got.astype(int))
        assert err.mean() < 3.0 and np.percentile(err, 99) < 12
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]  # no temporary file left


def test_flat_colors_survive_color_conversion(tmp_path):
    values = [(0, 0, 0), (255, 255, 255), (200, 30, 30), (30, 200, 30), (30, 30, 200), (128, 128, 128)]
    frames = [np.full((32, 32, 3), v, np.uint8) for v in values]
    decoded, _ = decode(write_video(tmp_path / "flat.mp4", frames, fps=25))
    for v, got in zip(values, decoded):
        np.testing.assert_allclose(got[16, 16], v, atol=3)


def test_odd_size_is_padded_by_repeating_the_edge(tmp_path):
    frames = gradient_frames(6, 47, 65)
    writer = VideoWriter(tmp_path / "odd.mp4", Fraction(30000, 1001), 65, 47)
    assert (writer.out_width, writer.out_height) == even_size(65, 47) == (66, 48)
    with writer:
        for f in frames:
            writer.write(f)
    decoded, info = decode(tmp_path / "odd.mp4")
    assert len(decoded) == 6 and decoded[0].shape == (48, 66, 3)
    assert info["fps"] == Fraction(30000, 1001)
    got = decoded[3].astype(int)
    assert np.abs(got[:47, :65] - frames[3]).mean() < 3.0
    # the added column and row repeat their neighbours
    assert np.abs(got[:47, 65] - frames[3][:, 64]).mean() < 4.0
    assert np.abs(got[47, :65] - frames[3][46]).mean() < 4.0


def test_aac_audio_is_copied(tmp_path):
    src = write_tone(tmp_path / "tone.m4a", seconds=3.0)
    with av.open(str(src)) as c:
        src_packets = [bytes(p) for p in c.demux(audio=0) if p.size]
    out = write_video(tmp_path / "with_audio.mp4", gradient_frames(24, 32, 32), fps=12, audio_from=src)
    _, info = decode(out)
    assert len(info["audio"]) == 1
    codec, seconds = info["audio"][0]
    assert codec == "aac"
    assert 1.9 <= seconds <= 2.2  # trimmed to the 2 s of video, not the 3 s of the source
    with av.open(str(out)) as c:
        out_packets = [bytes(p) for p in c.demux(audio=0) if p.size]
    assert out_packets == src_packets[: len(out_packets)]  # remuxed bit for bit, not re-encoded
    with av.open(str(out)) as c:  # and it decodes to a real tone, not silence
        pcm = np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
    assert 0.15 < np.abs(pcm).max() < 0.45


def test_pcm_audio_is_reencoded_to_aac(tmp_path):
    src = write_tone(tmp_path / "tone.wav", seconds=1.0, codec="pcm_s16le")
    out = write_video(tmp_path / "pcm.mp4", gradient_frames(12, 32, 32), fps=12, audio_from=src)
    _, info = decode(out)
    assert info["audio"][0][0] == "aac"
    assert 0.8 <= info["audio"][0][1] <= 1.2


def test_source_without_audio_gives_video_only(tmp_path):
    silent = write_video(tmp_path / "silent.mp4", gradient_frames(4, 32, 32), fps=12)
    with VideoWriter(tmp_path / "out.mp4", 12, 32, 32, audio_from=silent) as w:
        for f in gradient_frames(4, 32, 32):
            w.write(f)
    assert not w.has_audio
    assert decode(tmp_path / "out.mp4")[1]["audio"] == []


def test_error_leaves_no_partial_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "film.mp4"
    target.write_bytes(b"previous result")
    with pytest.raises(RuntimeError, match="decoder died"):
        with VideoWriter(target, 12, 32, 32) as w:
            for f in gradient_frames(5, 32, 32):
                w.write(f)
            raise RuntimeError("decoder died")
    assert target.read_bytes() == b"previous result"
    assert sorted(os.listdir(tmp_path)) == ["film.mp4"]


def test_no_frames_is_an_error_and_leaves_nothing(tmp_path):
    with pytest.raises(VidcolorError, match="no frames"):
        with VideoWriter(tmp_path / "empty.mp4", 12, 32, 32):
            pass
    assert os.listdir(tmp_path) == []


def test_wrong_frame_shape_is_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"\(32, 32, 3\)"):
        with VideoWriter(tmp_path / "x.mp4", 12, 32, 32) as w:
            w.write(np.zeros((16, 32, 3), np.uint8))
    assert os.listdir(tmp_path) == []


def test_bad_destinations_and_sources_name_the_file(tmp_path):
    with pytest.raises(VidcolorError, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "x.mp4", 12, 32, 32).open()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root may write anywhere
            with pytest.raises(VidcolorError, match="cannot write"):
                VideoWriter(locked / "x.mp4", 12, 32, 32).open()
    finally:
        locked.chmod(0o700)
    junk = tmp_path / "notes.txt"
    junk.write_text("not a video")
    with pytest.raises(VidcolorError, match="notes.txt"):
        VideoWriter(tmp_path / "y.mp4", 12, 32, 32, audio_from=junk).open()
    assert not (tmp_path / "y.mp4").exists()
    with pytest.raises(VidcolorError, match="fps"):
        VideoWriter(tmp_path / "z.mp4", 0, 32, 32)


def _dead_pid() -> int:
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_overwrite_false_refuses_an_existing_file_even_one_that_appears_meanwhile(tmp_path):
    target = tmp_path / "film.mp4"
    target.write_bytes(b"previous result")
    with pytest.raises(VidcolorError, match=f"{target}: exists \\(pass --overwrite"):
        VideoWriter(target, 12, 32, 32, overwrite=False).open()
    assert target.read_bytes() == b"previous result"
    racing = tmp_path / "race.mp4"
    with pytest.raises(VidcolorError, match=f"{racing}: exists"):
        with VideoWriter(racing, 12, 32, 32, overwrite=False) as w:
            for f in gradient_frames(3, 32, 32):
                w.write(f)
            racing.write_bytes(b"another run's result")  # lands while this one still encodes
    assert racing.read_bytes() == b"another run's result"
    assert sorted(os.listdir(tmp_path)) == ["film.mp4", "race.mp4"]  # and no partial left


def test_partials_of_dead_processes_are_removed_on_open(tmp_path):
    from study.media.partials import partial_tag, stale_partials

    tag = partial_tag()
    pid, host = tag.split("@", 1)
    assert pid == str(os.getpid()) and host
    dead = _dead_pid()
    stale = tmp_path / f".clip.{dead}@{host}.partial.mp4"
    other_stem = tmp_path / f".clip.x.{dead}@{host}.partial.mp4"  # belongs to clip.x.mp4, not clip.mp4
    live = tmp_path / f".clip.{os.getppid()}@{host}.partial.mp4"
    for p in (stale, other_stem, live):
        p.write_bytes(b"x")
    assert stale_partials(tmp_path, ".clip.", ".partial.mp4") == [stale]
    with VideoWriter(tmp_path / "clip.mp4", 12, 32, 32) as w:
        assert w._tmp.name == f".clip.{tag}.partial.mp4"
        w.write(gradient_frames(1, 32, 32)[0])
    assert sorted(os.listdir(tmp_path)) == sorted(["clip.mp4", other_stem.name, live.name])
