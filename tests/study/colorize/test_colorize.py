"""`vidcolor colorize`: real checkpoints (tiny models saved with models' API), real PyAV videos.

Tolerance used for "the output's L equals the input's": L (0-100) of the decoded output against
L of the decoded input, mean |dL| < 1.0 and 99th percentile < 4. Two things separate them: the
H.264 round trip of the output (crf 18, about 1 level of 8-bit RGB, i.e. < 0.5 L) and Lab -> sRGB
clamping where the predicted ab leaves the sRGB gamut at that L (it moves L of those pixels).
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from data_shards.video import iter_frames_tolerant, probe
from models.checkpoint import load_checkpoint, load_ensemble, save_checkpoint
from models.color import chroma, frames_to_l, frames_to_lab, lab_to_frames
from models.ensemble import Ensemble
from models.errors import VidcolorError
from models.gamut import ABGamut
from models.model import create_model, final_logits
from models.presets import get_preset
from study.cli import main as cli
from study.colorize.inference import FilmInference, working_size
from study.media.video_out import VideoWriter, write_video

H, W, FPS = 48, 64, 12


# ---- fixtures: checkpoints and videos -----------------------------------------------------------


@pytest.fixture(scope="module")
def gamut():
    return ABGamut(10)


def _tiny(preset: str, gamut: ABGamut, seed: int):
    """An untrained tiny model whose colors depend on its input.

    With PyTorch's default conv init the signal fades through the ~25 layers and an untrained
    model paints every frame alike, so: He init (zero biases), then BatchNorm statistics gathered
    on a few frames of the test pattern (forward passes in train mode, no gradient steps).
    """
    torch.manual_seed(seed)
    model = create_model(get_preset(preset).replace(size="tiny"), gamut)
    for mod in model.modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
            torch.nn.init.zeros_(mod.bias)
    l_norm, _ = frames_to_lab(torch.from_numpy(np.stack(gray_frames(8) + gray_frames(8, color=True))))
    l_norm = torch.nn.functional.interpolate(l_norm, size=(32, 40), mode="bilinear")  # (16, 1, 32, 40)
    model.train()
    with torch.no_grad():
        for _ in range(6):
            model(l_norm[torch.randperm(16)].view(4, 4, 1, 32, 40))
    return model.eval()


@pytest.fixture(scope="module")
def ckpt_exp1(tmp_path_factory, gamut):
    model = _tiny("exp1", gamut, 0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "exp1", model, model.config, gamut, frame_size=32)


@pytest.fixture(scope="module")
def ckpt_exp5(tmp_path_factory, gamut):
    model = _tiny("exp5", gamut, 1)
    # An untrained ConvLSTM forgets within a frame or two and adds little to the logits; give it
    # a long memory (forget-gate bias 4, sigmoid = 0.98) and a louder output so that what the state
    # carries shows in 8-bit colors. The test is about the plumbing, not about learned weights.
    with torch.no_grad():
        hidden = model.temporal.cell.hidden
        model.temporal.cell.gates.bias[hidden : 2 * hidden].fill_(4.0)
        model.temporal.out.weight.mul_(10.0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "exp5", model, model.config, gamut, frame_size=32)


@pytest.fixture(scope="module")
def ckpt_exp3(tmp_path_factory, gamut):
    ens = Ensemble([_tiny("exp1", gamut, 2), _tiny("exp2", gamut, 3)])
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "exp3", ens, ens.config, gamut, frame_size=32)


def gray_frames(n: int, h: int = H, w: int = W, color: bool = False) -> list[np.ndarray]:
    """A bright disc moving over a gray gradient (or over a colored one when ``color``)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for i in range(n):
        g = 40 + 150 * xx / w
        g = np.where((xx - 8 - 4 * i) ** 2 + (yy - h / 2) ** 2 < (h / 4) ** 2, 230.0, g)
        rgb = np.stack([g, g, g], -1) if not color else np.stack([g, 0.5 * g + 60 * yy / h, 255 - g], -1)
        frames.append(np.clip(rgb, 0, 255).astype(np.uint8))
    return frames


