"""`vidcolor ctt build|export`: make Color Turing Test items from trials, and export the results.

The test follows Zhang et al. 2016 (two-alternative forced choice: real vs colorized, side by side)
with the additions of DESIGN.md: attention checks (the real clip against an obviously wrong
recoloring, its channels rotated) and an optional 1-5 naturalness rating.

An item is a (real clip, colorized clip) pair. The colorized clips are the trials' rendered sample
media (``pred_mp4`` with its ``gt_mp4`` on the same clip, registered in the results store by the
media renderer); when a trial has none, they are rendered here from its checkpoint on the chosen
split of the shard set. Every clip is copied under a fresh random name (and remuxed with a random
container comment, so two copies of the same clip differ in bytes and in any content hash): nothing
in a file name, URL or byte digest tells real from colorized or names the trial.
"""

from __future__ import annotations

import logging
import random
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.errors import VidcolorError
from study import ctt_stats
from study.store import Store

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


def media_pairs(media: pd.DataFrame) -> list[tuple[str, int | None, str, str]]:
    """(video_id, clip, real mp4, colorized mp4) for each clip with both gt_mp4 and pred_mp4."""
    out = []
    mp4 = media[media["kind"].isin(("gt_mp4", "pred_mp4"))]
    for (vid, clip), g in mp4.groupby(["video_id", "clip"], dropna=False, sort=True):
        kinds = dict(zip(g["kind"], g["path"]))
        if "gt_mp4" in kinds and "pred_mp4" in kinds:
            out.append((vid, None if pd.isna(clip) else int(clip), kinds["gt_mp4"], kinds["pred_mp4"]))
    return out


# -- media files -------------------------------------------------------------------------------------


def opaque_copy(src: str | Path, out_dir: Path) -> Path:
    """Copy an mp4 under a random name, remuxed with a random comment (no re-encoding)."""
    import av

    src = Path(src)
    if not src.is_file():
        raise VidcolorError(f"CTT media file {src} does not exist")
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


def wrong_recoloring(frame: np.ndarray) -> np.ndarray:
    """An obviously wrong recoloring for attention checks: channels rotated (R,G,B) -> (B,R,G),
    then the chroma doubled around the gray level (skin turns blue, skies turn red)."""
    rot = frame[..., [2, 0, 1]].astype(np.float32)
    gray = rot @ np.array([0.299, 0.587, 0.114], np.float32)
    return (gray[..., None] + 2.0 * (rot - gray[..., None])).clip(0, 255).astype(np.uint8)


def write_attention_clip(real: str | Path, out_dir: Path) -> Path:
    """A recolored copy of `real` (random name) for an attention check."""
    import av

    from study.video_out import VideoWriter

    dst = out_dir / f"{secrets.token_hex(12)}.mp4"
    try:
        with av.open(str(real)) as inp:
            stream = inp.streams.video[0]
            fps = stream.average_rate or stream.guessed_rate or 24
            frames = [f.to_ndarray(format="rgb24") for f in inp.decode(stream)]
    except av.error.FFmpegError as exc:
        raise VidcolorError(f"cannot decode CTT media {real}: {exc}") from None
    if not frames:
        raise VidcolorError(f"CTT media {real} has no frames")
    h, w = frames[0].shape[:2]
    with VideoWriter(dst, fps, w, h) as writer:
        for f in frames:
            writer.write(wrong_recoloring(f))
    return dst


def render_trial_clips(checkpoint: str, shards: str, split: str, clips: int) -> tuple[list[tuple], Path]:
    """Render `clips` clips of `split` at a trial's checkpoint (study.media) into a temporary folder:
    [(video_id, clip, real mp4, colorized mp4)] and the folder. On the legacy split the "real" clip
    is the black-and-white original (for the naturalness-rating mode). The caller copies them away
    and removes the folder."""
    import tempfile

    from study.media import render_samples

    tmp = Path(tempfile.mkdtemp(prefix="vidcolor-ctt-"))
    files = render_samples(checkpoint, shards, tmp, split=split, clips=clips, png=False)
    media = pd.DataFrame([{"kind": f.kind, "path": f.path, "video_id": f.video_id, "clip": f.clip} for f in files])
    return media_pairs(media), tmp


