"""SSIM, CDC and the warping error on hand-computed cases, SSIM against an independent numpy
implementation, and their bookkeeping in the per-video accumulator (order, batches, ranks)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from models.errors import VidcolorError
from models.flow import backward_warp, dis_flows, occlusion
from study.evaluation.consistency import FlowCache, cdc, js_divergence, rgb_histograms, warp_error
from study.evaluation.frame_metrics import ssim
from study.evaluation.metrics import VideoMetrics

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
LN2 = math.log(2.0)


def ssim_numpy(x: np.ndarray, y: np.ndarray, win: int) -> float:
    """SSIM of two (3, H, W) images written from Wang et al. 2004 directly: a 2-D Gaussian window
    (sigma 1.5, `win` taps, normalized) slid over every valid position, weighted population
    statistics, the map averaged per channel, then over the channels."""
    t = np.arange(win) - (win - 1) / 2
    g = np.exp(-(t**2) / (2 * 1.5**2))
    w2 = np.outer(g, g) / np.outer(g, g).sum()
    out = []
    for c in range(3):
        px = np.lib.stride_tricks.sliding_window_view(x[c].astype(np.float64), (win, win))
        py = np.lib.stride_tricks.sliding_window_view(y[c].astype(np.float64), (win, win))
        mx, my = (px * w2).sum(axis=(-2, -1)), (py * w2).sum(axis=(-2, -1))
        vx = (w2 * (px - mx[..., None, None]) ** 2).sum(axis=(-2, -1))
        vy = (w2 * (py - my[..., None, None]) ** 2).sum(axis=(-2, -1))
        cxy = (w2 * (px - mx[..., None, None]) * (py - my[..., None, None])).sum(axis=(-2, -1))
        s = (2 * mx * my + C1) * (2 * cxy + C2) / ((mx**2 + my**2 + C1) * (vx + vy + C2))
        out.append(s.mean())
    return float(np.mean(out))


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB image (h, w, 3) on 0-255 (blurred noise: DIS finds its motion)."""
    rng = np.random.default_rng(seed)
    img = torch.from_numpy(rng.random((3, h + 8, w + 8)))
    k = torch.ones(1, 1, 5, 5, dtype=torch.float64) / 25
    img = torch.nn.functional.conv2d(img[:, None], k)[:, 0]  # (3, h + 4, w + 4)
    img = (img - img.min()) / (img.max() - img.min()) * 255
    return img[:, 2 : 2 + h, 2 : 2 + w].permute(1, 2, 0).round().numpy()


# -- SSIM -----------------------------------------------------------------------------------------


def test_ssim_identical_and_constant_frames_by_hand():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (3, 16, 20), generator=g).float()
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-12)
    # constant frames: no variance, SSIM = (2ab + C1) / (a^2 + b^2 + C1) per channel
    pred = torch.stack([torch.full((12, 12), v) for v in (100.0, 200.0, 0.0)])
    gt = torch.stack([torch.full((12, 12), v) for v in (50.0, 200.0, 255.0)])
    by_hand = ((2 * 100 * 50 + C1) / (100**2 + 50**2 + C1) + 1.0 + C1 / (255**2 + C1)) / 3
    assert ssim(pred, gt).item() == pytest.approx(by_hand, rel=1e-12)
    # a 2x2 frame takes a 1x1 window: the per-pixel formula, averaged
    p2, g2 = torch.tensor([[[10.0, 20.0], [30.0, 40.0]]]).expand(3, 2, 2), torch.full((3, 2, 2), 20.0)
    per_pixel = [(2 * v * 20 + C1) / (v**2 + 400 + C1) for v in (10, 20, 30, 40)]
    assert ssim(p2, g2).item() == pytest.approx(sum(per_pixel) / 4, rel=1e-12)