def write_tone(path: Path, seconds: float, rate: int = 44100) -> Path:
    with av.open(str(path), "w", format="mp4") as c:
        stream = c.add_stream("aac", rate=rate)
        stream.layout = "mono"
        t = np.arange(int(rate * seconds)) / rate
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for k in range(0, samples.size, 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, k : k + 1024], format="fltp", layout="mono")
            frame.sample_rate = rate
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))
    return path


def make_video(path: Path, frames: list[np.ndarray], fps=FPS, audio: bool = False) -> Path:
    tone = write_tone(path.with_suffix(".tone.m4a"), len(frames) / fps + 0.5) if audio else None
    return write_video(path, frames, fps=fps, audio_from=tone)


def decode(path: Path) -> tuple[list[np.ndarray], dict]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        info = {"fps": v.average_rate, "audio": [s.codec_context.name for s in c.streams.audio]}
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return frames, info


def lightness(frames) -> np.ndarray:
    l_norm, _ = frames_to_lab(torch.from_numpy(np.stack(frames)))
    return (l_norm * 100 + 50).numpy()  # (N, 1, H, W), L in [0, 100]


def mean_chroma(frames) -> float:
    return float(chroma(frames_to_lab(torch.from_numpy(np.stack(frames)))[1]).mean())


def assert_same_l(a, b) -> None:
    dl = np.abs(lightness(a) - lightness(b))
    assert dl.mean() < 1.0, dl.mean()
    assert np.percentile(dl, 99) < 4.0, np.percentile(dl, 99)


# ---- the main flow ------------------------------------------------------------------------------


def test_video_keeps_frames_size_fps_l_and_audio(tmp_path, ckpt_exp1, capsys):
    src_frames = gray_frames(14)
    src = make_video(tmp_path / "film.mp4", src_frames, audio=True)
    rc = cli(["colorize", str(ckpt_exp1), str(src), "--batch-size", "4"])
    assert rc == 0
    out = tmp_path / "film_color.mp4"  # the default OUT
    frames, info = decode(out)
    src_decoded, src_info = decode(src)
    assert len(frames) == len(src_decoded) == 14
    assert frames[0].shape == (H, W, 3)
    assert info["fps"] == src_info["fps"] == FPS
    assert info["audio"] == ["aac"]
    assert_same_l(frames, src_decoded)
    assert mean_chroma(src_decoded) < 1.0 < 3.0 < mean_chroma(frames)  # gray in, colors out
    assert not [p for p in os.listdir(tmp_path) if "partial" in p]
    table = capsys.readouterr().out
    assert "film_color.mp4" in table and "14" in table and "audio kept" in table


def test_odd_size_video_is_padded_and_the_table_says_so(tmp_path, ckpt_exp1, capsys):
    src = tmp_path / "odd.mp4"  # a real 65x49 H.264 film (yuv444p allows odd sides)
    with av.open(str(src), "w") as c:
        stream = c.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 65, 49, "yuv444p"
        for f in gray_frames(4, h=49, w=65):
            c.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv444p")))
        c.mux(stream.encode(None))
    assert cli(["colorize", str(ckpt_exp1), str(src)]) == 0
    frames, _ = decode(tmp_path / "odd_color.mp4")
    assert frames[0].shape == (50, 66, 3)  # the size written ...
    table = capsys.readouterr().out
    assert " 66x50 " in table and "65x49 " not in table.split("padded from")[0]  # ... is the size shown
    assert "padded from 65x49 to 66x50 (H.264 yuv420p needs even sides; last column/row repeated)" in table


def test_fractional_fps_and_explicit_out(tmp_path, ckpt_exp1):
    src = make_video(tmp_path / "ntsc.mp4", gray_frames(5), fps=Fraction(30000, 1001))
    out = tmp_path / "sub" / "x.mp4"
    out.parent.mkdir()
    assert cli(["colorize", str(ckpt_exp1), str(src), str(out), "--size", "48", "--temperature", "0.2"]) == 0
    frames, info = decode(out)
    assert len(frames) == 5 and info["fps"] == Fraction(30000, 1001) and info["audio"] == []


