"""Colorization metrics per video: RMSE (RGB 0-255 and ab), PSNR, SSIM, colorfulness, temporal stability.

Every metric is computed per frame (or per pair of consecutive frames), averaged over the frames
of a video, then over videos, so a long video weighs as much as a short one, as in the seed paper
("average per-pixel RMSE over the set of all frames in a single video"):

- ``rmse_rgb``: sqrt(mean over pixels and the 3 channels of (pred - gt)^2), RGB on 0-255: the
  seed's RMSE. The prediction is the ground-truth L with the predicted ab, converted to sRGB.
- ``rmse_ab``: sqrt(mean over pixels of (Δa^2 + Δb^2)), the Euclidean ab error in Lab units.
- ``psnr``: 10·log10(255^2 / MSE_rgb) per frame in dB, capped at ``PSNR_CAP`` for identical frames.
- ``colorfulness_pred``, ``colorfulness_gt``: Hasler and Süsstrunk (2003), "Measuring
  colourfulness in natural images": M = sqrt(σ_rg^2 + σ_yb^2) + 0.3·sqrt(μ_rg^2 + μ_yb^2) with
  rg = R - G, yb = (R + G)/2 - B on 0-255 RGB.
  ``colorfulness_ratio`` = mean M(pred) / mean M(gt) over the video's frames (below 1 means the
  desaturation the seed complains about; undefined for a gray ground truth), and
  ``colorfulness_gap`` = |ratio - 1|.
- ``temporal_error``: for consecutive frames t-1, t of a video,
  sqrt(mean over pixels of |(ab_pred[t] - ab_pred[t-1]) - (ab_gt[t] - ab_gt[t-1])|^2): how much
  the predicted frame-to-frame color change departs from the true one (flicker scores high,
  colors that follow the motion score low).
- ``ssim``: SSIM of Wang et al. 2004 ("Image quality assessment: from error visibility to
  structural similarity", IEEE TIP) on 0-255 RGB, per channel, averaged over the channels and
  the valid region of an 11x11 Gaussian window (sigma 1.5, K1 0.01, K2 0.03, population
  statistics): scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255, channel_axis=...)``.
- ``cdc``: Color Distribution Consistency of Liu et al. ("Temporally Consistent Video
  Colorization with Deep Feature Propagation and Self-regularization Learning", TCVC) on the
  predicted frames: the Jensen-Shannon divergence (natural log) of the 256-bin histograms of each
  channel of frames t and t+s, averaged over t and the channels, then over s in ``CDC_STEPS``.
  Every frame's histogram (3 KB) is kept until the end (any arrival order); lower is more consistent.
- ``warp_error``: the warping error of Lai et al. 2018 ("Learning Blind Video Temporal
  Consistency", ECCV), as their evaluation code computes it: flow between consecutive
  ground-truth frames (OpenCV DIS, medium preset, on the luma), the predicted frame t+1 warped
  back to t, the mean squared [0, 1] RGB difference over the non-occluded pixels (see
  `warp_error`); lower is more consistent. NaN for frames under FLOW_MIN_SIZE (DIS refuses them).
- ``rmse_ratio``: rmse_rgb over the rmse_rgb of the gray prediction (ab = 0, the input as a
  user sees it) of the same video, when `results` is given that baseline's accumulator; below 1
  beats doing nothing. The mean is the mean of the per-video ratios.
- ``added_warp``, ``added_cdc``: the flicker the color adds to the input's own: warp_error (cdc)
  over the gray prediction's on the same frames, minus 1, per video (NaN without a baseline, or
  when the gray's is missing or under ADDED_MIN: a still input). A gray output flickers as much as
  its input, so a washed-out model scores 0, not the best; below 0 the colors steady what the
  input's luminance changes, above 0 they flicker on top of it.

`VideoMetrics` is the accumulator the evaluation loop feeds batch by batch with video ids and
frame indices; frames may arrive in any order and split across batches. Its `state()` is plain
data, so ranks of a distributed evaluation can gather and `merge` them. The per-frame functions it
averages (rmse_rgb ... ssim, temporal_error) are in `study.evaluation.frame_metrics`; cdc and
warp_error's flow in `study.evaluation.consistency`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from models.color import denormalize_l, frames_to_lab, lab_to_rgb
from models.errors import VidcolorError
from study.config.metric_names import METRICS  # each metric's name and better direction
from study.evaluation.consistency import FLOW_MIN_SIZE, FlowCache, cdc, luma, masked_warp_error, rgb_histograms
from study.evaluation.frame_metrics import colorfulness, psnr, rmse_ab, rmse_rgb, ssim, temporal_error

COLORFULNESS_MIN = 1e-6  # a ground truth less colorful than this has no defined ratio
ADDED_MIN = 1e-12  # a gray warp_error / cdc below this is a still input (float noise): no added_* ratio
_SUMS = ("rmse_rgb", "rmse_ab", "psnr", "colorfulness_pred", "colorfulness_gt", "ssim")


class _Frame(NamedTuple):
    """What a frame keeps while a neighbour is missing: ab for temporal_error, the predicted RGB
    (uint8, as a user sees it) and the ground truth's luma for warp_error. CPU tensors."""

    pred_ab: torch.Tensor  # (2, H, W) float32
    gt_ab: torch.Tensor
    pred_rgb: torch.Tensor  # (3, H, W) uint8
    gt_luma: torch.Tensor  # (H, W) uint8