@pytest.mark.parametrize("h, w, win", [(16, 23, 11), (40, 32, 11), (7, 9, 7), (8, 16, 7), (12, 10, 9)])
def test_ssim_matches_an_independent_numpy_implementation(h, w, win):
    """Valid-region SSIM as scikit-image computes it, and the window rule for small frames
    (min(11, H, W), made odd)."""
    rng = np.random.default_rng(h * w)
    gt = textured(h, w, seed=h).transpose(2, 0, 1)
    pred = np.clip(gt + rng.normal(0, 25, gt.shape), 0, 255)
    expected = ssim_numpy(pred, gt, win)
    assert 0.1 < expected < 0.99  # a case where the window matters
    assert ssim(torch.from_numpy(pred), torch.from_numpy(gt)).item() == pytest.approx(expected, abs=1e-10)
    batch = torch.from_numpy(np.stack([np.stack([pred, gt]), np.stack([gt, gt])]))  # (2, 2, 3, H, W)
    out = ssim(batch, torch.from_numpy(gt).expand_as(batch))
    assert out.shape == (2, 2) and out[0, 0].item() == pytest.approx(expected, abs=1e-10)
    assert out[0, 1].item() == pytest.approx(1.0) and out[1, 0].item() == pytest.approx(1.0)
    with pytest.raises(VidcolorError, match=r"ssim: expected two tensors of the same shape"):
        ssim(batch, batch[..., :4])


# -- CDC ------------------------------------------------------------------------------------------


def test_histograms_round_and_clamp():
    x = torch.tensor([-3.0, 0.4, 0.6, 127.5, 254.6, 300.0]).view(1, 2, 3).expand(3, 2, 3)
    h = rgb_histograms(x)
    assert h.shape == (3, 256) and h.sum(dim=-1).tolist() == [6, 6, 6]
    assert {i: int(h[0, i]) for i in h[0].nonzero().flatten().tolist()} == {0: 2, 1: 1, 128: 1, 255: 2}
    assert torch.equal(h[0], h[2])


def test_js_divergence_by_hand():
    a, b = torch.tensor([4.0, 0.0]), torch.tensor([0.0, 7.0])
    assert js_divergence(a, b).item() == pytest.approx(LN2)  # disjoint: ln 2
    assert js_divergence(a, 3 * a).item() == 0.0  # counts are normalized first
    p, q = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])  # M = (0.75, 0.25)
    by_hand = 0.5 * math.log(1 / 0.75) + 0.5 * (0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25))
    assert js_divergence(p, q).item() == pytest.approx(by_hand)


FLAT = [(10, 20, 30), (10, 20, 31), (11, 20, 31), (11, 21, 31), (10, 20, 30)]
# step 1: 1, 1, 1 and 3 channels differ -> mean 2/4; step 2: 2, 2, 2 -> 2/3; step 4: 0 -> 0 (each x ln 2 / 3)
FLAT_CDC = LN2 * (2 / 4 + 2 / 3 + 0) / 3


def _flat(colors, h=2, w=2):
    return torch.stack([torch.tensor(c, dtype=torch.float64).view(3, 1, 1).expand(3, h, w) for c in colors])


def test_cdc_of_single_color_frames_by_hand():
    hists = {f: rgb_histograms(_flat([c])[0]) for f, c in enumerate(FLAT)}
    assert cdc(hists) == pytest.approx(FLAT_CDC)
    three = {f: hists[f] for f in (0, 1, 2)}  # no pair 4 apart: steps 1 and 2 only
    assert cdc(three) == pytest.approx(LN2 * (1 / 3 + 2 / 3) / 2)
    assert math.isnan(cdc({0: hists[0]})) and math.isnan(cdc({0: hists[0], 3: hists[3]}))


def _feed(acc, items, h=2, w=2):
    """items: (video_id, start, list of colors) windows of single-color frames, pred = gt."""
    rgb = torch.stack([_flat(colors, h, w) for _, _, colors in items])
    ab = torch.zeros(rgb.shape[0], rgb.shape[1], 2, h, w)
    acc.update([v for v, _, _ in items], [s for _, s, _ in items], rgb, rgb, ab, ab)


def test_cdc_in_any_order_across_batches_and_ranks_through_json():
    whole, r0, r1 = VideoMetrics(), VideoMetrics(), VideoMetrics()
    batches = [
        [("a", 3, FLAT[3:5])],
        [("a", 0, FLAT[0:2]), ("b", 0, [FLAT[0], FLAT[0]])],
        [("a", 2, FLAT[2:3]), ("c", 0, FLAT[:1])],
    ]
    for i, items in enumerate(batches):
        _feed(whole, items)
        _feed(r0 if i % 2 == 0 else r1, items)
    rows = {r["video_id"]: r for r in whole.per_video()}
    assert rows["a"]["cdc"] == pytest.approx(FLAT_CDC) and rows["b"]["cdc"] == 0.0
    assert math.isnan(rows["c"]["cdc"])  # one frame: no pair
    assert whole.means()["cdc"] == pytest.approx(FLAT_CDC / 2)  # c left out of the mean
    states = [json.loads(json.dumps(s.state())) for s in (r0, r1)]  # plain data (frame keys become text)
    merged = {r["video_id"]: r for r in VideoMetrics.merge(states).per_video()}
    assert merged["a"]["cdc"] == pytest.approx(FLAT_CDC) and merged["a"]["frames"] == 5
    with pytest.raises(VidcolorError, match="VideoMetrics.merge: frame 3 of video 'a' is in two states"):
        VideoMetrics.merge([states[0], states[0]])


