"""Colorization metrics per video: RMSE (RGB 0-255 and ab), PSNR, colorfulness, temporal stability.

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

`VideoMetrics` is the accumulator the evaluation loop feeds batch by batch with video ids and
frame indices; frames may arrive in any order and split across batches. Its `state()` is plain
data, so ranks of a distributed evaluation can gather and `merge` them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from models.color import denormalize_l, frames_to_lab, lab_to_rgb
from models.errors import VidcolorError

PSNR_CAP = 100.0  # dB, for a frame identical to its ground truth
COLORFULNESS_MIN = 1e-6  # a ground truth less colorful than this has no defined ratio

#: metric -> the direction that is better ("min"/"max"); colorfulness_ratio is best at 1.
METRICS = {
    "rmse_rgb": "min",
    "rmse_ab": "min",
    "psnr": "max",
    "colorfulness_pred": "max",
    "colorfulness_gt": "max",
    "colorfulness_ratio": "max",
    "colorfulness_gap": "min",
    "temporal_error": "min",
}


# -- per-frame functions (any leading shape) ------------------------------------------------------

def mse_rgb(pred_rgb: torch.Tensor, gt_rgb: torch.Tensor) -> torch.Tensor:
    """Mean squared error over pixels and channels of RGB on 0-255: (..., 3, H, W) x2 -> (...)."""
    _check_pair(pred_rgb, gt_rgb, 3, "mse_rgb")
    return (pred_rgb.double() - gt_rgb.double()).pow(2).mean(dim=(-3, -2, -1))


def rmse_rgb(pred_rgb: torch.Tensor, gt_rgb: torch.Tensor) -> torch.Tensor:
    """Per-frame RGB RMSE on 0-255: (..., 3, H, W) x2 -> (...)."""
    return mse_rgb(pred_rgb, gt_rgb).sqrt()


def rmse_ab(pred_ab: torch.Tensor, gt_ab: torch.Tensor) -> torch.Tensor:
    """Per-frame ab RMSE, sqrt(mean_pixels(Δa² + Δb²)): (..., 2, H, W) x2 -> (...)."""
    _check_pair(pred_ab, gt_ab, 2, "rmse_ab")
    return (pred_ab.double() - gt_ab.double()).pow(2).sum(dim=-3).mean(dim=(-2, -1)).sqrt()


def psnr(pred_rgb: torch.Tensor, gt_rgb: torch.Tensor) -> torch.Tensor:
    """Per-frame PSNR in dB for RGB on 0-255, capped at PSNR_CAP: (..., 3, H, W) x2 -> (...)."""
    mse = mse_rgb(pred_rgb, gt_rgb)
    out = 10.0 * torch.log10(255.0 ** 2 / mse.clamp_min(1e-300))
    return out.clamp(max=PSNR_CAP)


def colorfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Hasler-Süsstrunk colorfulness of RGB on 0-255: (..., 3, H, W) -> (...). Population std."""
    if rgb.dim() < 3 or rgb.shape[-3] != 3:
        raise VidcolorError(f"colorfulness: expected RGB of shape (..., 3, H, W), got {tuple(rgb.shape)}")
    r, g, b = rgb.double().unbind(-3)
    rg = (r - g).flatten(-2)  # (..., H*W)
    yb = (0.5 * (r + g) - b).flatten(-2)
    std = torch.sqrt(rg.var(dim=-1, correction=0) + yb.var(dim=-1, correction=0))
    mean = torch.sqrt(rg.mean(dim=-1) ** 2 + yb.mean(dim=-1) ** 2)
    return std + 0.3 * mean


def temporal_error(pred_prev: torch.Tensor, pred: torch.Tensor, gt_prev: torch.Tensor,
                   gt: torch.Tensor) -> torch.Tensor:
    """Error of the predicted frame-to-frame ab change against the true one: (..., 2, H, W) x4 -> (...)."""
    _check_pair(pred, gt, 2, "temporal_error")
    d = (pred.double() - pred_prev.double()) - (gt.double() - gt_prev.double())
    return d.pow(2).sum(dim=-3).mean(dim=(-2, -1)).sqrt()


