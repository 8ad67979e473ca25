"""`vidcolor demo-data`: small deterministic H.264 color videos (and one black-and-white clip).

The scenes are built so that a small colorizer *can* learn their colors from luminance and
texture alone, as the seed paper's model must: every material class has its own texture, its own
hue and its own brightness (sky is smooth light blue, grass is noisy green, bricks are dark red,
and so on). Textured objects move over a two-material background while the camera pans. One
extra clip (``bw_000.mp4``) is rendered the same way and then desaturated: it stands in for a
legacy black-and-white film and must land in the shard set's ``legacy`` split.

``--out`` is the command's own folder: one that is not empty is refused before anything is
rendered, unless ``--overwrite``, which replaces a folder of earlier demo videos whole (never a
folder without ``bw_000.mp4``), so no video of another run or of yours is ever mixed in.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from data_shards import outdir
from models.errors import VidcolorError

log = logging.getLogger(__name__)

MIN_SIZE, MAX_SIZE = 16, 4096  # --size, px (the height)
SCENE_BUDGET_MIB = 1024  # the frames of one video, rendered whole before encoding
BW_NAME = "bw_000.mp4"  # the black-and-white clip, written last: every finished demo folder has it

_TILE = 128  # texture tiles repeat every _TILE pixels


@dataclass(frozen=True)
class Material:
    name: str
    rgb: tuple[int, int, int]  # mean color; texture modulates brightness around it
    texture: str


# Distinct hue, brightness and texture per class (luminance differs, so gray alone is informative).
MATERIALS = {
    "sky": Material("sky", (120, 170, 240), "smooth"),
    "grass": Material("grass", (60, 140, 45), "noise"),
    "sand": Material("sand", (230, 205, 130), "stipple"),
    "brick": Material("brick", (150, 50, 35), "bricks"),
    "plum": Material("plum", (125, 55, 160), "stripes"),
    "teal": Material("teal", (30, 165, 160), "checker"),
    "orange": Material("orange", (250, 175, 40), "dots"),
}
GROUNDS = ("grass", "sand")
OBJECTS = ("brick", "plum", "teal", "orange")


def _textures() -> dict[str, np.ndarray]:
    """One fixed float32 (_TILE, _TILE) brightness tile per texture (same in every video)."""
    rng = np.random.RandomState(1234)
    y, x = np.mgrid[0:_TILE, 0:_TILE].astype(np.float32)
    noise = rng.rand(_TILE, _TILE).astype(np.float32)
    blurred = (noise + np.roll(noise, 1, 0) + np.roll(noise, 1, 1) + np.roll(noise, (1, 1), (0, 1))) / 4
    brick_row = (y // 8).astype(int)
    mortar = ((y % 8) < 1) | (((x + 8 * (brick_row % 2)) % 16) < 1)
    return {
        "smooth": 0.92 + 0.08 * np.sin(2 * np.pi * y / _TILE),
        "noise": 0.65 + 0.6 * blurred,
        "stipple": 0.9 + 0.15 * (rng.rand(_TILE, _TILE) > 0.8),
        "bricks": np.where(mortar, 0.55, 1.0 + 0.1 * (noise - 0.5)),
        "stripes": 0.75 + 0.3 * np.sin(2 * np.pi * (x + y) / 8.0),
        "checker": np.where(((x // 8) + (y // 8)) % 2 == 0, 1.05, 0.7),
        "dots": np.where(((x % 8) - 4) ** 2 + ((y % 8) - 4) ** 2 < 6, 0.65, 1.05),
    }


def _paint(tex: np.ndarray, material: Material, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Material color at texture coordinates (ys, xs) -> float32 (..., 3) in 0..255."""
    brightness = tex[ys % _TILE, xs % _TILE]
    return brightness[..., None] * np.asarray(material.rgb, np.float32)


def _reflect(v: float, limit: int) -> float:
    m = v % (2 * limit)
    return m if m < limit else 2 * limit - m


