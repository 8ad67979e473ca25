"""evaluate_model on real tiny colorizers and a hand-computed decode; `vidcolor evaluate` end to end."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

from models.color import frames_to_lab
from models.errors import VidcolorError
from models.gamut import ABGamut
from models.model import ColorizerOutput, Predictor, create_model
from models.presets import ExperimentConfig
from study.evaluation.evaluate import colorize_frames, evaluate_model, gray_baseline, video_table
from study.report import json_clean


def _batches(frames_by_video: dict[str, torch.Tensor], window: int, batch_size: int, pad_to: int | None = None):
    """Batches in eval_loader's layout: each video's frames in order as non-overlapping windows."""
    windows = []
    for vid, frames in frames_by_video.items():  # frames uint8 (N, H, W, 3)
        for start in range(0, frames.shape[0] - window + 1, window):
            windows.append((vid, start, frames[start : start + window]))
    out = []
    for i in range(0, len(windows), batch_size):
        chunk = windows[i : i + batch_size]
        valid = [True] * len(chunk)
        while len(chunk) < batch_size:  # pad the last batch like eval_loader does
            chunk.append(chunk[0])
            valid.append(False)
        out.append(
            {
                "frames": torch.stack([w for _, _, w in chunk]),
                "video_id": [v for v, _, _ in chunk],
                "start": torch.tensor([s for _, s, _ in chunk]),
                "valid": torch.tensor(valid),
            }
        )
    while pad_to is not None and len(out) < pad_to:  # an all-padding batch (another rank has more)
        b = dict(out[-1])
        b["valid"] = torch.zeros(batch_size, dtype=torch.bool)
        out.append(b)
    return out


def _video(seed: int, n: int = 6, size: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=g)


class OneBin(Predictor, torch.nn.Module):
    """Puts (almost) all probability on one bin at every pixel: the decode must give its center."""

    def __init__(self, gamut: ABGamut, q: int):
        super().__init__()
        self.config = ExperimentConfig(name="one_bin")
        self.q = q
        self.scale = torch.nn.Parameter(torch.tensor(1.0))
        self.register_buffer("ab_centers", torch.as_tensor(gamut.centers).float().clone())

    def forward(self, l_norm, state=None):
        b, t, _, h, w = l_norm.shape
        logits = torch.zeros(b, t, self.ab_centers.shape[0], h // 4, w // 4)
        logits[:, :, self.q] = 50.0 * self.scale
        return ColorizerOutput(logits, None, None)


class Wrapped(torch.nn.Module):
    """Holds the model in `.module`, as DistributedDataParallel does."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module


