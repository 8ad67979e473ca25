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
   from the original film, only chroma comes from the net.
4. A temporal model (ConvLSTM) runs its per-frame trunk on a whole batch at once, then its
   recurrent steps in order; its state is carried from one call to the next, so it runs across
   the entire film, never reset per batch. An ensemble (exp3) averages its members' distributions.
"""

from __future__ import annotations

import logging
import os
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F

from models.color import frames_to_l, lab_to_frames
from models.errors import VidcolorError
from models.model import NET_STRIDE, check_frame_size
from study.devices import autocast_dtype, resolve_device

log = logging.getLogger(__name__)


def working_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(w, h) the net sees for a width x height frame: short side ``size``, aspect kept, x8."""
    scale = size / min(width, height)

    def snap(v: float) -> int:
        return max(NET_STRIDE, int(round(v / NET_STRIDE)) * NET_STRIDE)

    return snap(width * scale), snap(height * scale)


class FilmInference:
    """Colorizes consecutive frames of one film, carrying a temporal model's state between calls.

    ``colorize(frames uint8 (N, H, W, 3)) -> uint8 (N, H, W, 3)``; call ``reset()`` between films.
    ``model`` is a `models.model.Predictor` (a VideoColorizer or an Ensemble with its bin centers).
    On CUDA the net runs under bf16 autocast (``amp=False`` turns that off); the annealed mean
    and the color conversion stay in float32.
    """

    def __init__(self, model: torch.nn.Module, *, temperature: float, size: int,
                 device: torch.device | str = "cpu", amp: bool = True):
        self.size = check_frame_size(size, "--size")
        if not temperature >= 0:
            raise VidcolorError(f"--temperature: must be >= 0, got {temperature!r}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.temperature = float(temperature)
        self.autocast = autocast_dtype(self.device, amp)  # bf16 on CUDA, None (float32) otherwise
        self.state = None

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike, device: str | None = None, size: int | None = None,
                        temperature: float | None = None, amp: bool = True) -> "FilmInference":
        """Load a checkpoint folder; the working size is ``size`` or the frame size it was trained at."""
        from models.checkpoint import load_checkpoint
        from study.remote import local_checkpoint

        path = checkpoint
        if size is not None:
            check_frame_size(size, "--size")  # before the (slow) load
        dev = resolve_device(device)
        with local_checkpoint(path) as folder:  # a URI (e.g. s3://, under Ray's storage) is fetched
            loaded = load_checkpoint(folder, device=dev)
        if size is None:
            size = loaded.frame_size
            if size is None:
                raise VidcolorError(f"{path}: the checkpoint does not record the frame size it was trained at "
                                    "(it predates frame_size); pass --size N with the training shard set's size")
        temp = loaded.config.temperature if temperature is None else temperature
        return cls(loaded.model, temperature=temp, size=size, device=dev, amp=amp)

    def reset(self) -> None:
        """Start a new film: forget the temporal state."""
        self.state = None

    @torch.inference_mode()
    def colorize(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) consecutive frames -> uint8 (N, H, W, 3) colorized, the input's L kept."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames (N, H, W, 3), got {frames.dtype} {frames.shape}")
        height, width = frames.shape[1:3]
        x = torch.from_numpy(frames).to(self.device, non_blocking=True)
        l_full = frames_to_l(x)  # (N, 1, H, W) normalized L; the input's own ab is never computed
        w, h = working_size(width, height, self.size)
        l_work = F.interpolate(l_full, size=(h, w), mode="bilinear", align_corners=False,
                               antialias=(h < height or w < width))  # (N, 1, h, w)
        amp = torch.autocast(self.device.type, dtype=self.autocast) if self.autocast else nullcontext()
        with amp:
            # one sequence of N frames: the trunk runs on all N at once, the ConvLSTM steps in order
            ab, self.state = self.model.predict_ab(l_work.unsqueeze(0), self.temperature, self.state,
                                                   size=(height, width))  # (1, N, 2, H, W) float32
        return lab_to_frames(l_full, ab[0]).cpu().numpy()  # (N, H, W, 3)
