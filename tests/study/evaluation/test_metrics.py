"""Metrics on hand-computed cases, and the per-video accumulator's bookkeeping."""

from __future__ import annotations

import math

import pytest
import torch

from models.color import frames_to_lab
from models.errors import VidcolorError
from study.evaluation.frame_metrics import PSNR_CAP, colorfulness, psnr, rmse_ab, rmse_rgb, temporal_error
from study.evaluation.metrics import VideoMetrics


def const(value, channels=3, h=4, w=4):
    return torch.full((channels, h, w), float(value))


def test_rmse_rgb_by_hand():
    assert rmse_rgb(const(10), const(0)).item() == pytest.approx(10.0)
    pred = const(0)
    pred[:, :2, :] = 20.0  # half the pixels off by 20 in every channel: sqrt(400 / 2)
    assert rmse_rgb(pred, const(0)).item() == pytest.approx(math.sqrt(200.0))
    pred = const(0)
    pred[0] = 30.0  # only R off by 30: sqrt(900 / 3)
    assert rmse_rgb(pred, const(0)).item() == pytest.approx(math.sqrt(300.0))
    batch = torch.stack([const(1), const(2)])  # leading dims are kept: (2,)
    assert rmse_rgb(batch, torch.zeros_like(batch)).tolist() == pytest.approx([1.0, 2.0])
    with pytest.raises(VidcolorError, match="same shape"):
        rmse_rgb(const(0), const(0, h=5))


def test_rmse_ab_is_euclidean_in_ab():
    pred = torch.stack([torch.full((4, 4), 3.0), torch.full((4, 4), 4.0)])  # Δa = 3, Δb = 4 -> 5
    assert rmse_ab(pred, torch.zeros_like(pred)).item() == pytest.approx(5.0)
    pred[:, :, :2] = 0.0  # half the pixels exact: sqrt(25 / 2)
    assert rmse_ab(pred, torch.zeros_like(pred)).item() == pytest.approx(math.sqrt(12.5))


def test_psnr_by_hand():
    assert psnr(const(25.5), const(0)).item() == pytest.approx(20.0)  # MSE = 255^2 / 100
    assert psnr(const(2.55), const(0)).item() == pytest.approx(40.0)
    assert psnr(const(7), const(7)).item() == PSNR_CAP


def test_colorfulness_hasler_suesstrunk_by_hand():
    red = torch.zeros(3, 2, 2)
    red[0] = 255.0  # rg = 255, yb = 127.5 everywhere: no spread, M = 0.3 * |mean|
    assert colorfulness(red).item() == pytest.approx(0.3 * math.hypot(255.0, 127.5))
    assert colorfulness(const(128)).item() == 0.0  # gray
    half = torch.zeros(3, 1, 2)
    half[0, 0, 0] = 255.0  # one red, one black pixel: rg in {255, 0}, yb in {127.5, 0}
    spread = math.hypot(127.5, 63.75)  # population std of each = half the range
    assert colorfulness(half).item() == pytest.approx(spread + 0.3 * spread)
    blue = torch.zeros(3, 2, 2)
    blue[2] = 200.0  # rg = 0, yb = -200
    assert colorfulness(blue).item() == pytest.approx(60.0)


def test_temporal_error_by_hand():
    still = torch.zeros(2, 4, 4)
    moved = still.clone()
    moved[0] += 2.0  # the truth's a rises by 2
    assert temporal_error(still, still, still, moved).item() == pytest.approx(2.0)  # prediction froze
    assert temporal_error(still, moved, still, moved).item() == 0.0  # followed the change
    flicker = still.clone()
    flicker[1] = 6.0
    flicker[0] = 8.0  # change (8, 6) against a still truth -> 10
    assert temporal_error(still, flicker, still, still).item() == pytest.approx(10.0)


def _window(pred_vals, gt_val=0.0, ab_steps=None, h=2, w=2):
    """One window of T frames: RGB filled with pred_vals[t] vs gt_val; ab = ab_steps[t] (a only) vs 0."""
    T = len(pred_vals)
    pred_rgb = torch.stack([const(v, h=h, w=w) for v in pred_vals])
    gt_rgb = torch.full_like(pred_rgb, gt_val)
    pred_ab = torch.zeros(T, 2, h, w)
    if ab_steps is not None:
        for t, a in enumerate(ab_steps):
            pred_ab[t, 0] = a
    return pred_rgb, gt_rgb, pred_ab, torch.zeros_like(pred_ab)


def _feed(acc, items, valid=None):
    """items: list of (video_id, start, window tuple) -> one batch."""
    ids = [v for v, _, _ in items]
    starts = torch.tensor([s for _, s, _ in items])
    parts = [torch.stack([w[i] for _, _, w in items]) for i in range(4)]
    acc.update(ids, starts, *parts, valid=valid)