def render_scene(rng: np.random.RandomState, frames: int, height: int, width: int) -> np.ndarray:
    """One scene: uint8 (frames, height, width, 3) RGB."""
    tex = _textures()
    ground = MATERIALS[GROUNDS[rng.randint(len(GROUNDS))]]
    horizon = int(height * rng.uniform(0.35, 0.6))
    pan = rng.uniform(0.8, 2.5) * rng.choice([-1, 1])  # camera pan in px/frame
    n_obj = rng.randint(2, 4)
    objects = []
    for _ in range(n_obj):
        objects.append(
            dict(
                material=MATERIALS[OBJECTS[rng.randint(len(OBJECTS))]],
                shape=rng.choice(["disc", "box"]),
                r=rng.uniform(0.12, 0.22) * height,
                pos=np.array([rng.uniform(0.2, 0.8) * height, rng.uniform(0.1, 0.9) * width]),
                vel=np.array([rng.uniform(-1.5, 1.5), rng.uniform(-2.5, 2.5)]),
            )
        )
    ys, xs = np.mgrid[0:height, 0:width]
    sky_px = _paint(tex["smooth"], MATERIALS["sky"], ys, xs)  # the sky does not move with the pan
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        shift = int(round(pan * t))
        img = np.where((ys < horizon)[..., None], sky_px, _paint(tex[ground.texture], ground, ys, xs + shift))
        for obj in objects:
            cy, cx = obj["pos"] + obj["vel"] * t
            # bounce inside the frame
            cy, cx = _reflect(cy, height), _reflect(cx, width)
            dy, dx = ys - cy, xs - cx
            r = obj["r"]
            mask = dy**2 + dx**2 < r**2 if obj["shape"] == "disc" else (abs(dy) < r) & (abs(dx) < r * 1.3)
            # texture is fixed to the object, so it moves with it
            color = _paint(
                tex[obj["material"].texture], obj["material"], (dy + 1000).astype(int), (dx + 1000).astype(int)
            )
            img = np.where(mask[..., None], color, img)
        out[t] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def to_gray(frames: np.ndarray) -> np.ndarray:
    """RGB -> equal-channel gray (Rec. 601 luma), same shape."""
    luma = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def encode_h264(path: str | Path, frames: np.ndarray, fps: int, crf: int = 16) -> None:
    """Write uint8 (T, H, W, 3) frames as a browser-playable H.264 yuv420p mp4 (atomic rename)."""
    path = Path(path)
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise VidcolorError(f"{path}: H.264 yuv420p needs even frame sizes, got {w}x{h}")
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
        stream.codec_context.thread_count = 1  # bit-identical output run to run
        for i, frame in enumerate(frames):
            vframe = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
            vframe.pts = i  # explicit timestamps keep the encoder's rate control repeatable
            for packet in stream.encode(vframe):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)


def make_demo_videos(
    out: str | Path,
    videos: int = 8,
    seconds: float = 4.0,
    size: int = 96,
    fps: int = 12,
    seed: int = 0,
    *,
    overwrite: bool = False,
) -> list[Path]:
    """Write ``videos`` color scenes ``scene_NNN.mp4`` and one ``bw_000.mp4`` into the folder
    ``out``; returns their paths. ``out`` must be new or empty (`data_shards.outdir.check_folder`,
    checked before anything is rendered); with ``overwrite`` a folder of earlier demo videos
    (one holding ``bw_000.mp4``) is replaced whole, once the new videos are all written."""
    if videos < 1:
        raise VidcolorError(f"--videos must be at least 1, got {videos}")
    if not (seconds > 0 and math.isfinite(seconds)):  # NaN and inf fail this too
        raise VidcolorError(f"--seconds must be a positive finite number, got {seconds}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise VidcolorError(f"--size must be {MIN_SIZE} to {MAX_SIZE} px, got {size}")
    if fps < 1:
        raise VidcolorError(f"--fps must be at least 1, got {fps}")
    if not 0 <= seed < 2**32:
        raise VidcolorError(f"--seed must be 0 to {2**32 - 1}, got {seed}")
    height = size + size % 2
    width = int(round(height * 4 / 3 / 2)) * 2
    frames = max(1.0, seconds * fps)  # a float: 1e300 s at 1e9 fps is inf, not an int
    mib = frames * height * width * 3 / 2**20  # one scene is rendered whole, as uint8 RGB frames
    if mib > SCENE_BUDGET_MIB:
        raise VidcolorError(
            f"--seconds {seconds:g} at --fps {fps} and --size {size}: a video of {frames:g} frames of "
            f"{width}x{height} px takes {mib:,.0f} MiB, over the {SCENE_BUDGET_MIB} MiB limit per video"
        )
    n_frames = max(1, int(round(frames)))
    out = outdir.check_folder(out, "--out", overwrite, holds=(BW_NAME,), what="demo videos")
    names = []
    with outdir.replace_folder(out) as folder:
        for i in range(videos + 1):
            rng = np.random.RandomState([seed, i])
            frames = render_scene(rng, n_frames, height, width)
            if i == videos:
                name, frames = BW_NAME, to_gray(frames)
            else:
                name = f"scene_{i:03d}.mp4"
            try:
                encode_h264(folder / name, frames, fps)
            except OSError as exc:
                raise VidcolorError(f"{out / name}: cannot write ({exc.strerror or exc})") from None
            log.debug("wrote %s (%d frames)", out / name, n_frames)
            names.append(name)
    return [out / name for name in names]


def main(args: argparse.Namespace) -> int:
    paths = make_demo_videos(
        args.out, args.videos, args.seconds, args.size, args.fps, args.seed, overwrite=args.overwrite
    )
    n_frames = max(1, int(round(args.seconds * args.fps)))
    print(f"{'video':<16} {'frames':>6} {'fps':>4}  kind")
    for p in paths:
        print(f"{p.name:<16} {n_frames:>6} {args.fps:>4}  {'black-and-white' if p.name.startswith('bw_') else 'color'}")
    print(f"{len(paths)} videos in {args.out}")
    return 0