def test_temperature_outside_its_range_is_refused_by_name(tmp_path, ckpt_exp1, capsys):
    """colorize takes the T range evaluate and a config take, [0, 10], and writes nothing otherwise."""
    src = make_video(tmp_path / "in.mp4", gray_frames(3))
    for bad in ("-0.5", "11", "nan"):
        assert cli(["colorize", str(ckpt_exp1), str(src), str(tmp_path / "out.mp4"), "--temperature", bad]) == 2
        assert f"--temperature: must be in [0, 10], got {float(bad)!r}" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["in.mp4"]


def test_color_input_is_turned_gray_with_a_note(tmp_path, ckpt_exp1, capsys):
    src_frames = gray_frames(6, color=True)
    src = make_video(tmp_path / "color.mp4", src_frames)
    assert cli(["colorize", str(ckpt_exp1), str(src), str(tmp_path / "out.mp4")]) == 0
    printed = capsys.readouterr().out
    assert "note:" in printed and "in color" in printed and "color.mp4" in printed
    out_frames, _ = decode(tmp_path / "out.mp4")
    assert_same_l(out_frames, decode(src)[0])
    # the input's own colors are not reused: output chroma differs from the original's
    assert np.abs(out_frames[3].astype(int) - decode(src)[0][3]).mean() > 5


def test_frame_folders_in_and_out(tmp_path, ckpt_exp1):
    folder = tmp_path / "seq"
    folder.mkdir()
    src_frames = gray_frames(5, h=47, w=63)  # odd size: a PNG folder keeps it exactly
    for i, f in enumerate(src_frames):
        Image.fromarray(f).save(folder / f"{i:05d}.png")
    out_dir = tmp_path / "seq_out"
    assert cli(["colorize", str(ckpt_exp1), str(folder), str(out_dir)]) == 0
    out_frames = [np.asarray(Image.open(p)) for p in sorted(out_dir.iterdir())]
    assert len(out_frames) == 5 and out_frames[0].shape == (47, 63, 3)
    dl = np.abs(lightness(out_frames) - lightness(src_frames))  # lossless: only gamut clamping
    assert dl.mean() < 0.5
    # and into a video: yuv420p needs even sizes, so 63x47 is padded to 64x48; folders play at 24 fps
    assert cli(["colorize", str(ckpt_exp1), str(folder)]) == 0
    frames, info = decode(tmp_path / "seq_color.mp4")
    assert len(frames) == 5 and frames[0].shape == (48, 64, 3) and info["fps"] == 24
    assert_same_l([f[:47, :63] for f in frames], src_frames)


def test_directory_of_inputs_gives_one_output_each_and_survives_a_bad_one(tmp_path, ckpt_exp1, capsys):
    inputs = tmp_path / "films"
    inputs.mkdir()
    make_video(inputs / "a.mp4", gray_frames(4))
    make_video(inputs / "b.mp4", gray_frames(3))
    (inputs / "broken.mp4").write_text("this is not a video")
    out = tmp_path / "colored"
    assert cli(["colorize", str(ckpt_exp1), str(inputs), str(out)]) == 1
    assert sorted(os.listdir(out)) == ["a.mp4", "b.mp4"]
    assert len(decode(out / "a.mp4")[0]) == 4 and len(decode(out / "b.mp4")[0]) == 3
    printed = capsys.readouterr().out
    assert "FAILED" in printed and "broken.mp4" in printed and "1 of 3 inputs failed" in printed


def test_ensemble_checkpoint(tmp_path, ckpt_exp3):
    src = make_video(tmp_path / "e.mp4", gray_frames(4))
    assert cli(["colorize", str(ckpt_exp3), str(src), str(tmp_path / "e_out.mp4")]) == 0
    frames, _ = decode(tmp_path / "e_out.mp4")
    assert len(frames) == 4
    assert_same_l(frames, decode(src)[0])


# ---- the temporal state ---------------------------------------------------------------------------