def _check_pair(pred: torch.Tensor, gt: torch.Tensor, channels: int, name: str) -> None:
    if pred.shape != gt.shape or pred.dim() < 3 or pred.shape[-3] != channels:
        raise VidcolorError(f"{name}: expected two tensors of the same shape (..., {channels}, H, W), "
                            f"got {tuple(pred.shape)} and {tuple(gt.shape)}")


# -- the accumulator ------------------------------------------------------------------------------

_SUMS = ("rmse_rgb", "rmse_ab", "psnr", "colorfulness_pred", "colorfulness_gt")


@dataclass
class _Video:
    frames: int = 0
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_SUMS, 0.0))
    pairs: int = 0
    temporal_sum: float = 0.0
    seen: set[int] = field(default_factory=set)
    pending: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # frame -> (pred_ab, gt_ab)


class VideoMetrics:
    """Accumulates per-frame metrics by video; `results()` gives the per-video table and the means.

    Feed it with `update_frames` (uint8 ground-truth frames + predicted ab, the evaluation path) or
    `update` (Lab-free: RGB 0-255 and ab tensors you computed). Frame indices identify frames within
    a video: a frame logged twice is an error, and temporal pairs are (f-1, f) for any f whose
    neighbour has been seen, whatever the arrival order.
    """

    def __init__(self) -> None:
        self._videos: dict[str, _Video] = {}

    def __len__(self) -> int:
        return len(self._videos)

    @torch.no_grad()
    def update_frames(self, video_ids: Sequence[str], starts: torch.Tensor | Sequence[int], frames: torch.Tensor,
                      pred_ab: torch.Tensor, valid: torch.Tensor | Sequence[bool] | None = None) -> None:
        """One eval batch: `frames` uint8 (B, T, H, W, 3) ground truth, `pred_ab` (B, T, 2, H, W)
        predicted ab at full size, `starts` (B,) index of each window's first frame in its video.
        The prediction is rendered with the ground truth's L."""
        if frames.dim() != 5 or pred_ab.dim() != 5 or pred_ab.shape[:2] != frames.shape[:2] \
                or pred_ab.shape[2] != 2 or pred_ab.shape[-2:] != frames.shape[2:4]:
            raise VidcolorError(f"VideoMetrics: frames (B, T, H, W, 3) and pred_ab (B, T, 2, H, W) must match, "
                                f"got {tuple(frames.shape)} and {tuple(pred_ab.shape)}")
        l_norm, gt_ab = frames_to_lab(frames)  # (B, T, 1, H, W), (B, T, 2, H, W)
        pred_rgb = lab_to_rgb(torch.cat((denormalize_l(l_norm), pred_ab.to(l_norm.dtype)), dim=2)) * 255.0
        gt_rgb = frames.movedim(-1, 2).to(pred_rgb.dtype)  # the true pixels, not a Lab round trip
        self.update(video_ids, starts, pred_rgb, gt_rgb, pred_ab, gt_ab, valid)

    @torch.no_grad()
    def update(self, video_ids: Sequence[str], starts: torch.Tensor | Sequence[int], pred_rgb: torch.Tensor,
               gt_rgb: torch.Tensor, pred_ab: torch.Tensor, gt_ab: torch.Tensor,
               valid: torch.Tensor | Sequence[bool] | None = None) -> None:
        """One batch of windows: RGB on 0-255 (B, T, 3, H, W), ab (B, T, 2, H, W); window b holds
        frames starts[b] ... starts[b] + T - 1 of video video_ids[b]; rows with valid False are padding."""
        B, T = pred_rgb.shape[:2]
        if len(video_ids) != B or gt_rgb.shape != pred_rgb.shape or pred_ab.shape[:2] != (B, T) \
                or gt_ab.shape != pred_ab.shape:
            raise VidcolorError(f"VideoMetrics.update: batch shapes disagree: {len(video_ids)} ids, rgb "
                                f"{tuple(pred_rgb.shape)}/{tuple(gt_rgb.shape)}, ab {tuple(pred_ab.shape)}/{tuple(gt_ab.shape)}")
        starts = [int(s) for s in (starts.tolist() if isinstance(starts, torch.Tensor) else starts)]
        keep = [True] * B if valid is None else [bool(v) for v in (valid.tolist() if isinstance(valid, torch.Tensor) else valid)]
        per_frame = {
            "rmse_rgb": rmse_rgb(pred_rgb, gt_rgb), "rmse_ab": rmse_ab(pred_ab, gt_ab),
            "psnr": psnr(pred_rgb, gt_rgb), "colorfulness_pred": colorfulness(pred_rgb),
            "colorfulness_gt": colorfulness(gt_rgb),
        }  # each (B, T)
        per_frame = {k: v.cpu().tolist() for k, v in per_frame.items()}
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
                self._pair(video, f, pred_ab_cpu[b, t], gt_ab_cpu[b, t])

    def _pair(self, video: _Video, f: int, pred: torch.Tensor, gt: torch.Tensor) -> None:
        """Score f against its neighbours seen so far; keep f only while a neighbour is missing."""
        for prev, nxt in ((f - 1, f), (f, f + 1)):
            other = prev if nxt == f else nxt
            if other in video.pending:
                o_pred, o_gt = video.pending[other]
                args = (o_pred, pred, o_gt, gt) if other == prev else (pred, o_pred, gt, o_gt)
                video.temporal_sum += float(temporal_error(*args))
                video.pairs += 1
        video.seen.add(f)
        video.pending[f] = (pred, gt)
        for g in (f - 1, f, f + 1):  # frames whose both neighbours are seen are done
            if g in video.pending and (g - 1) in video.seen and (g + 1) in video.seen:
                del video.pending[g]
        # (frames at the ends of a video stay pending: one frame per end, small)

    # -- combining and reading --------------------------------------------------------------------

    def state(self) -> dict[str, dict[str, Any]]:
        """Plain per-video sums (no tensors), for gathering across ranks."""
        return {vid: {"frames": v.frames, "pairs": v.pairs, "temporal_sum": v.temporal_sum, **v.sums}
                for vid, v in self._videos.items()}

    @classmethod
    def merge(cls, states: Iterable[Mapping[str, Mapping[str, Any]]]) -> "VideoMetrics":
        """One accumulator from several ranks' `state()` (a video seen on two ranks is summed)."""
        out = cls()
        for state in states:
            for vid, s in state.items():
                v = out._videos.setdefault(vid, _Video())
                v.frames += int(s["frames"])
                v.pairs += int(s["pairs"])
                v.temporal_sum += float(s["temporal_sum"])
                for k in _SUMS:
                    v.sums[k] += float(s[k])
        return out

    def per_video(self) -> list[dict[str, Any]]:
        """One dict per video (sorted by id): video_id, frames, pairs and every metric of METRICS."""
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
            rows.append(row)
        return rows

    def means(self) -> dict[str, float]:
        """Each metric averaged over videos (NaN entries, e.g. a gray video's ratio, left out)."""
        rows = self.per_video()
        out = {}
        for k in METRICS:
            values = [r[k] for r in rows if not math.isnan(r[k])]
            out[k] = sum(values) / len(values) if values else math.nan
        return out

    def results(self) -> dict[str, Any]:
        """{"videos": per_video(), "mean": means(), "num_videos", "num_frames"} (JSON-ready)."""
        rows = self.per_video()
        return {"videos": rows, "mean": self.means(), "num_videos": len(rows),
                "num_frames": sum(r["frames"] for r in rows)}