def test_decode_path_by_hand():
    """Constant frames and a one-bin prediction: ab error = |center_q - true ab| on every frame."""
    gamut = ABGamut(10)
    q = int(gamut.num_bins // 2)
    color = torch.tensor([200, 40, 90], dtype=torch.uint8)
    frames = color.expand(4, 16, 16, 3).contiguous()
    _, gt_ab = frames_to_lab(frames)
    expected = torch.linalg.vector_norm(torch.as_tensor(gamut.centers[q]).float() - gt_ab[0, :, 0, 0]).item()
    model = OneBin(gamut, q).train()
    res = evaluate_model(model, _batches({"v": frames}, 2, 2), 0.38, "cpu")
    assert model.training  # mode restored
    assert res["num_videos"] == 1 and res["num_frames"] == 4
    assert res["videos"][0]["rmse_ab"] == pytest.approx(expected, rel=1e-3)
    assert res["mean"]["temporal_error"] == pytest.approx(0.0, abs=1e-6)  # constant in, constant out
    assert res["mean"]["colorfulness_ratio"] == pytest.approx(
        res["videos"][0]["colorfulness_pred"] / res["videos"][0]["colorfulness_gt"]
    )


@pytest.mark.parametrize("temporal", ["none", "convlstm"])
def test_real_tiny_colorizer_per_video_table(temporal):
    torch.manual_seed(0)
    config = ExperimentConfig(name="t", size="tiny", temporal=temporal, seq_len=2, lam=0.5)
    gamut = ABGamut(config.grid)
    model = create_model(config, gamut)
    videos = {"a": _video(1), "b": _video(2, n=3)}
    window = 3  # clips of 3 frames, as clip_loader gives whole clips whatever the model
    batches = _batches(videos, window, batch_size=2, pad_to=6)
    res = evaluate_model(model, batches, config.temperature, "cpu")
    rows = {r["video_id"]: r for r in res["videos"]}
    assert set(rows) == {"a", "b"}
    assert rows["a"]["frames"] == 6 and rows["b"]["frames"] == 3  # padding windows not counted
    assert rows["a"]["pairs"] == 4  # consecutive pairs inside each clip, never across a restart
    for key in (
        "rmse_rgb",
        "rmse_ab",
        "psnr",
        "colorfulness_ratio",
        "temporal_error",
        "ssim",
        "cdc",
        "warp_error",
        "rmse_ratio",
    ):
        assert math.isfinite(res["mean"][key])
        assert res["mean"][key] == pytest.approx((rows["a"][key] + rows["b"][key]) / 2)
        assert res["gray"]["mean"][key] == pytest.approx(
            (res["gray"]["videos"][0][key] + res["gray"]["videos"][1][key]) / 2, nan_ok=True
        )
    assert 0 < res["mean"]["rmse_rgb"] < 255 and 0 < res["mean"]["ssim"] < 1
    assert [r["frames"] for r in res["gray"]["videos"]] == [6, 3] and res["gray"]["mean"]["rmse_ratio"] == 1.0
    assert res["gray"]["mean"]["colorfulness_pred"] < 1e-3  # gray is gray

    # the same frames with a batch size of 1 give the same numbers (order independent)
    again = evaluate_model(model, _batches(videos, window, batch_size=1), config.temperature, "cpu")
    assert again["mean"]["rmse_rgb"] == pytest.approx(res["mean"]["rmse_rgb"], rel=1e-5)

    # a gray baseline computed once (as the training loop does every epoch) gives the same results
    baseline = gray_baseline(_batches(videos, window, batch_size=2, pad_to=6))
    cached = evaluate_model(
        model, _batches(videos, window, batch_size=2, pad_to=6), config.temperature, "cpu", baseline=baseline
    )
    assert cached["gray"] == res["gray"]
    assert [r["rmse_ratio"] for r in cached["videos"]] == pytest.approx([r["rmse_ratio"] for r in res["videos"]])


def test_colorize_frames_one_bin_unwraps_and_refuses_other_modules():
    """A one-bin model gives its bin's center at every pixel, at the full (not multiple-of-8) size,
    also inside a DDP-like wrapper; the L is the frames' own."""
    gamut = ABGamut(10)
    q = 7
    frames = _video(5, n=2, size=12)[None]  # (1, 2, 12, 12, 3): padded to 16 inside predict_ab
    l_norm, ab = colorize_frames(Wrapped(OneBin(gamut, q)), frames, 0.38)
    assert l_norm.shape == (1, 2, 1, 12, 12) and ab.shape == (1, 2, 2, 12, 12) and ab.dtype == torch.float32
    assert torch.equal(l_norm, frames_to_lab(frames)[0])
    center = torch.as_tensor(gamut.centers[q]).float().view(1, 1, 2, 1, 1)
    assert torch.allclose(ab, center.expand_as(ab), atol=1e-3)
    with pytest.raises(VidcolorError, match="expected a VideoColorizer or Ensemble, got Linear"):
        colorize_frames(torch.nn.Linear(1, 1), frames, 0.38)


def test_video_table_and_json_clean():
    row = {
        "rmse_rgb": 1.5,
        "rmse_ab": 2.0,
        "psnr": 30.0,
        "ssim": 0.5,
        "colorfulness_ratio": float("nan"),
        "colorfulness_gap": float("nan"),
        "temporal_error": 0.25,
        "warp_error": 0.001234,
        "added_warp": 0.5,
        "cdc": 0.0456789,
        "added_cdc": -0.125,
        "rmse_ratio": 0.75,
    }
    gray = {
        **row,
        "rmse_rgb": 2.0,
        "warp_error": 0.002,
        "cdc": 0.04,
        "added_warp": 0.0,
        "added_cdc": 0.0,
        "rmse_ratio": 1.0,
    }
    res = {
        "videos": [{"video_id": "v0", "frames": 3, **row}],
        "mean": dict(row),
        "num_frames": 3,
        "num_videos": 1,
        "gray": {"videos": [{"video_id": "v0", "frames": 3, **gray}], "mean": gray},
    }
    lines = video_table(res).splitlines()
    assert lines[0].split() == [
        "video",
        "frames",
        "rmse_rgb",
        "psnr",
        "ssim",
        "cf_ratio",
        "cf_gap",
        "temporal",
        "warp",
        "+warp",
        "cdc",
        "+cdc",
        "rmse/gray",
    ]
    # small numbers (warp, cdc) keep 3 significant digits
    assert lines[2].split() == [
        "v0",
        "3",
        "1.500",
        "30.000",
        "0.500",
        "-",
        "-",
        "0.250",
        "0.00123",
        "0.500",
        "0.0457",
        "-0.125",
        "0.750",
    ]
    assert set(lines[1]) == {"-", " "} and lines[3] == lines[1]  # rules above the rows and the footer
    assert lines[4].split()[1:] == lines[2].split()[1:] and lines[4].startswith("mean ")
    assert lines[5].split() == [
        "gray",
        "(ab=0)",
        "3",
        "2.000",
        "30.000",
        "0.500",
        "-",
        "-",
        "0.250",
        "0.002",
        "0.000",
        "0.04",
        "0.000",
        "1.000",
    ]
    assert len(lines) == 6
    # numbers are right-aligned under their headers, the video ids left-aligned
    assert lines[2].startswith("v0 ") and lines[0].endswith("rmse/gray") and lines[2].endswith("0.750")
    text = json.dumps(json_clean(res), allow_nan=False)  # strict JSON: NaN became null
    assert json.loads(text)["mean"]["colorfulness_ratio"] is None
    del res["gray"]  # a result without the gray section (an older --json): no gray row
    assert video_table(res).splitlines()[-1].startswith("mean ")


def test_cli_evaluate_end_to_end(demo_shards, tiny_checkpoint, tmp_path, capsys):
    """`vidcolor evaluate` on the shared demo shards; RMSE cross-checked frame by frame in numpy."""
    from data_shards.reader import ShardSet
    from study.cli import main

    out = tmp_path / "eval.json"
    rc = main(
        [
            "evaluate",
            str(tiny_checkpoint),
            "--shards",
            str(demo_shards),
            "--split",
            "test",
            "--json",
            str(out),
            "--device",
            "cpu",
            "--batch-size",
            "4",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    doc = json.loads(out.read_text())  # strict JSON
    test_videos = [v["id"] for v in ShardSet(demo_shards).videos("test")]
    assert [v["video_id"] for v in doc["videos"]] == sorted(test_videos)
    assert doc["num_frames"] == ShardSet(demo_shards).num_frames("test")
    assert doc["split"] == "test" and doc["config"]["name"] == "exp2" and doc["temperature"] == 0.38
    assert all(v in printed for v in test_videos) and "mean" in printed and f"wrote {out}" in printed
    assert doc["device"] == "cpu" and doc["metrics"]["rmse_rgb"] == {"better": "min"}

    # independent check: per-frame RMSE of the rounded uint8 prediction, averaged per video, then over videos
    assert doc["mean"]["rmse_rgb"] == pytest.approx(_model_rmse(demo_shards, tiny_checkpoint, 0.38), abs=0.3)

    # the gray baseline: ab = 0 with the true L is the sRGB encoding of the frame's luminance Y
    gray_rows = {v["video_id"]: v for v in doc["gray"]["videos"]}
    expected_gray = _gray_rmse_numpy(demo_shards)
    assert set(gray_rows) == set(expected_gray) == set(test_videos) and set(doc["gray"]) == {"videos", "mean"}
    for vid, rmse in expected_gray.items():
        assert gray_rows[vid]["rmse_rgb"] == pytest.approx(rmse, abs=1e-3)
        assert gray_rows[vid]["rmse_ratio"] == 1.0
    for row in doc["videos"]:
        gray_row = gray_rows[row["video_id"]]
        assert row["rmse_ratio"] == pytest.approx(row["rmse_rgb"] / gray_row["rmse_rgb"])
        assert row["added_warp"] == pytest.approx(row["warp_error"] / gray_row["warp_error"] - 1)
        assert row["added_cdc"] == pytest.approx(row["cdc"] / gray_row["cdc"] - 1)
        assert gray_row["added_warp"] == gray_row["added_cdc"] == 0.0
    ratios = [r["rmse_ratio"] for r in doc["videos"]]
    assert doc["mean"]["rmse_ratio"] == pytest.approx(sum(ratios) / len(ratios))
    assert doc["gray"]["mean"]["rmse_rgb"] == pytest.approx(sum(expected_gray.values()) / len(expected_gray), abs=1e-3)
    assert doc["metrics"]["rmse_ratio"] == {"better": "min"} and doc["metrics"]["ssim"] == {"better": "max"}
    table = printed.splitlines()
    head = next(line for line in table if line.startswith("video "))
    assert head.split() == [
        "video",
        "frames",
        "rmse_rgb",
        "psnr",
        "ssim",
        "cf_ratio",
        "cf_gap",
        "temporal",
        "warp",
        "+warp",
        "cdc",
        "+cdc",
        "rmse/gray",
    ]
    gray_line = next(line for line in table if line.startswith("gray (ab=0) "))
    assert gray_line.split()[2] == str(doc["num_frames"]) and gray_line.split()[-1] == "1.000"
    assert max(len(line) for line in table) <= 120

    assert main(["evaluate", str(tiny_checkpoint), "--shards", str(demo_shards), "--split", "nope"]) == 2
    assert "no 'nope' split" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing"), "--shards", str(demo_shards)]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["evaluate", str(tiny_checkpoint), "--shards", str(demo_shards), "--batch-size", "0"]) == 2
    assert "--batch-size must be at least 1, got 0" in capsys.readouterr().err


def _model_rmse(shards, checkpoint, temperature: float) -> float:
    """Mean over test videos of the per-frame RGB RMSE of the checkpoint's uint8 prediction at
    ``temperature`` (predict_ab, then lab_to_frames), averaged per video first."""
    from data_shards.reader import eval_loader
    from models.checkpoint import load_checkpoint
    from models.color import lab_to_frames

    ck = load_checkpoint(checkpoint)
    per_video: dict[str, list[float]] = {}
    for batch in eval_loader(shards, split="test", window=1, batch_size=2):
        l_norm, _ = frames_to_lab(batch["frames"])
        ab, _ = ck.model.predict_ab(l_norm, temperature=temperature)
        pred = lab_to_frames(l_norm, ab).double()  # (B, 1, H, W, 3)
        err = ((pred - batch["frames"].double()) ** 2).mean(dim=(1, 2, 3, 4)).sqrt()
        for vid, e, ok in zip(batch["video_id"], err.tolist(), batch["valid"].tolist()):
            if ok:
                per_video.setdefault(vid, []).append(e)
    return sum(sum(v) / len(v) for v in per_video.values()) / len(per_video)


def _gray_rmse_numpy(shards) -> dict[str, float]:
    """Per-video mean of the per-frame RGB RMSE of the ab = 0 prediction, in numpy (float64) from
    the sRGB and CIE definitions: Lab (L, 0, 0) is the D65 gray of the frame's luminance Y."""
    from data_shards.reader import eval_loader

    def decode(c):  # sRGB -> linear
        return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)

    def encode(y):  # linear -> sRGB
        return np.where(y <= 0.0031308, 12.92 * y, 1.055 * np.maximum(y, 1e-12) ** (1 / 2.4) - 0.055)

    per_video: dict[str, list[float]] = {}
    for batch in eval_loader(shards, split="test", window=1, batch_size=2):
        rgb = batch["frames"].numpy().astype(np.float64)  # (B, 1, H, W, 3)
        y = decode(rgb / 255.0) @ np.array([0.2126729, 0.7151522, 0.0721750])  # (B, 1, H, W)
        gray = np.clip(encode(y), 0, 1)[..., None] * 255.0
        err = np.sqrt(((gray - rgb) ** 2).mean(axis=(1, 2, 3, 4)))
        for vid, e, ok in zip(batch["video_id"], err.tolist(), batch["valid"].tolist()):
            if ok:
                per_video.setdefault(vid, []).append(e)
    return {vid: sum(v) / len(v) for vid, v in per_video.items()}


def test_cli_evaluate_json_on_a_bad_path_fails_before_any_work(
    demo_shards, tiny_checkpoint, tmp_path, capsys, monkeypatch
):
    """`--json` under a regular file (tests run as root, so permissions cannot stand in): an error
    naming the path, before the evaluation runs (it would be lost), the file untouched."""
    from study.cli import main
    from study.evaluation import evaluate

    def never(*a, **k):
        raise AssertionError("the evaluation ran although --json cannot be written")

    blocker = tmp_path / "notes.txt"
    blocker.write_bytes(b"my notes")
    before = (blocker.read_bytes(), blocker.stat().st_mtime_ns)
    base = ["evaluate", str(tiny_checkpoint), "--shards", str(demo_shards), "--device", "cpu"]
    with monkeypatch.context() as m:
        m.setattr(evaluate, "evaluate_checkpoint", never)
        assert main([*base, "--json", str(blocker / "eval.json")]) == 2
        err = capsys.readouterr().err
        assert f"error: --json {blocker / 'eval.json'}: {blocker} is a file, not a folder" in err
        assert "Traceback" not in err
        assert main([*base, "--json", str(tmp_path)]) == 2
        assert f"error: --json {tmp_path}: is a folder, expected a file name" in capsys.readouterr().err
    assert (blocker.read_bytes(), blocker.stat().st_mtime_ns) == before
    # a missing parent folder is fine: write_json creates it once the work is done
    figures = tmp_path / "new" / "eval.json"
    assert main([*base, "--json", str(figures), "--batch-size", "4"]) == 0
    first = json.loads(figures.read_text())
    assert first["num_frames"] > 0
    # an existing file: refused by flag and path before any work, untouched; --overwrite replaces it
    figures.write_text('{"mine": 1}')
    before = (figures.read_bytes(), figures.stat().st_mtime_ns)
    with monkeypatch.context() as m:
        m.setattr(evaluate, "evaluate_checkpoint", never)
        assert main([*base, "--json", str(figures)]) == 2
    assert f"error: --json {figures}: exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert (figures.read_bytes(), figures.stat().st_mtime_ns) == before
    with monkeypatch.context() as m:
        m.setattr(evaluate, "evaluate_checkpoint", lambda *a, **k: first)
        assert main([*base, "--json", str(figures), "--overwrite"]) == 0
    assert json.loads(figures.read_text()) == first and sorted(os.listdir(figures.parent)) == ["eval.json"]


def test_evaluate_at_another_temperature(demo_shards, tiny_checkpoint, capsys):
    """`--temperature T` decodes with T instead of the checkpoint's (the JSON says which), the RMSE
    is the one of predict_ab at that T, and T outside [0, 10] is refused by name before any work."""
    from study.cli import main
    from study.evaluation.evaluate import evaluate_checkpoint

    doc = evaluate_checkpoint(tiny_checkpoint, demo_shards, "test", device="cpu", batch_size=4, temperature=0.0)
    assert doc["temperature"] == 0.0 and doc["config"]["temperature"] == 0.38  # the checkpoint is unchanged
    # T = 0: the mode of each pixel's distribution
    assert doc["mean"]["rmse_rgb"] == pytest.approx(_model_rmse(demo_shards, tiny_checkpoint, 0.0), abs=0.3)
    default = evaluate_checkpoint(tiny_checkpoint, demo_shards, "test", device="cpu", batch_size=4)
    assert default["temperature"] == 0.38 and default["mean"]["rmse_rgb"] != doc["mean"]["rmse_rgb"]
    assert doc["gray"]["mean"] == default["gray"]["mean"]  # the baseline does not depend on T

    for bad in ("-0.5", "11", "nan"):
        assert main(["evaluate", str(tiny_checkpoint), "--shards", str(demo_shards), "--temperature", bad]) == 2
        assert f"--temperature: must be in [0, 10], got {float(bad)!r}" in capsys.readouterr().err


def test_truth_row_scores_the_true_colors_against_gray_on_the_same_pairs():
    """``truth=True``: the ground truth's own ab scored like a model: RMSE 0, colorfulness ratio 1, and
    its added_warp the flicker correct colour adds to the gray input's (random coloured frames: their
    colour changes add to it, > 0), on the same frames and pairs as the gray row; the table gets its row."""
    from study.evaluation.evaluate import TRUTH, video_table

    torch.manual_seed(0)
    config = ExperimentConfig(name="t", size="tiny")
    model = create_model(config, ABGamut(config.grid))
    videos = {"a": _video(1), "b": _video(2, n=3)}
    res = evaluate_model(model, _batches(videos, 3, batch_size=2), config.temperature, "cpu", truth=True)
    truth = res["truth"]
    assert [v["frames"] for v in truth["videos"]] == [v["frames"] for v in res["gray"]["videos"]] == [6, 3]
    assert [v["pairs"] for v in truth["videos"]] == [v["pairs"] for v in res["gray"]["videos"]] == [4, 2]
    assert truth["mean"]["rmse_rgb"] < 0.5 and truth["mean"]["colorfulness_ratio"] == pytest.approx(1.0, abs=1e-3)
    assert truth["mean"]["added_warp"] > 0
    assert TRUTH in video_table(res)
    assert "truth" not in evaluate_model(model, _batches(videos, 3, batch_size=2), config.temperature, "cpu")


def test_cli_evaluate_warns_when_the_checkpoint_was_trained_at_another_size(demo_shards, tmp_path, capsys):
    """Evaluating at another frame size is legitimate, so a warning naming both sizes, not an error."""
    import torch

    from models.checkpoint import save_checkpoint
    from models.gamut import ABGamut
    from models.model import create_model
    from models.presets import get_preset
    from study.cli import main

    torch.manual_seed(0)
    config = get_preset("exp1").replace(size="tiny")
    gamut = ABGamut(config.grid)
    ck = save_checkpoint(tmp_path / "ck32", create_model(config, gamut), config, gamut, frame_size=32)
    assert main(["evaluate", str(ck), "--shards", str(demo_shards), "--device", "cpu", "--batch-size", "4"]) == 0
    err = capsys.readouterr().err
    assert (
        f"warning: {ck} was trained at frame size 32 px but the shard set {demo_shards} is 64 px; "
        "the metrics are for 64 px frames"
    ) in err
    assert "Traceback" not in err