# -- the warping error ----------------------------------------------------------------------------


def _const_flow(u, v, h, w):
    return torch.stack([torch.full((h, w), float(u)), torch.full((h, w), float(v))])


def test_backward_warp_bilinear_by_hand():
    img = torch.arange(6, dtype=torch.float64).view(1, 1, 6).expand(1, 2, 6) / 10  # column x holds x / 10
    assert backward_warp(img, _const_flow(2, 0, 2, 6))[0, 0].tolist() == pytest.approx([0.2, 0.3, 0.4, 0.5, 0.5, 0.5])
    assert backward_warp(img, _const_flow(0.5, 0, 2, 6))[0, 1].tolist() == pytest.approx(
        [0.05, 0.15, 0.25, 0.35, 0.45, 0.5]
    )  # halfway between neighbours, the edge beyond


def test_occlusion_by_hand():
    h, w = 3, 6
    fw, bw = _const_flow(2, 0, h, w), _const_flow(-2, 0, h, w)
    occ = occlusion(fw, bw)
    assert occ[:, :4].sum() == 0 and occ[:, 4:].all()  # x + 2 leaves the frame for x >= 4
    assert occlusion(fw, torch.zeros_like(bw)).all()  # |2 + 0|^2 = 4 > 0.01 * 4 + 0.5
    step = torch.zeros(2, h, w)
    step[0, :, 3:] = 1.0  # a motion boundary between x = 2 and 3 (and a consistent backward flow)
    occ = occlusion(step, -step)  # pixel x >= 3 lands on x + 1, whose backward flow is -1
    assert occ[:, 2].all() and occ[:, 5].all() and occ.sum() == 2 * h  # the boundary, and x = 5 + 1 outside


def test_warp_error_of_a_known_translation_by_hand():
    """Content moving 2 px right: flow (2, 0), columns 0 ... W-3 visible in t+1."""
    h, w = 3, 6
    fw, bw = _const_flow(2, 0, h, w), _const_flow(-2, 0, h, w)
    pred = torch.zeros(3, h, w)
    nxt = (torch.arange(w, dtype=torch.float64) / 10).expand(3, h, w)
    # warped next = (x + 2) / 10 over x = 0..3; squared error summed / (3 channels x 4 x 3 pixels)
    assert warp_error(pred, nxt, fw, bw) == pytest.approx((0.2**2 + 0.3**2 + 0.4**2 + 0.5**2) / 4)
    moved = torch.roll(nxt, 2, dims=-1)  # the prediction moving with the content
    assert warp_error(nxt, moved, fw, bw) == pytest.approx(0.0, abs=1e-15)
    assert warp_error(pred, nxt, fw, torch.zeros_like(bw)) == 0.0  # all occluded: 0, as in Lai et al.'s code


def test_dis_flow_of_a_whole_pixel_translation():
    big = textured(40, 44, seed=1).mean(axis=-1).astype(np.uint8)
    a, b = big[:, 4:36].copy(), big[:, 2:34].copy()  # b(x) = a(x - 2): moving right by 2
    fw, bw = dis_flows(a, b)
    assert fw.shape == (2, 40, 32) and fw.dtype == torch.float32
    assert (fw[0, 4:-4, 4:-6] - 2).abs().max() < 0.05 and fw[1].abs().max() < 0.1
    assert (bw[0, 4:-4, 6:-4] + 2).abs().max() < 0.05
    with pytest.raises(VidcolorError, match="dis_flows: frames of 11x40 are under 12 pixels on a side"):
        dis_flows(a[:, :11].copy(), b[:, :11].copy())


def _moving_video(n: int, h: int = 32, w: int = 32, step: int = 2, seed: int = 3) -> torch.Tensor:
    """n frames (n, 3, H, W) on 0-255 of one texture moving `step` px right per frame."""
    big = textured(h, w + step * n + 4, seed=seed)
    x0 = step * n
    return torch.stack([torch.from_numpy(big[:, x0 - step * t : x0 - step * t + w]).permute(2, 0, 1) for t in range(n)])