def test_accumulator_averages_frames_then_videos_and_pairs_across_batches():
    acc = VideoMetrics()
    # video "a": 4 frames with RGB error 1, 2, 3, 6 over two batches, out of order;
    # predicted a steps 0, 1, 3, 6 against a still truth -> pair errors 1, 2, 3
    _feed(acc, [("a", 2, _window([3, 6], ab_steps=[3, 6])), ("pad", 0, _window([9, 9]))], valid=[True, False])
    _feed(acc, [("a", 0, _window([1, 2], ab_steps=[0, 1])), ("b", 0, _window([10, 10], ab_steps=[5, 5]))])
    rows = {r["video_id"]: r for r in acc.per_video()}
    assert set(rows) == {"a", "b"}  # the padding row left no trace
    a, b = rows["a"], rows["b"]
    assert a["frames"] == 4 and a["pairs"] == 3 and b["pairs"] == 1
    assert a["rmse_rgb"] == pytest.approx((1 + 2 + 3 + 6) / 4)
    assert a["temporal_error"] == pytest.approx((1 + 2 + 3) / 3)
    assert b["temporal_error"] == 0.0 and b["rmse_rgb"] == pytest.approx(10.0)
    assert a["rmse_ab"] == pytest.approx((0 + 1 + 3 + 6) / 4)
    assert math.isnan(a["colorfulness_ratio"])  # gray ground truth: ratio undefined
    means = acc.means()
    assert means["rmse_rgb"] == pytest.approx((3.0 + 10.0) / 2)  # each video weighs the same
    assert means["temporal_error"] == pytest.approx((2.0 + 0.0) / 2)
    assert math.isnan(means["colorfulness_ratio"])
    res = acc.results()
    assert res["num_videos"] == 2 and res["num_frames"] == 6

    with pytest.raises(VidcolorError, match="frame 3 of video 'a' was logged twice"):
        _feed(acc, [("a", 3, _window([1]))])


def test_merge_of_rank_states_equals_one_accumulator():
    whole, r0, r1 = VideoMetrics(), VideoMetrics(), VideoMetrics()
    batches = [
        [("a", 0, _window([1, 2], ab_steps=[0, 2]))],
        [("b", 0, _window([4, 4], ab_steps=[1, 1]))],
        [("a", 2, _window([5, 5], ab_steps=[2, 3]))],
    ]
    for i, items in enumerate(batches):
        _feed(whole, items)
        _feed(r0 if i % 2 == 0 else r1, items)
    merged = VideoMetrics.merge([r0.state(), r1.state()])
    # (videos are not split across ranks by eval_loader; "a" stays on rank 0 here)
    nan_free = [
        {k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in merged.per_video()
    ]
    assert nan_free == [
        {k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in whole.per_video()
    ]
    assert [r["frames"] for r in nan_free] == [4, 2]


def test_update_frames_from_uint8_ground_truth():
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2, 3, 8, 8, 3), dtype=torch.uint8, generator=g)  # (B, T, H, W, 3)
    _, gt_ab = frames_to_lab(frames)
    exact = VideoMetrics()
    exact.update_frames(["v0", "v1"], torch.tensor([0, 0]), frames, gt_ab)
    m = exact.means()
    assert m["rmse_rgb"] < 1.0 and m["rmse_ab"] < 1e-4 and m["psnr"] > 45  # only the Lab round trip
    assert m["colorfulness_ratio"] == pytest.approx(1.0, abs=0.01) and m["temporal_error"] < 1e-4
    gray = VideoMetrics()
    gray.update_frames(["v0", "v1"], [0, 0], frames, torch.zeros_like(gt_ab))
    mg = gray.means()
    assert mg["colorfulness_ratio"] < 0.05 and mg["colorfulness_gap"] > 0.95
    assert mg["rmse_ab"] > 10 and mg["rmse_rgb"] > m["rmse_rgb"] + 10
    with pytest.raises(VidcolorError, match="must match"):
        gray.update_frames(["v0"], [0], frames[:1], gt_ab[:1, :, :, :4])


def test_pair_metrics_pair_only_frames_of_the_same_run():
    """``runs``: a model restarted per clip is not charged for the jump between two clips. Video "a":
    clips 0-1 and 2-3 whose colors differ only between the clips; as one run the jump (1, 2) is a pair
    (temporal error > 0, 3 pairs), as two runs the two pairs inside the clips score 0, and so does CDC."""
    h, w = 16, 16
    frames = torch.full((2, 2, h, w, 3), 128, dtype=torch.uint8)
    ab = torch.zeros(2, 2, 2, h, w)
    ab[1] += 20.0  # the second clip's colour, steady inside it
    one, two = VideoMetrics(), VideoMetrics()
    one.update_frames(["a", "a"], [0, 2], frames, ab)
    two.update_frames(["a", "a"], [0, 2], frames, ab, runs=[0, 2])
    (r1,), (r2,) = one.per_video(), two.per_video()
    assert r1["pairs"] == 3 and r1["temporal_error"] > 0 and r1["cdc"] > 0
    assert r2["pairs"] == 2 and r2["temporal_error"] == 0.0 and r2["cdc"] == 0.0
    merged = VideoMetrics.merge([two.state()]).per_video()[0]  # runs survive a gather across ranks
    assert merged["cdc"] == 0.0
    with pytest.raises(VidcolorError, match=r"^VideoMetrics.update: 1 runs for a batch of 2 windows$"):
        VideoMetrics().update_frames(["a", "a"], [0, 2], frames, ab, runs=[0])