@dataclass
class _Video:
    frames: int = 0
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_SUMS, 0.0))
    pairs: int = 0
    temporal_sum: float = 0.0
    warp_pairs: int = 0  # pairs with a flow (frames of at least FLOW_MIN_SIZE)
    warp_sum: float = 0.0
    histograms: dict[int, torch.Tensor] = field(default_factory=dict)  # frame -> (3, 256) int32, for cdc
    runs: dict[int, int] = field(default_factory=dict)  # frame -> its run (`VideoMetrics.update`'s ``runs``)
    seen: set[int] = field(default_factory=set)
    pending: dict[int, _Frame] = field(default_factory=dict)


class VideoMetrics:
    """Accumulates per-frame metrics by video; `results()` gives the per-video table and the means.

    Feed it with `update_frames` (uint8 ground-truth frames + predicted ab, the evaluation path) or
    `update` (Lab-free: RGB 0-255 and ab tensors you computed). Frame indices identify frames within
    a video: a frame logged twice is an error, and temporal pairs are (f-1, f) for any f whose
    neighbour has been seen, whatever the arrival order. `flows`: a FlowCache shared with another
    accumulator fed the same batches (its owner clears it after each batch); by default its own,
    cleared after each `update`.
    """

    def __init__(self, flows: FlowCache | None = None) -> None:
        self._videos: dict[str, _Video] = {}
        self._flows, self._own_flows = (FlowCache(), True) if flows is None else (flows, False)

    def __len__(self) -> int:
        return len(self._videos)

    @torch.no_grad()
    def update_frames(
        self,
        video_ids: Sequence[str],
        starts: torch.Tensor | Sequence[int],
        frames: torch.Tensor,
        pred_ab: torch.Tensor,
        valid: torch.Tensor | Sequence[bool] | None = None,
        runs: torch.Tensor | Sequence[int] | None = None,
    ) -> None:
        """One eval batch: `frames` uint8 (B, T, H, W, 3) ground truth, `pred_ab` (B, T, 2, H, W)
        predicted ab at full size, `starts` (B,) index of each window's first frame in its video.
        The prediction is rendered with the ground truth's L. ``runs``: as in `update`."""
        if (
            frames.dim() != 5
            or pred_ab.dim() != 5
            or pred_ab.shape[:2] != frames.shape[:2]
            or pred_ab.shape[2] != 2
            or pred_ab.shape[-2:] != frames.shape[2:4]
        ):
            raise VidcolorError(
                f"VideoMetrics: frames (B, T, H, W, 3) and pred_ab (B, T, 2, H, W) must match, "
                f"got {tuple(frames.shape)} and {tuple(pred_ab.shape)}"
            )
        l_norm, gt_ab = frames_to_lab(frames)  # (B, T, 1, H, W), (B, T, 2, H, W)
        pred_rgb = lab_to_rgb(torch.cat((denormalize_l(l_norm), pred_ab.to(l_norm.dtype)), dim=2)) * 255.0
        gt_rgb = frames.movedim(-1, 2).to(pred_rgb.dtype)  # the true pixels, not a Lab round trip
        self.update(video_ids, starts, pred_rgb, gt_rgb, pred_ab, gt_ab, valid, runs)

    @torch.no_grad()
    def update(
        self,
        video_ids: Sequence[str],
        starts: torch.Tensor | Sequence[int],
        pred_rgb: torch.Tensor,
        gt_rgb: torch.Tensor,
        pred_ab: torch.Tensor,
        gt_ab: torch.Tensor,
        valid: torch.Tensor | Sequence[bool] | None = None,
        runs: torch.Tensor | Sequence[int] | None = None,
    ) -> None:
        """One batch of windows: RGB on 0-255 (B, T, 3, H, W), ab (B, T, 2, H, W); window b holds
        frames starts[b] ... starts[b] + T - 1 of video video_ids[b]; rows with valid False are padding.

        ``runs`` (B,): the run each window's frames belong to, for example the first frame of the
        clip a model colorized from an empty state (`evaluate_model` passes the clips' starts): the
        pair metrics (temporal_error, warp_error, cdc) pair only frames of the same run, so a
        model's restart between two clips (which `vidcolor colorize` never makes inside a film) is
        not scored as flicker. None: a video's frames form one run."""
        B, T = pred_rgb.shape[:2]
        if (
            len(video_ids) != B
            or gt_rgb.shape != pred_rgb.shape
            or pred_ab.shape[:2] != (B, T)
            or gt_ab.shape != pred_ab.shape
        ):
            raise VidcolorError(
                f"VideoMetrics.update: batch shapes disagree: {len(video_ids)} ids, rgb "
                f"{tuple(pred_rgb.shape)}/{tuple(gt_rgb.shape)}, ab {tuple(pred_ab.shape)}/{tuple(gt_ab.shape)}"
            )
        starts = [int(s) for s in (starts.tolist() if isinstance(starts, torch.Tensor) else starts)]
        runs = [0] * B if runs is None else [int(r) for r in (runs.tolist() if torch.is_tensor(runs) else runs)]
        if len(runs) != B:
            raise VidcolorError(f"VideoMetrics.update: {len(runs)} runs for a batch of {B} windows")
        keep = (
            [True] * B
            if valid is None
            else [bool(v) for v in (valid.tolist() if isinstance(valid, torch.Tensor) else valid)]
        )
        per_frame = {
            "rmse_rgb": rmse_rgb(pred_rgb, gt_rgb),
            "rmse_ab": rmse_ab(pred_ab, gt_ab),
            "psnr": psnr(pred_rgb, gt_rgb),
            "colorfulness_pred": colorfulness(pred_rgb),
            "colorfulness_gt": colorfulness(gt_rgb),
            "ssim": ssim(pred_rgb, gt_rgb),
        }  # each (B, T)
        per_frame = {k: v.cpu().tolist() for k, v in per_frame.items()}
        hists = rgb_histograms(pred_rgb).to(torch.int32).cpu()  # (B, T, 3, 256)
        pred_u8 = pred_rgb.detach().round().clamp(0, 255).to(torch.uint8).cpu()
        gt_luma = luma(gt_rgb).cpu()
        pred_ab_cpu, gt_ab_cpu = pred_ab.detach().float().cpu(), gt_ab.detach().float().cpu()
        for b in range(B):
            if not keep[b]:
                continue
            video = self._videos.setdefault(str(video_ids[b]), _Video())
            for t in range(T):
                f = starts[b] + t
                if f in video.seen:
                    raise VidcolorError(f"VideoMetrics: frame {f} of video {video_ids[b]!r} was logged twice")
                video.frames += 1
                for k in _SUMS:
                    video.sums[k] += per_frame[k][b][t]
                video.histograms[f] = hists[b, t].clone()
                video.runs[f] = runs[b]
                frame = _Frame(
                    pred_ab_cpu[b, t].clone(), gt_ab_cpu[b, t].clone(), pred_u8[b, t].clone(), gt_luma[b, t].clone()
                )  # copies: a view would keep the whole batch alive
                self._pair(str(video_ids[b]), video, f, frame)
        if self._own_flows:
            self._flows.clear()

    def _pair(self, video_id: str, video: _Video, f: int, frame: _Frame) -> None:
        """Score f against its neighbours seen so far; keep f only while a neighbour is missing."""
        for other in (f - 1, f + 1):
            if other in video.pending and video.runs[other] == video.runs[f]:
                first, second = (video.pending[other], frame) if other < f else (frame, video.pending[other])
                video.temporal_sum += float(temporal_error(first.pred_ab, second.pred_ab, first.gt_ab, second.gt_ab))
                video.pairs += 1
                if min(first.gt_luma.shape) >= FLOW_MIN_SIZE:
                    fw, keep = self._flows.get(video_id, min(f, other), first.gt_luma, second.gt_luma)
                    video.warp_sum += masked_warp_error(first.pred_rgb / 255.0, second.pred_rgb / 255.0, fw, keep)
                    video.warp_pairs += 1
        video.seen.add(f)
        video.pending[f] = frame
        for g in (f - 1, f, f + 1):  # frames whose both neighbours are seen are done
            if g in video.pending and (g - 1) in video.seen and (g + 1) in video.seen:
                del video.pending[g]
        # (frames at the ends of a video stay pending: one frame per end, small)

    # -- combining and reading --------------------------------------------------------------------

    def state(self) -> dict[str, dict[str, Any]]:
        """Plain per-video sums and histograms (no tensors), for gathering across ranks."""
        return {
            vid: {
                "frames": v.frames,
                "pairs": v.pairs,
                "temporal_sum": v.temporal_sum,
                "warp_pairs": v.warp_pairs,
                "warp_sum": v.warp_sum,
                **v.sums,
                "histograms": {f: h.tolist() for f, h in v.histograms.items()},
                "runs": dict(v.runs),
            }
            for vid, v in self._videos.items()
        }

    @classmethod
    def merge(cls, states: Iterable[Mapping[str, Mapping[str, Any]]]) -> VideoMetrics:
        """One accumulator from several ranks' `state()` (a video seen on two ranks is summed; its
        frames must differ)."""
        out = cls()
        for state in states:
            for vid, s in state.items():
                v = out._videos.setdefault(vid, _Video())
                v.frames += int(s["frames"])
                v.pairs += int(s["pairs"])
                v.temporal_sum += float(s["temporal_sum"])
                v.warp_pairs += int(s["warp_pairs"])
                v.warp_sum += float(s["warp_sum"])
                for k in _SUMS:
                    v.sums[k] += float(s[k])
                for f, h in s["histograms"].items():
                    if int(f) in v.histograms:
                        raise VidcolorError(f"VideoMetrics.merge: frame {f} of video {vid!r} is in two states")
                    v.histograms[int(f)] = torch.tensor(h, dtype=torch.int32)
                v.runs.update({int(f): int(r) for f, r in s.get("runs", {}).items()})
        return out

    def per_video(self, baseline: VideoMetrics | None = None) -> list[dict[str, Any]]:
        """One dict per video (sorted by id): video_id, frames, pairs and every metric of METRICS;
        rmse_ratio against `baseline`'s rmse_rgb of the same video (NaN without one, or when the
        baseline lacks the video or matches its ground truth exactly), added_warp and added_cdc
        against its warp_error and cdc (NaN without one, or when the baseline's is 0 or NaN)."""
        rows = []
        for vid in sorted(self._videos):
            v = self._videos[vid]
            if v.frames == 0:
                continue
            row: dict[str, Any] = {"video_id": vid, "frames": v.frames, "pairs": v.pairs}
            for k in _SUMS:
                row[k] = v.sums[k] / v.frames
            cf_gt = row["colorfulness_gt"]
            row["colorfulness_ratio"] = row["colorfulness_pred"] / cf_gt if cf_gt > COLORFULNESS_MIN else math.nan
            row["colorfulness_gap"] = abs(row["colorfulness_ratio"] - 1.0)
            row["temporal_error"] = v.temporal_sum / v.pairs if v.pairs else math.nan
            row["cdc"] = cdc(v.histograms, v.runs)
            row["warp_error"] = v.warp_sum / v.warp_pairs if v.warp_pairs else math.nan
            base = baseline._videos.get(vid) if baseline is not None else None
            base_rmse = base.sums["rmse_rgb"] / base.frames if base is not None and base.frames else 0.0
            row["rmse_ratio"] = row["rmse_rgb"] / base_rmse if base_rmse > 0 else math.nan
            base_warp = base.warp_sum / base.warp_pairs if base is not None and base.warp_pairs else math.nan
            row["added_warp"] = _added(row["warp_error"], base_warp)
            row["added_cdc"] = _added(row["cdc"], cdc(base.histograms, base.runs) if base is not None else math.nan)
            rows.append(row)
        return rows

    def means(self, baseline: VideoMetrics | None = None) -> dict[str, float]:
        """Each metric averaged over videos (NaN entries, e.g. a gray video's ratio, left out)."""
        return _means(self.per_video(baseline))

    def results(self, baseline: VideoMetrics | None = None) -> dict[str, Any]:
        """{"videos": per_video(), "mean": means(), "num_videos", "num_frames"} (JSON-ready)."""
        rows = self.per_video(baseline)
        return {
            "videos": rows,
            "mean": _means(rows),
            "num_videos": len(rows),
            "num_frames": sum(r["frames"] for r in rows),
        }


def _added(value: float, gray: float) -> float:
    """What the color adds to the gray input's own value: value / gray - 1 (NaN when gray is 0, below
    ADDED_MIN, or NaN)."""
    return value / gray - 1.0 if gray > ADDED_MIN and not math.isnan(value) else math.nan


def _means(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    out = {}
    for k in METRICS:
        values = [r[k] for r in rows if not math.isnan(r[k])]
        out[k] = sum(values) / len(values) if values else math.nan
    return out