def test_temporal_state_runs_across_the_whole_video(ckpt_exp5, ckpt_exp1):
    frames = np.stack(gray_frames(7))
    other_start = np.stack(gray_frames(7, color=False)[::-1][:3])  # different first frames
    changed = frames.copy()
    changed[:3] = other_start

    temporal = FilmInference.from_checkpoint(ckpt_exp5, device="cpu")
    batched = temporal.colorize(frames)
    temporal.reset()
    one_by_one = np.concatenate([temporal.colorize(frames[i : i + 1]) for i in range(7)])
    temporal.reset()
    in_threes = np.concatenate([temporal.colorize(frames[i : i + 3]) for i in range(0, 7, 3)])
    # the state passed between calls makes batch boundaries invisible
    assert np.abs(batched.astype(int) - one_by_one).max() <= 1
    assert np.abs(batched.astype(int) - in_threes).max() <= 1
    temporal.reset()
    again = temporal.colorize(frames)
    assert np.array_equal(again, batched)  # reset() really forgets

    temporal.reset()
    alt = temporal.colorize(changed)
    # frames 3..6 are identical inputs; their colors still differ because earlier frames differ
    effect = [np.abs(alt[k].astype(int) - batched[k]).mean() for k in range(3, 7)]
    assert min(effect) > 0.5, effect
    # the image model has no memory: the same frames get the same colors
    image = FilmInference.from_checkpoint(ckpt_exp1, device="cpu")
    assert np.array_equal(image.colorize(changed)[3:], image.colorize(frames)[3:])


def test_working_size_keeps_aspect_and_stride():
    assert working_size(1280, 720, 256) == (456, 256)
    assert working_size(720, 1280, 256) == (256, 456)
    assert working_size(640, 360, 256) == (456, 256)
    assert working_size(64, 48, 32) == (40, 32)
    assert working_size(256, 256, 256) == (256, 256)


# ---- one decode path, the checkpoint's working size ---------------------------------------------


def _net_input_sizes(model: torch.nn.Module) -> list[tuple[int, ...]]:
    """Records the shape of every input the model's forward gets (a forward pre-hook)."""
    seen: list[tuple[int, ...]] = []
    model.register_forward_pre_hook(lambda mod, args: seen.append(tuple(args[0].shape)))
    return seen