def _update(acc, vid, start, gt, pred):
    ab = torch.zeros(1, gt.shape[0], 2, *gt.shape[-2:])
    acc.update([vid], [start], pred[None], gt[None], ab, ab)


def test_warp_error_in_the_accumulator_with_dis_flow():
    gt = _moving_video(4)
    moving, still = VideoMetrics(), VideoMetrics()
    _update(moving, "v", 2, gt[2:], gt[2:])  # the prediction moves with the truth, in two batches out of order
    _update(moving, "v", 0, gt[:2], gt[:2])
    row = moving.per_video()[0]
    assert row["pairs"] == 3 and row["warp_error"] < 1e-4
    frozen = gt[:1].expand_as(gt)  # the prediction does not move
    _update(still, "v", 0, gt, frozen)
    # the frozen prediction has no temporal change, its warp error is the texture's own change
    shift = gt[0, :, :, :-2] / 255 - gt[0, :, :, 2:] / 255  # pred_t(x) - pred_t(x + 2) on the visible part
    by_hand = float(shift.pow(2).mean())
    assert still.per_video()[0]["warp_error"] == pytest.approx(by_hand, rel=0.1)
    assert still.per_video()[0]["warp_error"] > 100 * row["warp_error"]
    tiny = VideoMetrics()
    _update(tiny, "t", 0, gt[:, :, :8, :8], gt[:, :, :8, :8])  # too small for DIS: no warp error
    assert tiny.per_video()[0]["pairs"] == 3 and math.isnan(tiny.per_video()[0]["warp_error"])


def test_shared_flow_cache_and_merge_of_warp_sums(monkeypatch):
    from study.evaluation import consistency

    calls = []
    real = consistency.dis_flows
    monkeypatch.setattr(consistency, "dis_flows", lambda *a: calls.append(1) or real(*a))
    gt = _moving_video(5, seed=4)
    flows = FlowCache()
    a, b = VideoMetrics(flows), VideoMetrics(flows)
    solo = VideoMetrics()
    for window, start in ((gt[:3], 0), (gt[3:], 3)):
        _update(a, "v", start, window, window)
        _update(b, "v", start, window, window.flip(-1))  # a mirrored prediction, moving the wrong way
        assert len(calls) == 2  # pairs (0, 1), (1, 2), then (2, 3), (3, 4): each flow computed once
        flows.clear()
        calls.clear()
        _update(solo, "v", start, window, window.flip(-1))
        assert len(calls) == 2
        calls.clear()
    assert b.per_video()[0]["warp_error"] == pytest.approx(solo.per_video()[0]["warp_error"], rel=1e-12)
    assert b.per_video()[0]["warp_error"] > 100 * a.per_video()[0]["warp_error"]
    r0, r1 = VideoMetrics(), VideoMetrics()
    _update(r0, "v", 0, gt[:3], gt[:3])
    _update(r1, "w", 0, gt[3:], gt[3:])
    merged = VideoMetrics.merge([r0.state(), r1.state()]).per_video()
    assert [(r["video_id"], r["pairs"]) for r in merged] == [("v", 2), ("w", 1)]
    assert merged[0]["warp_error"] == pytest.approx(r0.per_video()[0]["warp_error"])
    assert merged[1]["warp_error"] == pytest.approx(r1.per_video()[0]["warp_error"])


def test_rmse_ratio_against_a_baseline_accumulator():
    model, gray = VideoMetrics(), VideoMetrics()
    zeros = torch.zeros(1, 2, 2, 2, 2)
    for acc, value in ((model, 3.0), (gray, 12.0)):  # RGB errors 3 and 12 everywhere on video "a"
        acc.update(["a"], [0], torch.full((1, 2, 3, 2, 2), value), torch.zeros(1, 2, 3, 2, 2), zeros, zeros)
    model.update(["b"], [0], torch.full((1, 2, 3, 2, 2), 5.0), torch.zeros(1, 2, 3, 2, 2), zeros, zeros)
    rows = {r["video_id"]: r for r in model.per_video(baseline=gray)}
    assert rows["a"]["rmse_ratio"] == pytest.approx(0.25) and math.isnan(rows["b"]["rmse_ratio"])  # b: no baseline
    assert model.results(baseline=gray)["mean"]["rmse_ratio"] == pytest.approx(0.25)
    assert all(math.isnan(r["rmse_ratio"]) for r in model.per_video())  # no baseline given
    assert gray.per_video(baseline=gray)[0]["rmse_ratio"] == 1.0
