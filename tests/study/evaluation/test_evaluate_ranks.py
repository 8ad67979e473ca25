"""evaluate_model under torch.distributed (gloo, two CPU processes): both accumulators, the
model's and the gray baseline's (with CDC histograms and warp sums), are gathered, and every rank
returns what one process evaluating all the videos returns."""

from __future__ import annotations

import json
import math
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

RANK_SCRIPT = '''
import json, sys
import torch

from models.gamut import ABGamut
from models.model import create_model
from models.presets import ExperimentConfig
from study.evaluation.evaluate import evaluate_model


def setup():
    """The same tiny model and three 16 px videos (a moving texture) in every process."""
    torch.manual_seed(0)
    config = ExperimentConfig(name="t", size="tiny")
    model = create_model(config, ABGamut(config.grid))
    g = torch.Generator().manual_seed(0)
    videos = {}
    for i, n in enumerate((4, 5, 3)):
        big = torch.randint(0, 256, (24, 24 + 2 * n, 3), dtype=torch.uint8, generator=g)
        videos[f"v{i}"] = torch.stack([big[4:20, 2 * t:2 * t + 16] for t in range(n)])
    return config, model, videos


def batches(videos, ids, count):
    """One batch per video of `ids` (one window: all its frames, as a clip is colorized in one run),
    padded to `count` batches with a window marked invalid (another rank has more)."""
    out = [{"frames": videos[v][None], "video_id": [v], "start": torch.tensor([0]), "valid": torch.tensor([True])}
           for v in ids]
    pad = {**out[0], "valid": torch.tensor([False])}
    return out + [pad] * (count - len(out))


if __name__ == "__main__":
    rank, store, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    config, model, videos = setup()
    mine = ["v0", "v2"] if rank == 0 else ["v1"]  # 2 and 1 batches, padded to 2
    res = evaluate_model(model, batches(videos, mine, 2), config.temperature, "cpu")
    res.pop("seconds")
    with open(out, "w") as f:
        json.dump(res, f)
    torch.distributed.destroy_process_group()
'''


def _same(a, b):
    """Results equal up to float rounding (NaN equal to NaN)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, float):
        return a == pytest.approx(b, rel=1e-6, abs=1e-9)
    return a == b


@pytest.mark.slow
def test_two_ranks_gather_model_and_gray_metrics(tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    repo = Path(__file__).resolve().parents[3]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(r), str(tmp_path / "store"), str(tmp_path / f"r{r}.json")],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for r in (0, 1)
    ]
    for p in procs:
        output = p.communicate(timeout=600)[0].decode()
        assert p.returncode == 0, output
    ranks = [json.loads((tmp_path / f"r{r}.json").read_text()) for r in (0, 1)]

    helpers = runpy.run_path(str(script))  # the same model and videos, in this process, all in one pass
    config, model, videos = helpers["setup"]()
    one = helpers["evaluate_model"](model, helpers["batches"](videos, ["v0", "v1", "v2"], 3), config.temperature, "cpu")
    one.pop("seconds")
    one = json.loads(json.dumps(one))
    assert [v["video_id"] for v in one["videos"]] == ["v0", "v1", "v2"] and one["num_frames"] == 12
    assert [v["pairs"] for v in one["gray"]["videos"]] == [3, 4, 2]
    assert all(math.isfinite(one["mean"][k]) for k in ("ssim", "cdc", "warp_error", "rmse_ratio"))
    assert _same(ranks[0], one) and _same(ranks[1], one)
