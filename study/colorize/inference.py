"""The model at work on a film's frames: full-resolution L in, colorized RGB frames out.

The method is the seed paper's ("Automatic Colorization of Videos", after Zhang et al. 2016): the
network sees only the lightness L and predicts a distribution over quantized ab colors, decoded
by the annealed mean (`Predictor.predict_ab`, the one decode path shared with evaluation).

1. Each frame's L is taken at full resolution (a color input is thereby turned gray).
2. For the network, L is resized (antialiased) so that its **short side is the working size**
   (the frame size the checkpoint was trained at, or ``--size``), keeping the aspect ratio; both
   sides are rounded to a multiple of 8 (the net's stride). The model was trained on square
   crops of frames whose short side had been scaled to that size, so this keeps objects at the
   scale it learned and never distorts them; squashing a 16:9 frame into a square would (a
   stretched face gets the colors of a wider thing), and cropping would leave the borders
   without colors.
3. The predicted ab is upsampled bilinearly to full resolution and joined with the original
   full-resolution L; Lab -> RGB gives the output frame. Detail and sharpness therefore come
   from the original film, only chroma comes from the net. On the CPU this full-resolution work
   is done one frame at a time, however large the batch: a batch of 720p float planes is
   hundreds of MB, and allocating, faulting in and streaming those through the cache made a
   batch of 16 slower per frame than one frame at a time. The net itself runs on a few frames
   per call on the CPU (`CPU_NET_PIXELS`), on the whole batch on a GPU.
   That work is done with OpenCV in buffers reused from frame to frame (`CpuFrames`: the sRGB
   table and Y through ``cv2.LUT``/``cv2.transform``, bilinear ab upsampling, Lab -> RGB), about
   4x the torch arithmetic per 720p frame; its L equals `models.color.frames_to_l`'s to 1e-4 and
   its RGB is within one uint8 level of `models.color.lab_to_frames`, which the GPU path and
   evaluation use.
4. A temporal model (ConvLSTM) runs its per-frame trunk on a whole batch at once, then its
   recurrent steps in order; its state is carried from one call to the next, so it runs across
   the entire film, never reset per batch. An ensemble (exp3) averages its members' distributions.
5. ``--stabilize`` (`models.stabilize.Stabilizer`, off by default) filters the predicted ab over
   time at the working size, between steps 2 and 3: the coarse ab is upsampled to the net's input
   size, filtered with the flow of the net's own gray input (its L as 8-bit gray), and then
   upsampled to full resolution as in step 3. At the working size, not at the output size,
   because the chroma has no more detail than the net gives it (its logits are at a quarter of
   that size), while optical flow on a 1080p frame would cost many times the flow at 456x256 for
   the same colors; at the coarse logits' size the flow would see too little texture. The filter
   keeps one frame of state across the whole film (reset only by `reset`, or by the cuts it finds)
   and sees only ab, so it works the same for any checkpoint (ensembles, imported ECCV16).
"""

from __future__ import annotations

import logging
import os
from contextlib import nullcontext
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from models.color import _EPS, _KAPPA, _RGB_TO_XYZ, _linear_lut, denormalize_l, frames_to_l, lab_to_frames, normalize_l
from models.errors import VidcolorError
from models.gamut import check_temperature
from models.model import NET_STRIDE, check_frame_size, upsample_ab
from models.stabilize import Stabilizer, check_strength
from study.devices import autocast_dtype, resolve_device

log = logging.getLogger(__name__)


# Net input pixels per call on the CPU: at a 456x256 working size 4 frames per call ran 1.3x the
# frames/s of 1 and 1.45x that of 16, whose activations (~0.5 GB) no longer stay in cache.
CPU_NET_PIXELS = 480_000