@pytest.mark.parametrize("name", ["exp1", "exp5", "exp3"])
def test_colorize_equals_decoding_by_hand(name, gamut, ckpt_exp1, ckpt_exp5, ckpt_exp3):
    """predict_ab gives exactly what logits -> annealed mean -> bilinear upsampling by hand give."""
    ckpt = {"exp1": ckpt_exp1, "exp5": ckpt_exp5, "exp3": ckpt_exp3}[name]
    inference = FilmInference.from_checkpoint(ckpt, device="cpu", temperature=0.3)
    frames = np.stack(gray_frames(5, h=41, w=57))
    got = np.concatenate([inference.colorize(frames[:3]), inference.colorize(frames[3:])])

    model = load_checkpoint(ckpt).model
    l_full = frames_to_l(torch.from_numpy(frames))  # (5, 1, 41, 57)
    w, h = working_size(57, 41, 32)
    l_work = torch.nn.functional.interpolate(l_full, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    expected, state = [], None
    with torch.no_grad():
        for part in (slice(0, 3), slice(3, 5)):  # the same two calls, the state carried between them
            out = model(l_work[part].unsqueeze(0), state)
            state = out.state
            ab = gamut.decode(final_logits(out)[0].float(), temperature=0.3)
            ab = torch.nn.functional.interpolate(ab, size=(41, 57), mode="bilinear", align_corners=False)
            expected.append(lab_to_frames(l_full[part], ab).numpy())
    # the CPU's full-resolution work is OpenCV's (study.colorize.inference): within one uint8 level
    diff = np.abs(got.astype(int) - np.concatenate(expected))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.002


def test_working_size_comes_from_the_checkpoint_without_any_shard_set(tmp_path, gamut):
    model = _tiny("exp1", gamut, 4)
    ckpt = save_checkpoint(tmp_path / "ckpt64", model, model.config, gamut, frame_size=64)
    inference = FilmInference.from_checkpoint(ckpt, device="cpu")
    seen = _net_input_sizes(inference.model)
    inference.colorize(np.stack(gray_frames(3)))  # 64x48 frames: short side 48 -> 64, long 85.3 -> 88
    assert inference.size == 64 and seen == [(1, 3, 1, 64, 88)]
    # --size overrides it
    small = FilmInference.from_checkpoint(ckpt, device="cpu", size=24)
    seen = _net_input_sizes(small.model)
    small.colorize(np.stack(gray_frames(2)))
    assert seen == [(1, 2, 1, 24, 32)]


def test_ensemble_of_loaded_members_keeps_their_frame_size(tmp_path, gamut, ckpt_exp1):
    model = _tiny("exp2", gamut, 5)
    other = save_checkpoint(tmp_path / "exp2", model, model.config, gamut, frame_size=32)
    ens = load_ensemble([ckpt_exp1, other])
    assert ens.frame_size == 32
    ckpt = save_checkpoint(tmp_path / "ens", ens.model, ens.config, ens.gamut, frame_size=ens.frame_size)
    inference = FilmInference.from_checkpoint(ckpt, device="cpu")
    seen = _net_input_sizes(inference.model)
    colored = inference.colorize(np.stack(gray_frames(2)))
    assert inference.size == 32 and seen == [(1, 2, 1, 32, 40)] and colored.shape == (2, H, W, 3)
    video = make_video(tmp_path / "in.mp4", gray_frames(3))
    assert cli(["colorize", str(ckpt), str(video), str(tmp_path / "out.mp4"), "--device", "cpu"]) == 0
    assert len(decode(tmp_path / "out.mp4")[0]) == 3


def test_checkpoint_without_frame_size_needs_size(tmp_path, gamut, capsys):
    model = _tiny("exp1", gamut, 6)
    old = save_checkpoint(tmp_path / "old_ckpt", model, model.config, gamut)  # as before frame_size existed
    with pytest.raises(VidcolorError, match=r"old_ckpt: the checkpoint does not record the frame size.*--size"):
        FilmInference.from_checkpoint(old, device="cpu")
    video = make_video(tmp_path / "in.mp4", gray_frames(3))
    assert cli(["colorize", str(old), str(video), str(tmp_path / "a.mp4")]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "old_ckpt" in err and "--size" in err and "Traceback" not in err
    assert not (tmp_path / "a.mp4").exists()
    assert cli(["colorize", str(old), str(video), str(tmp_path / "b.mp4"), "--size", "32"]) == 0
    assert len(decode(tmp_path / "b.mp4")[0]) == 3


@pytest.mark.parametrize("size", ["100000", "0", "4"])
def test_size_out_of_bounds_is_a_clear_error(tmp_path, ckpt_exp1, capsys, size):
    video = make_video(tmp_path / "in.mp4", gray_frames(2))
    assert cli(["colorize", str(ckpt_exp1), str(video), str(tmp_path / "o.mp4"), "--size", size]) == 2
    err = capsys.readouterr().err
    assert f"error: --size: must be an integer in [8, 4096], got {size}" in err
    assert not (tmp_path / "o.mp4").exists()


# ---- bad input ------------------------------------------------------------------------------------


def test_frame_that_fails_to_decode_gets_its_neighbours_colors(tmp_path, ckpt_exp1, caplog, mjpeg_with_bad_frame):
    src_frames = gray_frames(8)
    src = mjpeg_with_bad_frame(tmp_path / "damaged.mkv", src_frames, bad=4, fps=FPS, pix_fmt="yuvj420p")
    assert [f is None for f in iter_frames_tolerant(probe(src))] == [i == 4 for i in range(8)]
    with caplog.at_level(logging.WARNING):
        assert cli(["colorize", str(ckpt_exp1), str(src), str(tmp_path / "fixed.mp4")]) == 0
    assert any("damaged.mkv" in r.message and "frame 4" in r.message for r in caplog.records)
    frames, _ = decode(tmp_path / "fixed.mp4")
    assert len(frames) == 8  # the frame count is kept
    diff = [np.abs(frames[i].astype(int) - frames[i - 1]).mean() for i in range(1, 8)]
    assert diff[3] < 1.0  # frame 4 repeats frame 3 (up to H.264 noise) ...
    assert min(diff[:3] + diff[4:]) > 2 * diff[3]  # ... while the real frames move


def _truncated(path: Path) -> Path:
    full = make_video(path.with_name("full.mp4"), gray_frames(12))
    data = full.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])  # the index (moov) is up front: it opens, then breaks
    return path