# -- building items ----------------------------------------------------------------------------------


def default_out(store: Store, study: str) -> Path:
    from sqlalchemy.engine import make_url

    u = make_url(store.url)
    base = Path(u.database).parent if store.is_sqlite and u.database not in (None, "", ":memory:") else Path.cwd()
    return base / "ctt_media" / study


def build_items(store: Store, study: str, *, trial_ids: list[str] | None = None, top: int | None = None,
                clips: int = 8, attention_rate: float = 0.1, out: str | Path | None = None,
                shards: str | None = None, split: str = "test", seed: int | None = None) -> pd.DataFrame:
    """Make the CTT items of a study; returns one row per item (uid, trial_id, is_attention)."""
    if split not in ("test", "legacy"):
        raise VidcolorError(f"--split must be test or legacy, got {split!r}")
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
    items: list[dict[str, Any]] = []
    reals: list[str] = []
    from tqdm import tqdm

    shard_loc = shards or st.get("shards")
    for tid in tqdm(chosen, desc="CTT items", unit="trial", disable=None):
        ckpt = by_id.loc[tid, "checkpoint"]
        can_render = bool(ckpt) and Path(str(ckpt)).is_dir() and bool(shard_loc) and Path(str(shard_loc)).exists()
        if can_render:
            pairs, staged = render_trial_clips(str(ckpt), str(shard_loc), split, clips)
        elif split == "test":
            pairs, staged = media_pairs(store.media(study, tid)), None
            if not pairs:
                raise VidcolorError(
                    f"trial {tid}: no checkpoint and shard set to render test clips from "
                    f"(checkpoint={ckpt!r}, shards={shard_loc!r}) and no rendered sample clips (pred_mp4 + gt_mp4)")
            log.warning("trial %s: no checkpoint + shard set to render test clips; using its %d rendered "
                        "sample clips (validation split)", tid, len(pairs))
        else:
            raise VidcolorError(f"trial {tid}: legacy clips are rendered from the checkpoint, and "
                                f"checkpoint={ckpt!r}, shards={shard_loc!r} is not usable")
        for vid, clip, real, fake in pairs[:clips]:
            real_copy = str(opaque_copy(real, out_dir))
            items.append({"trial_id": tid, "real_path": real_copy, "fake_path": str(opaque_copy(fake, out_dir)),
                          "video_id": vid, "clip": clip, "is_attention": False})
            reals.append(real_copy)
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)
    n_att = int(round(attention_rate * len(items) / (1 - attention_rate))) if attention_rate > 0 else 0
    if attention_rate > 0 and items:
        n_att = max(1, n_att)
    for real in rng.sample(reals, k=min(n_att, len(reals))) + rng.choices(reals, k=max(0, n_att - len(reals))):
        items.append({"trial_id": None, "real_path": str(opaque_copy(real, out_dir)),
                      "fake_path": str(write_attention_clip(real, out_dir)), "is_attention": True})
    rng.shuffle(items)
    uids = store.add_ctt_items(study, items)
    log.info("%d CTT items (%d attention checks) for study %s in %s", len(uids), n_att, study, out_dir)
    return pd.DataFrame({"uid": uids, "trial_id": [i["trial_id"] for i in items],
                         "is_attention": [i["is_attention"] for i in items]})


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
                        attention_rate=args.attention_rate, out=args.out, shards=args.shards, split=args.split)
    table = (items.assign(trial_id=items["trial_id"].fillna("(attention check)"))
             .groupby("trial_id").size().rename("items").reset_index())
    print(f"study {study}: {len(items)} CTT items")
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
