"""`vidcolor ctt build|export`: make Color Turing Test items from trials, and export the results.

The test follows Zhang et al. 2016 (two-alternative forced choice: real vs colorized, side by side)
with the additions of DESIGN.md: attention checks (the real clip against an obviously wrong
recoloring, its channels rotated) and an optional 1-5 naturalness rating.

An item is a (real clip, colorized clip) pair, or with `--kind frame` a pair of PNG stills. Items
record their split and source video. On the test split the real side is the color original, so the
item works as a "which is real" pair (and, its colorized side alone, in the rating mode). Legacy
footage is black and white: a pair with it would be meaningless (the gray side is obviously not the
colored one), so legacy items are for the 1-5 rating mode only (`real_is_color` False in the store,
never drawn for a 2AFC vote). The colorized clips are the trials' rendered sample
media (``pred_mp4`` with its ``gt_mp4`` on the same clip, registered in the results store by the
media renderer); when a trial has none, they are rendered here from its checkpoint on the chosen
split of the shard set. Every clip is copied under a fresh random name (and remuxed with a random
container comment, so two copies of the same clip differ in bytes and in any content hash): nothing
in a file name, URL or byte digest tells real from colorized or names the trial.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.errors import VidcolorError
from study.ctt import stats as ctt_stats
from study.store import CTT_KINDS, Store

log = logging.getLogger(__name__)


# -- choosing trials and clips ---------------------------------------------------------------------


def choose_trials(trials: pd.DataFrame, mode: str, trial_ids: list[str] | None = None,
                  top: int | None = None) -> list[str]:
    """Trial ids for the test: the given ones, the `top` k by objective, or the best per experiment."""
    if trial_ids:
        unknown = sorted(set(trial_ids) - set(trials["trial_id"]))
        if unknown:
            raise VidcolorError(f"--trials: unknown trial id(s) {unknown}; the study has {sorted(trials['trial_id'])}")
        return list(trial_ids)
    scored = trials.dropna(subset=["objective"])
    scored = scored[scored["status"] != "ERROR"]
    if scored.empty:
        raise VidcolorError("no trial of the study has a value of its objective yet: nothing to test")
    scored = scored.sort_values("objective", ascending=(mode == "min"), kind="stable")
    if top is not None:
        if top < 1:
            raise VidcolorError(f"--top must be at least 1, got {top}")
        return list(scored["trial_id"].head(top))
    exp = scored["experiment"].fillna("(none)")
    return list(scored.groupby(exp, sort=True).head(1).sort_values("experiment")["trial_id"])


def media_pairs(media: pd.DataFrame, kind: str = "clip") -> list[dict[str, Any]]:
    """Real/colorized pairs from a trial's media table: for `kind="clip"` each clip with both gt_mp4
    and pred_mp4; for `kind="frame"` one still per clip (the stored frame nearest the clip's middle)
    with both gt_png and pred_png. Dicts with video_id, clip, frame (None for clips), real, fake."""
    if kind not in CTT_KINDS:
        raise VidcolorError(f"--kind must be one of {CTT_KINDS}, got {kind!r}")
    real_kind, fake_kind = ("gt_mp4", "pred_mp4") if kind == "clip" else ("gt_png", "pred_png")
    sel = media[media["kind"].isin((real_kind, fake_kind))]
    keys = ["video_id", "clip"] if kind == "clip" else ["video_id", "clip", "frame"]
    pairs: dict[tuple, dict[str, Any]] = {}
    for key, g in sel.groupby(keys, dropna=False, sort=True):
        paths = dict(zip(g["kind"], g["path"]))
        if real_kind in paths and fake_kind in paths:
            vid, clip = key[0], None if pd.isna(key[1]) else int(key[1])
            frame = None if kind == "clip" or pd.isna(key[2]) else int(key[2])
            pairs.setdefault((vid, clip), []).append(
                {"video_id": vid, "clip": clip, "frame": frame, "real": paths[real_kind], "fake": paths[fake_kind]})
    out = []
    for cands in pairs.values():
        if kind == "frame":  # the still nearest the middle of the clip's stored frames
            idx = sorted(c["frame"] or 0 for c in cands)
            mid = (idx[0] + idx[-1]) / 2
            cands = sorted(cands, key=lambda c: (abs((c["frame"] or 0) - mid), c["frame"] or 0))
        out.append(cands[0])
    return out


# -- media files -------------------------------------------------------------------------------------


def opaque_copy(src: str | Path, out_dir: Path) -> Path:
    """Copy an mp4 (remuxed, no re-encoding) or a PNG (re-saved, same pixels) under a random name
    with a random comment in it, so two copies of one file differ in bytes and name."""
    src = Path(src)
    if not src.is_file():
        raise VidcolorError(f"CTT media file {src} does not exist")
    if src.suffix.lower() == ".png":
        return write_png(read_png(src), out_dir)
    import av

    dst = out_dir / f"{secrets.token_hex(12)}.mp4"
    tmp = out_dir / f".{dst.name}.part"
    try:
        with av.open(str(src)) as inp, av.open(str(tmp), "w", format="mp4",
                                               options={"movflags": "+faststart"}) as out:
            out.metadata["comment"] = secrets.token_hex(8)
            s_in = inp.streams.video[0]
            s_out = out.add_stream_from_template(s_in)
            for packet in inp.demux(s_in):
                if packet.dts is None:
                    continue
                packet.stream = s_out
                out.mux(packet)
        tmp.rename(dst)
    except av.error.FFmpegError as exc:
        tmp.unlink(missing_ok=True)
        raise VidcolorError(f"cannot copy CTT media {src}: {exc}") from None
    return dst


def read_png(path: str | Path) -> np.ndarray:
    """An RGB still as uint8 (H, W, 3)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise VidcolorError(f"cannot read CTT still {path}: {exc}") from None


def write_png(frame: np.ndarray, out_dir: Path) -> Path:
    """Save an RGB still under a random name, with a random text chunk (no metadata of the source)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    dst = out_dir / f"{secrets.token_hex(12)}.png"
    tmp = out_dir / f".{dst.name}.part"
    meta = PngInfo()
    meta.add_text("Comment", secrets.token_hex(8))
    Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).save(tmp, format="PNG", pnginfo=meta)
    tmp.rename(dst)
    return dst


def wrong_recoloring(frame: np.ndarray) -> np.ndarray:
    """An obviously wrong recoloring for attention checks: channels rotated (R,G,B) -> (B,R,G),
    then the chroma doubled around the gray level (skin turns blue, skies turn red)."""
    rot = frame[..., [2, 0, 1]].astype(np.float32)
    gray = rot @ np.array([0.299, 0.587, 0.114], np.float32)
    return (gray[..., None] + 2.0 * (rot - gray[..., None])).clip(0, 255).astype(np.uint8)


def write_attention_clip(src: str | Path, out_dir: Path) -> Path:
    """A wrongly recolored copy of `src` (an mp4 or a PNG still; random name) for an attention check."""
    src = Path(src)
    if src.suffix.lower() == ".png":
        return write_png(wrong_recoloring(read_png(src)), out_dir)
    import av

    from study.media.video_out import VideoWriter

    dst = out_dir / f"{secrets.token_hex(12)}.mp4"
    try:
        with av.open(str(src)) as inp:
            stream = inp.streams.video[0]
            fps = stream.average_rate or stream.guessed_rate or 24
            frames = [f.to_ndarray(format="rgb24") for f in inp.decode(stream)]
    except av.error.FFmpegError as exc:
        raise VidcolorError(f"cannot decode CTT media {src}: {exc}") from None
    if not frames:
        raise VidcolorError(f"CTT media {src} has no frames")
    h, w = frames[0].shape[:2]
    with VideoWriter(dst, fps, w, h) as writer:
        for f in frames:
            writer.write(wrong_recoloring(f))
    return dst


def render_trial_clips(checkpoint: str, shards: str, split: str, clips: int,
                       kind: str = "clip") -> tuple[list[dict[str, Any]], Path]:
    """Render `clips` clips of `split` at a trial's checkpoint (study.media.samples) into a temporary folder:
    the pairs of `media_pairs` (mp4s, or PNG stills for `kind="frame"`) and the folder. On the
    legacy split the "real" side is the black-and-white original. The caller copies them away and
    removes the folder."""
    import tempfile

    from study.media.samples import render_samples

    tmp = Path(tempfile.mkdtemp(prefix="vidcolor-ctt-"))
    files = render_samples(checkpoint, shards, tmp, split=split, clips=clips, png=(kind == "frame"))
    media = pd.DataFrame([{"kind": f.kind, "path": f.path, "video_id": f.video_id, "clip": f.clip,
                           "frame": getattr(f, "frame", None)} for f in files])
    return media_pairs(media, kind), tmp


def video_sources(shards: str | None) -> dict[str, str]:
    """video id -> its source (file name) from a local shard set's manifest.json; {} otherwise."""
    manifest = Path(str(shards)) / "manifest.json" if shards else None
    if manifest is None or not manifest.is_file():
        return {}
    try:
        videos = json.loads(manifest.read_text()).get("videos") or []
    except (OSError, ValueError) as exc:
        raise VidcolorError(f"cannot read {manifest}: {exc}") from None
    return {str(v["id"]): str(v.get("source")) for v in videos if isinstance(v, dict) and "id" in v}


# -- building items ----------------------------------------------------------------------------------


def default_out(store: Store, study: str) -> Path:
    from sqlalchemy.engine import make_url

    u = make_url(store.url)
    base = Path(u.database).parent if store.is_sqlite and u.database not in (None, "", ":memory:") else Path.cwd()
    return base / "ctt_media" / study


def build_items(store: Store, study: str, *, trial_ids: list[str] | None = None, top: int | None = None,
                clips: int = 8, attention_rate: float = 0.1, out: str | Path | None = None,
                shards: str | None = None, split: str = "test", kind: str = "clip",
                seed: int | None = None) -> pd.DataFrame:
    """Make the CTT items of a study; returns one row per item (uid, trial_id, is_attention, split,
    real_is_color).

    `split="test"`: "which is real" pairs (the color original and the trial's colorization), also
    shown in the rating mode. `split="legacy"`: the originals are black and white, so the items are
    for the 1-5 rating mode only (the colorized clip alone; `real_is_color` False), and their
    attention checks are wrong recolorings of a colorized clip. `kind="frame"`: PNG stills (one per
    clip) instead of mp4 clips.
    """
    if split not in ("test", "legacy"):
        raise VidcolorError(f"--split must be test or legacy, got {split!r}")
    if kind not in CTT_KINDS:
        raise VidcolorError(f"--kind must be one of {CTT_KINDS}, got {kind!r}")
    if not 0 <= attention_rate < 1:
        raise VidcolorError(f"--attention-rate must be in [0, 1), got {attention_rate}")
    if clips < 1:
        raise VidcolorError(f"--clips must be at least 1, got {clips}")
    st = store.get_study(study)
    if st is None:
        raise VidcolorError(f"no study named {study!r} in {store.display_url}")
    out_dir = Path(out) if out else default_out(store, study)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    trials = store.trials(study)
    chosen = choose_trials(trials, st["mode"], trial_ids, top)
    by_id = trials.set_index("trial_id")
    real_is_color = split != "legacy"
    items: list[dict[str, Any]] = []
    from tqdm import tqdm

    shard_loc = shards or st.get("shards")
    sources = video_sources(shard_loc)
    for tid in tqdm(chosen, desc="CTT items", unit="trial", disable=None):
        ckpt = by_id.loc[tid, "checkpoint"]
        can_render = bool(ckpt) and Path(str(ckpt)).is_dir() and bool(shard_loc) and Path(str(shard_loc)).exists()
        item_split = split
        if can_render:
            pairs, staged = render_trial_clips(str(ckpt), str(shard_loc), split, clips, kind)
        elif split == "test":
            pairs, staged, item_split = media_pairs(store.media(study, tid), kind), None, "val"
            if not pairs:
                want = "pred_mp4 + gt_mp4" if kind == "clip" else "pred_png + gt_png"
                raise VidcolorError(
                    f"trial {tid}: no checkpoint and shard set to render test clips from "
                    f"(checkpoint={ckpt!r}, shards={shard_loc!r}) and no rendered sample media ({want})")
            log.warning("trial %s: no checkpoint + shard set to render test clips; using its %d rendered "
                        "sample %ss (validation split)", tid, len(pairs), kind)
        else:
            raise VidcolorError(f"trial {tid}: legacy clips are rendered from the checkpoint, and "
                                f"checkpoint={ckpt!r}, shards={shard_loc!r} is not usable")
        for pair in pairs[:clips]:
            items.append({"trial_id": tid, "real_path": str(opaque_copy(pair["real"], out_dir)),
                          "fake_path": str(opaque_copy(pair["fake"], out_dir)), "kind": kind,
                          "video_id": pair["video_id"], "clip": pair["clip"], "frame": pair["frame"],
                          "split": item_split, "source": sources.get(str(pair["video_id"])),
                          "real_is_color": real_is_color, "is_attention": False})
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)
    regular = list(items)
    n_att = int(round(attention_rate * len(items) / (1 - attention_rate))) if attention_rate > 0 else 0
    if attention_rate > 0 and items:
        n_att = max(1, n_att)
    picks = rng.sample(regular, k=min(n_att, len(regular))) + rng.choices(regular, k=max(0, n_att - len(regular)))
    for base in picks:
        # a color original is recolored wrongly; a black-and-white one has no colors, so the
        # colorized side is (the check then asks for a low naturalness rating)
        src = base["real_path"] if real_is_color else base["fake_path"]
        items.append({"trial_id": None, "real_path": str(opaque_copy(base["real_path"], out_dir)),
                      "fake_path": str(write_attention_clip(src, out_dir)), "kind": kind,
                      "video_id": None, "clip": None, "frame": None, "split": base["split"], "source": None,
                      "real_is_color": real_is_color, "is_attention": True})
    rng.shuffle(items)
    uids = store.add_ctt_items(study, items)
    log.info("%d CTT %s items (%d attention checks, split %s) for study %s in %s",
             len(uids), kind, n_att, split, study, out_dir)
    return pd.DataFrame({"uid": uids, "trial_id": [i["trial_id"] for i in items],
                         "is_attention": [i["is_attention"] for i in items],
                         "split": [i["split"] for i in items],
                         "real_is_color": [i["real_is_color"] for i in items]})