@pytest.mark.parametrize("case", ["missing", "empty", "not_video", "truncated", "unwritable_out"])
def test_bad_input_is_a_clear_error_and_leaves_no_output(tmp_path, ckpt_exp1, capsys, case):
    src = tmp_path / "in.mp4"
    out = tmp_path / "out.mp4"
    named = src
    if case == "empty":
        src.write_bytes(b"")
    elif case == "not_video":
        src = tmp_path / "notes.txt"
        src.write_text("hello, I am text")
        named = src
    elif case == "truncated":
        _truncated(src)
        out.write_bytes(b"an earlier result")  # must survive the failed run
    elif case == "unwritable_out":
        make_video(src, gray_frames(3))
        blocker = tmp_path / "blocker"
        blocker.write_text("a file where a folder should be")
        out = blocker / "out.mp4"
        named = f"OUT {out}: {blocker} is a file, not a folder"
    extra = ["--overwrite"] if case == "truncated" else []  # the earlier result may be replaced, once complete
    rc = cli(["colorize", str(ckpt_exp1), str(src), str(out), *extra])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"error: {named}" in err, err
    assert "Traceback" not in err
    if case == "truncated":
        assert "truncated" in err
        assert out.read_bytes() == b"an earlier result"
    else:
        assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if "partial" in p]


def test_read_only_output_folder(tmp_path, ckpt_exp1, capsys):
    src = make_video(tmp_path / "in.mp4", gray_frames(3))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: permissions do not stop writes")
        assert cli(["colorize", str(ckpt_exp1), str(src), str(locked / "out.mp4")]) == 2
        assert "permission denied" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_missing_output_folders_are_created(tmp_path, ckpt_exp1):
    """As for every command's output (data_shards.outdir): missing parent folders are made on writing."""
    src = make_video(tmp_path / "in.mp4", gray_frames(3))
    out = tmp_path / "new" / "deeper" / "out.mp4"
    assert cli(["colorize", str(ckpt_exp1), str(src), str(out)]) == 0
    assert sorted(os.listdir(out.parent)) == ["out.mp4"]


def test_bad_checkpoint_and_flags(tmp_path, ckpt_exp1, capsys):
    src = make_video(tmp_path / "in.mp4", gray_frames(3))
    assert cli(["colorize", str(tmp_path / "no_ckpt"), str(src)]) == 2
    assert "no_ckpt" in capsys.readouterr().err
    assert cli(["colorize", str(ckpt_exp1), str(src), "--batch-size", "0"]) == 2
    assert "--batch-size" in capsys.readouterr().err
    assert cli(["colorize", str(ckpt_exp1), str(src), "--size", "4"]) == 2
    assert "--size" in capsys.readouterr().err
    assert cli(["colorize", str(ckpt_exp1), str(src), str(tmp_path / "out.avi")]) == 2
    assert "out.avi" in capsys.readouterr().err
    assert not (tmp_path / "in_color.mp4").exists()


def test_video_rmse_hand_computed(tmp_path, video_rmse):
    a = write_video(tmp_path / "a.mp4", [np.full((32, 32, 3), 100, np.uint8)] * 3, fps=FPS)
    b = write_video(tmp_path / "b.mp4", [np.full((32, 32, 3), 110, np.uint8)] * 3, fps=FPS)
    assert video_rmse(a, a) == 0.0
    # flat frames: |100 - 110| on every sample, give or take the one level of limited-range YUV
    assert abs(video_rmse(a, b) - 10.0) <= 1.0


# ---- robustness: inputs and outputs a new user tries ----------------------------------------------


def test_out_existing_folder_gets_the_result_inside_and_keeps_its_files(tmp_path, ckpt_exp1):
    video = make_video(tmp_path / "film.mp4", gray_frames(4))
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    assert cli(["colorize", str(ckpt_exp1), str(video), str(folder), "--device", "cpu"]) == 0
    assert (folder / "keep.txt").read_text() == "mine"  # the folder was not replaced by PNG frames
    assert len(decode(folder / "film_color.mp4")[0]) == 4