def working_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(w, h) the net sees for a width x height frame: short side ``size``, aspect kept, x8."""
    scale = size / min(width, height)

    def snap(v: float) -> int:
        return max(NET_STRIDE, int(round(v / NET_STRIDE)) * NET_STRIDE)

    return snap(width * scale), snap(height * scale)


@dataclass
class Prepared:
    """`FilmInference.prepare`'s output for N frames: ``l_full`` their full-resolution L (a list
    of (H, W) float32 arrays on the CPU, an (N, 1, H, W) tensor on a GPU), ``l_work`` the net's
    input (N, 1, h, w), ``net_size`` (h, w), ``frame_size`` (H, W)."""

    l_full: list[np.ndarray] | torch.Tensor
    l_work: torch.Tensor
    net_size: tuple[int, int]
    frame_size: tuple[int, int]


class FilmInference:
    """Colorizes consecutive frames of one film, carrying a temporal model's state between calls.

    ``colorize(frames uint8 (N, H, W, 3)) -> uint8 (N, H, W, 3)``; call ``reset()`` between films.
    ``model`` is a `models.model.Predictor` (a VideoColorizer or an Ensemble with its bin centers).
    On CUDA the net runs under bf16 autocast (``amp=False`` turns that off); the annealed mean
    and the color conversion stay in float32. ``stabilize``: the strength of the temporal filter of
    step 5 of the module docstring (None: off).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        temperature: float,
        size: int,
        device: torch.device | str = "cpu",
        amp: bool = True,
        stabilize: float | None = None,
    ):
        self.size = check_frame_size(size, "--size")
        self.temperature = check_temperature(temperature)
        self.stabilizer = None if stabilize is None else Stabilizer(check_strength(stabilize, "--stabilize"))
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        if self.device.type == "cpu":  # oneDNN's convolutions: 1.1x the frames/s of NCHW weights here
            self.model = self.model.to(memory_format=torch.channels_last)
        self.autocast = autocast_dtype(self.device, amp)  # bf16 on CUDA, None (float32) otherwise
        self.state = None
        self.cpu_frames = CpuFrames()

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | os.PathLike,
        device: str | None = None,
        size: int | None = None,
        temperature: float | None = None,
        amp: bool = True,
        stabilize: float | None = None,
    ) -> FilmInference:
        """Load a checkpoint folder; the working size is ``size`` or the frame size it was trained at."""
        from models.checkpoint import load_checkpoint
        from study.remote import local_checkpoint

        path = checkpoint
        if size is not None:
            check_frame_size(size, "--size")  # before the (slow) load
        if stabilize is not None:
            check_strength(stabilize, "--stabilize")
        dev = resolve_device(device)
        with local_checkpoint(path) as folder:  # a URI (e.g. s3://, under Ray's storage) is fetched
            loaded = load_checkpoint(folder, device=dev)
        if size is None:
            size = loaded.frame_size
            if size is None:
                raise VidcolorError(
                    f"{path}: the checkpoint does not record the frame size it was trained at "
                    "(it predates frame_size); pass --size N with the training shard set's size"
                )
        temp = loaded.config.temperature if temperature is None else temperature
        return cls(loaded.model, temperature=temp, size=size, device=dev, amp=amp, stabilize=stabilize)

    def reset(self) -> None:
        """Start a new film: forget the temporal state (the model's and the stabilizer's)."""
        self.state = None
        if self.stabilizer is not None:
            self.stabilizer.reset()

    @torch.inference_mode()
    def colorize(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) consecutive frames -> uint8 (N, H, W, 3) colorized, the input's L kept."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames (N, H, W, 3), got {frames.dtype} {frames.shape}")
        # on the CPU a few frames at a time through all three stages: the net takes no more per call,
        # and 16 frames' full-resolution planes (60 MB at 720p) would leave the cache between stages
        step = self.frames_per_step(frames.shape[2], frames.shape[1], len(frames))
        parts = []
        for i in range(0, len(frames), max(1, step)):
            prepared = self.prepare(frames[i : i + step])
            parts.append(self.finish(prepared, self.predict(prepared)))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def frames_per_step(self, width: int, height: int, batch_size: int) -> int:
        """Frames a pipeline hands from stage to stage for width x height frames: ``batch_size``, on
        the CPU at most what the net takes per call there. The net runs those few frames at a time
        whatever the batch, so larger steps would only make the pipeline fill and drain longer
        (720p on 2 cores: steps of 4 frames ran 1.1x steps of 16, end to end)."""
        if self.device.type != "cpu":
            return batch_size
        w, h = working_size(width, height, self.size)
        return max(1, min(batch_size, self._net_frames(h, w)))

    @staticmethod
    def _net_frames(h: int, w: int) -> int:
        return max(1, CPU_NET_PIXELS // (h * w))

    # The three stages of `colorize`, for a pipeline that runs them in different threads
    # (`study.colorize.pipeline`): `prepare` and `finish` hold no state between calls (each
    # caller passes its own `CpuFrames`), `predict` carries the temporal state and must see the
    # film's frames in order.

    @torch.inference_mode()
    def prepare(self, frames: np.ndarray, cpu_frames: CpuFrames | None = None) -> Prepared:
        """Steps 1-2: uint8 (N, H, W, 3) frames -> their full-resolution L and the net's input."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames (N, H, W, 3), got {frames.dtype} {frames.shape}")
        height, width = frames.shape[1:3]
        w, h = working_size(width, height, self.size)
        antialias = h < height or w < width
        if self.device.type == "cpu":  # full resolution a frame at a time (see the module docstring)
            cpu_frames = cpu_frames or self.cpu_frames
            l_full = [cpu_frames.lightness(f) for f in frames]  # L in [0, 100], (H, W) float32 each
            l_work = torch.stack(
                [
                    F.interpolate(
                        normalize_l(torch.from_numpy(l))[None, None],
                        size=(h, w),
                        mode="bilinear",
                        align_corners=False,
                        antialias=antialias,
                    )[0]
                    for l in l_full
                ]
            )  # (N, 1, h, w)
        else:
            l_full = frames_to_l(torch.from_numpy(frames).to(self.device, non_blocking=True))  # (N, 1, H, W)
            l_work = F.interpolate(l_full, size=(h, w), mode="bilinear", align_corners=False, antialias=antialias)
        return Prepared(l_full, l_work, (h, w), (height, width))

    @torch.inference_mode()
    def predict(self, prepared: Prepared) -> torch.Tensor:
        """Steps 3-5 up to the coarse ab: the net (and ``--stabilize``) on the next frames of the film."""
        amp = torch.autocast(self.device.type, dtype=self.autocast) if self.autocast else nullcontext()
        h, w = prepared.net_size
        # one sequence of N frames, the state carried from call to call (so any split of it gives
        # the same colors); on the CPU in runs of about CPU_NET_PIXELS, the net's best speed per frame
        chunk = self._net_frames(h, w) if self.device.type == "cpu" else len(prepared.l_work)
        parts = []
        with amp:
            for part in prepared.l_work.split(chunk):
                coarse, self.state = self.model.predict_ab_coarse(part.unsqueeze(0), self.temperature, self.state)
                parts.append(coarse[0])
        coarse = torch.cat(parts)  # (N, 2, h/4, w/4) float32
        if self.stabilizer is not None:  # (N, 2, h, w) from here on: upsampling below takes any size
            coarse = self._stabilize(prepared.l_work, coarse, (h, w))
        return coarse

    @torch.inference_mode()
    def finish(self, prepared: Prepared, coarse: torch.Tensor, cpu_frames: CpuFrames | None = None) -> np.ndarray:
        """Step 3's end: the coarse ab upsampled, joined with the full-resolution L -> uint8 RGB frames."""
        height, width = prepared.frame_size
        if self.device.type != "cpu":
            return lab_to_frames(prepared.l_full, upsample_ab(coarse, prepared.net_size, (height, width))).cpu().numpy()
        cpu_frames = cpu_frames or self.cpu_frames
        out = np.empty((len(prepared.l_full), height, width, 3), np.uint8)
        for i, l in enumerate(prepared.l_full):
            cpu_frames.colorize(l, coarse[i].numpy(), prepared.net_size, out[i])
        return out

    def _stabilize(self, l_work: torch.Tensor, coarse: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The net's ab (N, 2, h/4, w/4) -> filtered ab (N, 2, h, w) at the working size (step 5)."""
        gray = (denormalize_l(l_work[:, 0]) * (255.0 / 100.0)).round().clamp(0, 255).to(torch.uint8).cpu()
        ab = upsample_ab(coarse, size).cpu()
        return torch.stack([self.stabilizer.step(g, a) for g, a in zip(gray, ab)]).to(coarse.device)


class CpuFrames:
    """Full-resolution color work on the CPU for one frame at a time, with OpenCV, in buffers kept
    from frame to frame (same-size frames reuse them: no allocation, no page faults)."""

    def __init__(self) -> None:
        linear = _linear_lut(torch.device("cpu")).numpy()
        self._linear3 = np.repeat(linear[None, :, None], 3, axis=2)  # (1, 256, 3): the sRGB curve per channel
        self._y_row = np.array([_RGB_TO_XYZ[1]], np.float32)  # (1, 3): linear RGB -> Y (Y_white = 1)
        self._size: tuple[int, int] | None = None

    def _buffers(self, height: int, width: int) -> None:
        if self._size != (height, width):
            self._size = (height, width)
            self._rgb_f = np.empty((height, width, 3), np.float32)
            self._lab = np.empty((height, width, 3), np.float32)

    def lightness(self, frame: np.ndarray) -> np.ndarray:
        """uint8 RGB (H, W, 3) -> L (H, W) float32 in [0, 100] (CIE: the cube root above epsilon)."""
        self._buffers(*frame.shape[:2])
        cv2.LUT(np.ascontiguousarray(frame), self._linear3, dst=self._rgb_f)
        y = cv2.transform(self._rgb_f, self._y_row)  # (H, W)
        l = np.cbrt(y)
        l *= 116.0
        l -= 16.0
        low = y <= _EPS
        if low.any():
            l[low] = _KAPPA * y[low]
        return l

    def colorize(self, l: np.ndarray, coarse_ab: np.ndarray, net_size: tuple[int, int], out: np.ndarray) -> None:
        """L (H, W) and the net's coarse ab (2, h', w') for a net input of ``net_size`` = (h, w)
        -> sRGB uint8 (H, W, 3) into ``out``: ab upsampled bilinearly as `upsample_ab` does, then
        Lab -> RGB (D65, the sRGB curve, out-of-gamut colors clipped)."""
        height, width = l.shape
        self._buffers(height, width)
        h, w = net_size
        full_w, full_h = round(width * (w + (-w) % NET_STRIDE) / w), round(height * (h + (-h) % NET_STRIDE) / h)
        planes = [cv2.resize(c, (full_w, full_h), interpolation=cv2.INTER_LINEAR)[:height, :width] for c in coarse_ab]
        cv2.merge([l, *(np.ascontiguousarray(p) for p in planes)], dst=self._lab)
        cv2.cvtColor(self._lab, cv2.COLOR_Lab2RGB, dst=self._rgb_f)  # float32 in about [0, 1]
        np.clip(self._rgb_f, 0.0, 1.0, out=self._rgb_f)
        cv2.convertScaleAbs(self._rgb_f, dst=out, alpha=255.0)