def _study_name(store: Store, name: str | None) -> str:
    if name:
        if store.get_study(name) is None:
            raise VidcolorError(f"no study named {name!r} in {store.display_url}")
        return name
    latest = store.latest_study()
    if latest is None:
        raise VidcolorError(f"the results database {store.display_url} holds no study")
    return latest["name"]


def main_build(args) -> int:
    store = Store(args.db)
    study = _study_name(store, args.study)
    trial_ids = [t.strip() for t in args.trials.split(",") if t.strip()] if args.trials else None
    items = build_items(store, study, trial_ids=trial_ids, top=args.top, clips=args.clips,
                        attention_rate=args.attention_rate, out=args.out, shards=args.shards, split=args.split,
                        kind=getattr(args, "kind", "clip"))
    table = (items.assign(trial_id=items["trial_id"].fillna("(attention check)"))
             .groupby(["trial_id", "split"]).size().rename("items").reset_index())
    task = "which-is-real pairs and ratings" if args.split != "legacy" else "1-5 naturalness rating only"
    print(f"study {study}: {len(items)} CTT {getattr(args, 'kind', 'clip')} items ({task})")
    print(table.to_string(index=False))
    return 0


# -- results -----------------------------------------------------------------------------------------


def results(store: Store, study: str, exclude_failed: bool = False) -> pd.DataFrame:
    """Per trial and per experiment CTT results (column `level`), as the dashboard shows them."""
    votes = ctt_stats.votes_from_store(store.votes(study))
    parts = []
    for level in ("trial", "experiment"):
        agg = ctt_stats.aggregate(votes, by=level, exclude_failed=exclude_failed)
        agg = agg.rename(columns={level: "name"})
        agg.insert(0, "level", level)
        parts.append(agg)
    return pd.concat(parts, ignore_index=True)


def main_export(args) -> int:
    store = Store(args.db)
    study = _study_name(store, args.study)
    res = results(store, study, exclude_failed=args.exclude_failed)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        res.to_csv(args.out, index=False)
        print(f"wrote {len(res)} rows to {args.out}")
        return 0
    if res.empty:
        print(f"study {study}: no CTT votes yet")
        return 0
    show = res[["level", "name", "votes", "fooling_rate", "fool_lo", "fool_hi", "ratings", "mean_rating",
                "raters", "attention_failures"]]
    print(f"study {study}: Color Turing Test{' (raters who failed attention checks excluded)' if args.exclude_failed else ''}")
    print(show.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0