def test_directory_run_never_overwrites_its_inputs(tmp_path, ckpt_exp1, capsys):
    films = tmp_path / "films"
    films.mkdir()
    a = make_video(films / "clip.mp4", gray_frames(3))
    make_video(films / "other.mp4", gray_frames(2))
    before = a.read_bytes()
    assert cli(["colorize", str(ckpt_exp1), str(films), str(films), "--device", "cpu"]) == 2
    assert "OUT is the input folder itself" in capsys.readouterr().err
    assert a.read_bytes() == before


def test_inputs_sharing_a_stem_get_distinct_outputs(tmp_path, ckpt_exp1):
    films = tmp_path / "films"
    films.mkdir()
    make_video(films / "clip.mp4", gray_frames(3))
    folder = films / "clip"
    folder.mkdir()
    for i, f in enumerate(gray_frames(5)):
        Image.fromarray(f).save(folder / f"{i:05d}.png")
    out = tmp_path / "out"
    assert cli(["colorize", str(ckpt_exp1), str(films), str(out), "--device", "cpu"]) == 0
    counts = sorted(len(decode(p)[0]) for p in out.glob("*.mp4"))
    assert counts == [3, 5]


def test_rotated_phone_video_comes_out_upright(tmp_path, ckpt_exp1):
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.set_display_rotation(90)
        for f in gray_frames(3):
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode(None))
    src = probe(path)
    assert (src.width, src.height) == (H, W)
    out = tmp_path / "phone_color.mp4"
    assert cli(["colorize", str(ckpt_exp1), str(path), str(out), "--device", "cpu"]) == 0
    frames, _ = decode(out)
    assert frames[0].shape == (W, H, 3)
    stored, _ = decode(path)  # PyAV alone: the stored landscape pixels, display matrix not applied
    assert_same_l(frames, [np.ascontiguousarray(np.rot90(f)) for f in stored])


def test_still_image_named_mp4_and_size_zero_are_refused(tmp_path, ckpt_exp1, capsys):
    photo = tmp_path / "photo.mp4"
    Image.fromarray(gray_frames(1)[0]).save(photo, format="PNG")
    assert cli(["colorize", str(ckpt_exp1), str(photo), str(tmp_path / "o.mp4")]) == 2
    assert "photo.mp4: is a still image (png), not a video" in capsys.readouterr().err
    video = make_video(tmp_path / "film.mp4", gray_frames(2))
    assert cli(["colorize", str(ckpt_exp1), str(video), str(tmp_path / "o.mp4"), "--size", "0"]) == 2
    assert "--size" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("name", ["exp1", "exp5"])
def test_batch_size_does_not_change_the_output(name, ckpt_exp1, ckpt_exp5):
    ckpt = {"exp1": ckpt_exp1, "exp5": ckpt_exp5}[name]
    colorizer = FilmInference.from_checkpoint(ckpt, device="cpu", size=36)  # not a multiple of 8
    frames = np.stack(gray_frames(6, h=41, w=57))  # odd size
    colorizer.reset()
    batched = colorizer.colorize(frames)
    colorizer.reset()
    one_by_one = np.concatenate([colorizer.colorize(frames[i : i + 1]) for i in range(len(frames))])
    # float sums in another order (batched convolutions) may move a value across a rounding edge
    assert np.abs(batched.astype(int) - one_by_one).max() <= 1


def test_encoder_settings_reach_the_output(tmp_path, ckpt_exp1, capsys):
    src = make_video(tmp_path / "film.mp4", gray_frames(8))
    sizes = {}
    for name, flags in {"default": [], "coarse": ["--crf", "40", "--encoder-preset", "ultrafast"]}.items():
        out = tmp_path / f"{name}.mp4"
        assert cli(["colorize", str(ckpt_exp1), str(src), str(out), *flags]) == 0
        sizes[name] = out.stat().st_size
        assert len(decode(out)[0]) == 8
    assert sizes["coarse"] < 0.9 * sizes["default"]  # crf 40 keeps less detail
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli(["colorize", str(ckpt_exp1), str(src), str(tmp_path / "x.mp4"), "--encoder-preset", "quick"])
    assert "invalid choice: 'quick'" in capsys.readouterr().err and not (tmp_path / "x.mp4").exists()
    with pytest.raises(VidcolorError, match=r"x\.mp4: unknown x264 preset 'quick'; one of ultrafast, superfast"):
        VideoWriter(tmp_path / "x.mp4", 24, 64, 48, preset="quick")


