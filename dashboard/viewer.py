"""Frame viewer helpers shared by the trial and compare pages: which clips a trial has media for,
and the gray / prediction / ground-truth frames of one clip (decoded from its mp4s, or its PNGs),
at the end of training or at an epoch (the frames a study with ``media_every`` renders while its
trials train)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from dashboard import data

ROLES = ("gray", "pred", "gt")  # the views of a clip; a media type is {role}_mp4 or {role}_png
LABELS = {"gray": "Gray input", "pred": "Prediction", "gt": "Ground truth"}


def epochs_of(media: pd.DataFrame, key=None) -> list[int]:
    """The epochs with predicted frames in `media` (epoch media), of one clip if `key` is given."""
    rows = media if key is None else _rows(media, key)
    rows = rows[rows["media_type"] == "pred_png"]
    return sorted({int(e) for e in rows["epoch"].dropna()})


def _numbered(rows: pd.DataFrame, role: str, numbers: list[int]) -> list | None:
    """One view's frames with these frame numbers (within the clip): from its mp4, else its PNGs;
    None unless every one is there."""
    mp4 = rows[rows["media_type"] == f"{role}_mp4"]
    decoded = data.frames_of(mp4["path"].iloc[0]) if len(mp4) else []
    if decoded and all(n < len(decoded) for n in numbers):
        return [decoded[n] for n in numbers]
    pngs = rows[rows["media_type"] == f"{role}_png"].dropna(subset=["frame"])
    by_number = {int(f): p for f, p in zip(pngs["frame"], pngs["path"]) if data.file_bytes(p) is not None}
    return [by_number[n] for n in numbers] if numbers and all(n in by_number for n in numbers) else None


def frames_at(final: pd.DataFrame, during: pd.DataFrame, key, epoch: int | None) -> tuple[dict, int | None]:
    """The frames of one clip at `epoch` (None: the final media) and the epoch they come from: the
    prediction of the last epoch up to `epoch` that rendered this clip (a trial stopped early
    shows its last), gray and ground truth of the same frame numbers from the final media, else
    from the epoch media."""
    if epoch is None:
        return clip_frames(final, key), None
    rows = _rows(during, key)
    have = [e for e in epochs_of(rows) if e <= epoch]
    if not have:
        return {}, None
    shown = have[-1]
    pred = rows[(rows["media_type"] == "pred_png") & (rows["epoch"] == shown)].sort_values("frame")
    pred = pred[[data.file_bytes(p) is not None for p in pred["path"]]]
    if pred.empty:
        return {}, None
    numbers = [int(f) for f in pred["frame"]]
    out = {"pred": list(pred["path"])}
    final_rows = _rows(final, key) if not final.empty else final
    for role in ("gray", "gt"):
        refs = _numbered(final_rows, role, numbers) if len(final_rows) else None
        if refs is None:
            mine = rows[rows["media_type"] == f"{role}_png"]
            refs = _numbered(mine[mine["epoch"] == mine["epoch"].min()], role, numbers) if len(mine) else None
        if refs is not None:
            out[role] = refs
    return {r: out[r] for r in ROLES if r in out}, shown


def epoch_label(epoch: int | None) -> str:
    return "end of training (best checkpoint)" if epoch is None else f"epoch {epoch}"


def clips_of(media: pd.DataFrame) -> list[tuple[str, int | None]]:
    """(video_id, clip) pairs that have any media, in a stable order."""
    if media.empty:
        return []
    keys = media[["video_id", "clip"]].drop_duplicates()
    return sorted(
        ((str(v), None if pd.isna(c) else int(c)) for v, c in keys.itertuples(index=False)),
        key=lambda k: (k[0], -1 if k[1] is None else k[1]),
    )


def clip_label(key: tuple[str, int | None]) -> str:
    return key[0] if key[1] is None else f"{key[0]} · clip {key[1]}"


def _rows(media: pd.DataFrame, key: tuple[str, int | None]) -> pd.DataFrame:
    vid, clip = key
    m = media[media["video_id"].astype(str) == vid]
    return m[m["clip"].isna()] if clip is None else m[m["clip"] == clip]


def clip_videos(media: pd.DataFrame, key) -> dict[str, str]:
    """role -> mp4 path for one clip."""
    rows = _rows(media, key)
    return {
        r: rows.loc[rows["media_type"] == f"{r}_mp4", "path"].iloc[0]
        for r in ROLES
        if (rows["media_type"] == f"{r}_mp4").any()
    }


def clip_frames(media: pd.DataFrame, key) -> dict[str, list[np.ndarray]]:
    """role -> list of RGB frames for one clip: decoded mp4 frames, else its PNG frames in order."""
    rows = _rows(media, key)
    out: dict[str, list[np.ndarray]] = {}
    for role in ROLES:
        mp4 = rows[rows["media_type"] == f"{role}_mp4"]
        frames = data.frames_of(mp4["path"].iloc[0]) if len(mp4) else []
        if not frames:
            pngs = rows[rows["media_type"] == f"{role}_png"].sort_values("frame")
            frames = [p for p in pngs["path"] if data.file_bytes(p) is not None]  # st.image takes paths
        if frames:
            out[role] = frames
    return out


#: the width (px) a small frame is scaled up to before it is shown
SHARP_WIDTH = 1024


def frame_array(frame: np.ndarray | str) -> np.ndarray:
    """A frame of `clip_frames` (an array, or a PNG path) as uint8 RGB (H, W, 3)."""
    if isinstance(frame, str):
        with Image.open(frame) as f:
            return np.asarray(f.convert("RGB"))
    return np.asarray(frame)


def sharp(frame: np.ndarray | str) -> np.ndarray | str:
    """A frame (array or image path) narrower than SHARP_WIDTH scaled up by a whole factor with
    nearest-neighbour, so the browser only ever scales it down: a 64 px frame shows its pixels as
    blocks instead of a blur. Larger frames are returned as they are."""
    img = Image.fromarray(frame_array(frame))
    k = -(-SHARP_WIDTH // img.width)  # ceil
    if k <= 1:
        return frame
    return np.asarray(img.resize((img.width * k, img.height * k), Image.NEAREST))
