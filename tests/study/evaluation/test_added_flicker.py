"""added_warp and added_cdc by hand: the flicker a prediction adds to the gray input's own on the
same frames (its warp_error / cdc over the gray row's, minus 1)."""

from __future__ import annotations

import math

import pytest
import torch

from study.config.metric_names import METRICS
from study.evaluation.consistency import FlowCache
from study.evaluation.metrics import VideoMetrics

LN2 = math.log(2.0)
SIZE = 12  # the smallest frame DIS would take: warp_error is scored


class StillFlows(FlowCache):
    """No motion and no occlusion: warp_error becomes the mean squared frame-to-frame change."""

    def get(self, video_id, f, gray, gray_next):
        return torch.zeros(2, *gray.shape), torch.ones(gray.shape, dtype=torch.bool)


def _frames(colors: list[tuple[int, int, int]]) -> torch.Tensor:
    """One window (1, T, 3, SIZE, SIZE) of constant RGB frames on 0-255."""
    return torch.tensor(colors, dtype=torch.float64).view(1, len(colors), 3, 1, 1).expand(-1, -1, -1, SIZE, SIZE)


def _feed(acc: VideoMetrics, vid: str, colors: list[tuple[int, int, int]]) -> None:
    pred = _frames(colors)
    ab = torch.zeros(1, len(colors), 2, SIZE, SIZE)
    acc.update([vid], [0], pred, torch.zeros_like(pred), ab, ab)


def test_added_warp_and_cdc_by_hand():
    flows = StillFlows()
    model, gray = VideoMetrics(flows), VideoMetrics(flows)
    # video v: the prediction goes black, (51, 102, 0), black; the gray input black, 51, 51
    _feed(model, "v", [(0, 0, 0), (51, 102, 0), (0, 0, 0)])
    _feed(gray, "v", [(0, 0, 0), (51, 51, 51), (51, 51, 51)])
    # video w: the gray input never changes (warp error and cdc 0): nothing to add to
    _feed(model, "w", [(0, 0, 0), (51, 0, 0), (0, 0, 0)])
    _feed(gray, "w", [(9, 9, 9)] * 3)
    rows = {r["video_id"]: r for r in model.per_video(baseline=gray)}
    grays = {r["video_id"]: r for r in gray.per_video(baseline=gray)}

    # warp error with a still flow: mean over pairs of the mean squared [0, 1] RGB change
    model_warp = ((0.2**2 + 0.4**2 + 0) / 3 + (0.2**2 + 0.4**2 + 0) / 3) / 2  # 0.2 / 3
    gray_warp = (0.2**2 + 0.0) / 2  # 0.02
    assert rows["v"]["warp_error"] == pytest.approx(model_warp)
    assert grays["v"]["warp_error"] == pytest.approx(gray_warp)
    assert rows["v"]["added_warp"] == pytest.approx(model_warp / gray_warp - 1) == pytest.approx(7 / 3)
    # cdc of constant frames: JS of two single-bin histograms is ln 2 when the bins differ, else 0.
    # model, step 1: R and G change on both pairs, B never: 4 ln2 / 6; step 2 (frames 0, 2): 0
    model_cdc = (4 * LN2 / 6 + 0.0) / 2
    # gray, step 1: the 3 channels change on the first pair only: 3 ln2 / 6; step 2: all 3 change
    gray_cdc = (3 * LN2 / 6 + LN2) / 2
    assert rows["v"]["cdc"] == pytest.approx(model_cdc) and grays["v"]["cdc"] == pytest.approx(gray_cdc)
    assert rows["v"]["added_cdc"] == pytest.approx(model_cdc / gray_cdc - 1) == pytest.approx(-5 / 9)

    # a still gray input: the ratio is undefined (NaN), and left out of the means
    assert rows["w"]["warp_error"] > 0 and math.isnan(rows["w"]["added_warp"]) and math.isnan(rows["w"]["added_cdc"])
    means = model.means(baseline=gray)
    assert means["added_warp"] == pytest.approx(7 / 3) and means["added_cdc"] == pytest.approx(-5 / 9)
    # the gray row adds nothing to itself; without a baseline nothing is added either
    assert grays["v"]["added_warp"] == 0.0 and grays["v"]["added_cdc"] == 0.0
    assert all(math.isnan(r["added_warp"]) and math.isnan(r["added_cdc"]) for r in model.per_video())


def test_added_metrics_are_objectives_that_want_less():
    assert METRICS["added_warp"] == METRICS["added_cdc"] == METRICS["colorfulness_gap"] == "min"