def test_tiny_film_upscaled_more_than_4x_is_noted(tmp_path, ckpt_exp1, capsys):
    src = make_video(tmp_path / "tiny.mp4", gray_frames(3, h=4, w=4))
    assert cli(["colorize", str(ckpt_exp1), str(src), "--size", "32"]) == 0
    out = capsys.readouterr()
    assert "4x4 upscaled 8x to 32 px (short side)" in out.out  # the table's note
    assert decode(tmp_path / "tiny_color.mp4")[0][0].shape == (4, 4, 3)  # the output keeps the film's size


def test_unreadable_frame_folder_is_an_error_naming_it(tmp_path, ckpt_exp1, capsys, monkeypatch):
    folder = tmp_path / "seq"
    folder.mkdir()
    Image.fromarray(gray_frames(1)[0]).save(folder / "00000.png")
    iterdir = Path.iterdir

    def deny(self):  # chmod does not stop root: the listing itself fails
        if self == folder:
            raise PermissionError(13, "Permission denied", str(self))
        return iterdir(self)

    monkeypatch.setattr(Path, "iterdir", deny)
    assert cli(["colorize", str(ckpt_exp1), str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"error: {folder}: cannot be read (Permission denied)" in err and "Traceback" not in err


def test_pipeline_threads_give_the_frames_of_colorize_calls_in_order(tmp_path, ckpt_exp5):
    """decode+prepare, the net and finish+write run in three threads, a few frames per step: the
    frames written are exactly those of `colorize` called on the same steps in order (a temporal
    model: its state must pass through the steps in order, each thread with its own buffers)."""
    from study.colorize.pipeline import colorize_source

    folder = tmp_path / "seq"
    folder.mkdir()
    src_frames = np.stack(gray_frames(11, h=41, w=57))
    for i, f in enumerate(src_frames):
        Image.fromarray(f).save(folder / f"{i:05d}.png")
    inference = FilmInference.from_checkpoint(ckpt_exp5, device="cpu")
    for batch in (1, 3, 16):
        step = inference.frames_per_step(57, 41, batch)
        assert 1 <= step <= batch
        inference.reset()
        expected = np.concatenate([inference.colorize(src_frames[i : i + step]) for i in range(0, 11, step)])
        out = tmp_path / f"out{batch}"
        result = colorize_source(inference, probe(folder), out, batch_size=batch, progress=False)
        got = np.stack([np.asarray(Image.open(p)) for p in sorted(out.iterdir())])
        assert result.frames == 11 and np.array_equal(got, expected), batch


def test_cpu_steps_are_what_the_net_takes_per_call():
    inference = FilmInference(torch.nn.Identity(), temperature=0.38, size=256)
    assert inference.frames_per_step(1280, 720, 16) == 4  # 456x256 net input: 4 x 116,736 px per call
    assert inference.frames_per_step(1280, 720, 2) == 2
    small = FilmInference(torch.nn.Identity(), temperature=0.38, size=32)
    assert small.frames_per_step(64, 48, 16) == 16  # a small working size: the whole batch per call


def test_colorize_command_lets_openmp_threads_sleep_before_torch_loads(tmp_path):
    """`vidcolor colorize` sets OMP_WAIT_POLICY=PASSIVE before torch is imported (OpenMP reads it
    once, at load); a value the user set is kept; other commands leave it alone."""
    import subprocess
    import sys

    code = (
        "import os, sys; from study.cli import main; main(sys.argv[1:]); "
        "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    )
    missing = str(tmp_path / "missing")

    def run(*argv, env=None):
        environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | (env or {})
        done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=environ)
        return done.stdout.split()[-2:]

    assert run("colorize", missing, missing) == ["PASSIVE", "True"]
    assert run("colorize", missing, missing, env={"OMP_WAIT_POLICY": "ACTIVE"}) == ["ACTIVE", "True"]
    assert run("evaluate", missing, "--shards", missing)[0] == "None"
