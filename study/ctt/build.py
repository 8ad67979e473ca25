"""`vidcolor ctt build`: make the Color Turing Test items of a study from its trials.

An item is a (real clip, colorized clip) pair, or with `--medium frame` a pair of PNG stills. Items
record their split and source video. On the test split the real side is the color original, so the
item works as a "which is real" pair (and, its colorized side alone, in the rating mode). Legacy
footage is black and white: a pair with it would be meaningless (the gray side is obviously not the
colored one), so legacy items are for the 1-5 rating mode only (`real_is_color` False in the store,
never drawn for a 2AFC vote). The colorized clips are the trials' rendered sample media
(``pred_mp4`` with its ``gt_mp4`` on the same clip, registered in the results store by the media
renderer); when a trial has none, they are rendered from its checkpoint on the chosen split of the
shard set. The files themselves are written by `study.ctt.clips.write_pair`: both sides of every
item, attention checks included, alike and of one size (see that module for what is not hidden).
The media folder (`--out`) only gains files, under new random names (the items already in the
store keep theirs), so nothing there is ever replaced; it is checked before any clip is made
(`data_shards.outdir.check_place`: a file in its place or on its path, or no write permission).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data_shards import outdir
from models.errors import VidcolorError
from study.ctt.clips import rendered_media, write_pair, wrong_recoloring
from study.report import format_table
from study.store import CTT_MEDIA, Store

log = logging.getLogger(__name__)

SPLITS = ("test", "legacy")
# media types of the real and the colorized side, per item medium
PAIR_MEDIA = {"clip": ("gt_mp4", "pred_mp4"), "frame": ("gt_png", "pred_png")}


@dataclass(frozen=True)
class BuildOptions:
    """How `build_items` makes items (the flags of `vidcolor ctt build`); checked on construction."""

    trial_ids: Sequence[str] | None = None  # these trials; else the `top` k, else `pick_trials`' default
    top: int | None = None
    clips: int = 8  # clips (or stills) per trial
    attention_rate: float = 0.1  # share of attention checks among all items
    out: str | Path | None = None  # media folder (default: beside the database)
    shards: str | None = None  # shard set to render clips from (default: the study's)
    split: str = "test"  # "test" (which-is-real pairs) or "legacy" (rating items only)
    medium: str = "clip"  # what an item shows: "clip" (mp4) or "frame" (PNG still)
    seed: int | None = None  # attention-check draws and item order

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise VidcolorError(f"--split must be test or legacy, got {self.split!r}")
        if self.medium not in CTT_MEDIA:
            raise VidcolorError(f"--medium must be one of {CTT_MEDIA}, got {self.medium!r}")
        if not 0 <= self.attention_rate < 1:
            raise VidcolorError(f"--attention-rate must be in [0, 1), got {self.attention_rate}")
        if self.clips < 1:
            raise VidcolorError(f"--clips must be at least 1, got {self.clips}")
        if self.trial_ids and self.top is not None:
            raise VidcolorError(f"--trials and --top exclude each other (got both, --top {self.top}): give one")
        if self.trial_ids is not None:
            object.__setattr__(self, "trial_ids", tuple(self.trial_ids))

    @property
    def real_is_color(self) -> bool:
        """Whether the real side is a color original (test split) rather than black and white."""
        return self.split != "legacy"


# -- choosing trials and pairs ---------------------------------------------------------------------


#: how many trials the default build compares when the study has one experiment (or none recorded)
DEFAULT_TOP = 3


def choose_trials(
    trials: pd.DataFrame, mode: str, trial_ids: Sequence[str] | None = None, top: int | None = None
) -> list[str]:
    """Trial ids for the test: the given ones, the `top` k by objective, or the default
    (`pick_trials`: the best of each experiment, or the top `DEFAULT_TOP` when there is one)."""
    return pick_trials(trials, mode, trial_ids, top)[0]


def pick_trials(
    trials: pd.DataFrame,
    mode: str,
    trial_ids: Sequence[str] | None = None,
    top: int | None = None,
    objective: str = "the objective",
) -> tuple[list[str], str]:
    """(trial ids, why these) for the test: the given ones, the `top` k by objective, or by default
    the best trial of each experiment when the scored trials span two or more experiments, else
    (one experiment, as in a study of one preset) the top `DEFAULT_TOP` by objective, so that the
    test compares several trials rather than one."""
    if trial_ids:
        unknown = sorted(set(trial_ids) - set(trials["trial_id"]))
        if unknown:
            raise VidcolorError(f"--trials: unknown trial id(s) {unknown}; the study has {sorted(trials['trial_id'])}")
        return list(trial_ids), "--trials"
    scored = trials.dropna(subset=["objective"])
    scored = scored[scored["status"] != "ERROR"]
    if scored.empty:
        raise VidcolorError("no trial of the study has a value of its objective yet: nothing to test")
    scored = scored.sort_values("objective", ascending=(mode == "min"), kind="stable")
    by = f"{objective} ({mode})"
    if top is not None:
        if top < 1:
            raise VidcolorError(f"--top must be at least 1, got {top}")
        return list(scored["trial_id"].head(top)), f"--top {top}: the best {top} by {by}"
    exp = scored["experiment"].fillna("(none)")
    if exp.nunique() >= 2:
        best = list(scored.groupby(exp, sort=True).head(1).sort_values("experiment")["trial_id"])
        return best, f"the best of each of {exp.nunique()} experiments by {by}"
    ids = list(scored["trial_id"].head(DEFAULT_TOP))
    only = "no experiment recorded" if exp.iloc[0] == "(none)" else f"every scored trial is {exp.iloc[0]}"
    return ids, f"the best {len(ids)} by {by}: {only}"


def media_pairs(media: pd.DataFrame, medium: str = "clip") -> list[dict[str, Any]]:
    """Real/colorized pairs from a trial's media table: for `medium="clip"` each clip with both
    gt_mp4 and pred_mp4; for `medium="frame"` one still per clip (the stored frame nearest the
    clip's middle) with both gt_png and pred_png. Dicts with video_id, clip, frame (None for clips),
    real, fake."""
    if medium not in CTT_MEDIA:
        raise VidcolorError(f"--medium must be one of {CTT_MEDIA}, got {medium!r}")
    real_media, fake_media = PAIR_MEDIA[medium]
    sel = media[media["media_type"].isin((real_media, fake_media))]
    keys = ["video_id", "clip"] if medium == "clip" else ["video_id", "clip", "frame"]
    pairs: dict[tuple, list[dict[str, Any]]] = {}
    for key, g in sel.groupby(keys, dropna=False, sort=True):
        paths = dict(zip(g["media_type"], g["path"]))
        if real_media in paths and fake_media in paths:
            vid, clip = key[0], None if pd.isna(key[1]) else int(key[1])
            frame = None if medium == "clip" or pd.isna(key[2]) else int(key[2])
            pairs.setdefault((vid, clip), []).append(
                {"video_id": vid, "clip": clip, "frame": frame, "real": paths[real_media], "fake": paths[fake_media]}
            )
    out = []
    for cands in pairs.values():
        if medium == "frame":  # the still nearest the middle of the clip's stored frames
            idx = sorted(c["frame"] or 0 for c in cands)
            mid = (idx[0] + idx[-1]) / 2
            cands = sorted(cands, key=lambda c: (abs((c["frame"] or 0) - mid), c["frame"] or 0))
        out.append(cands[0])
    return out


@contextmanager
def trial_pairs(
    store: Store, study: str, trial_id: str, checkpoint: Any, shards: str | None, opts: BuildOptions
) -> Iterator[tuple[list[dict[str, Any]], str]]:
    """Yields a trial's `media_pairs` and the split they come from: rendered from its checkpoint on
    `opts.split` when it and the shard set exist (files removed on exit), else (test split only)
    its stored sample media of the validation split."""
    if checkpoint and Path(str(checkpoint)).is_dir() and shards and Path(str(shards)).exists():
        stills = opts.medium == "frame"
        with rendered_media(str(checkpoint), str(shards), opts.split, opts.clips, stills=stills) as media:
            yield media_pairs(media, opts.medium), opts.split
        return
    if opts.split != "test":
        raise VidcolorError(
            f"trial {trial_id}: legacy clips are rendered from the checkpoint, and "
            f"checkpoint={checkpoint!r}, shards={shards!r} is not usable"
        )
    pairs = media_pairs(store.media(study, trial_id), opts.medium)
    if not pairs:
        want = " + ".join(reversed(PAIR_MEDIA[opts.medium]))
        raise VidcolorError(
            f"trial {trial_id}: no checkpoint and shard set to render test clips from "
            f"(checkpoint={checkpoint!r}, shards={shards!r}) and no rendered sample media ({want})"
        )
    log.warning(
        "trial %s: no checkpoint + shard set to render test clips; using its %d rendered sample %ss (validation split)",
        trial_id,
        len(pairs),
        opts.medium,
    )
    yield pairs, "val"


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


# -- writing items -----------------------------------------------------------------------------------


def item_key(trial_id: Any, video_id: Any, clip: Any, frame: Any, medium: str, split: Any) -> tuple:
    """What makes a regular item the same item: its trial, video, clip, still, medium and split."""

    def norm(v: Any) -> Any:
        return None if v is None or (isinstance(v, float) and np.isnan(v)) else v

    clip, frame = norm(clip), norm(frame)
    return (
        str(trial_id),
        str(video_id),
        None if clip is None else int(clip),
        None if frame is None else int(frame),
        medium,
        norm(split),
    )


def existing_keys(store: Store, study: str) -> dict[tuple, str]:
    """`item_key` -> uid of the study's regular items already in the store."""
    items = store.ctt_items(study)
    items = items[~items["is_attention"].astype(bool)]
    return {
        item_key(r.trial_id, r.video_id, r.clip, r.frame, r.medium, r.split): r.uid
        for r in items.itertuples(index=False)
    }


def copy_pairs(
    pairs: list[dict[str, Any]],
    trial_id: str,
    split: str,
    sources: dict[str, str],
    out_dir: Path,
    opts: BuildOptions,
    dither_rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """Items of one trial: each pair's real and colorized side written alike (`write_pair`) in `out_dir`."""
    items = []
    for p in pairs:
        real, fake = write_pair(p["real"], p["fake"], out_dir, dither_rng)
        items.append(
            {
                "trial_id": trial_id,
                "real_path": str(real),
                "fake_path": str(fake),
                "medium": opts.medium,
                "video_id": p["video_id"],
                "clip": p["clip"],
                "frame": p["frame"],
                "split": split,
                "source": sources.get(str(p["video_id"])),
                "real_is_color": opts.real_is_color,
                "is_attention": False,
            }
        )
    return items


def attention_count(regular: int, rate: float) -> int:
    """How many attention checks make up `rate` of all items next to `regular` ones:
    round(rate * regular / (1 - rate)), at least 1 when rate > 0 and there are regular items."""
    if rate <= 0 or regular == 0:
        return 0
    return max(1, int(round(rate * regular / (1 - rate))))


def attention_items(
    regular: list[dict[str, Any]],
    opts: BuildOptions,
    out_dir: Path,
    rng: random.Random,
    dither_rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """Attention checks built on randomly drawn regular items (each at most once while they last),
    written exactly as regular items are (`write_pair`), so their files tell nothing either.

    A color original is recolored wrongly; a black-and-white one has no colors, so there the
    colorized side is (the check then asks for a low naturalness rating)."""
    n = attention_count(len(regular), opts.attention_rate)
    bases = rng.sample(regular, k=min(n, len(regular))) + rng.choices(regular, k=max(0, n - len(regular)))
    checks = []
    for base in bases:
        real, fake = write_pair(
            base["real_path"],
            base["fake_path"],
            out_dir,
            dither_rng,
            recolor=wrong_recoloring,
            recolor_real=opts.real_is_color,
        )
        checks.append(
            {
                "trial_id": None,
                "real_path": str(real),
                "fake_path": str(fake),
                "medium": opts.medium,
                "video_id": None,
                "clip": None,
                "frame": None,
                "split": base["split"],
                "source": None,
                "real_is_color": opts.real_is_color,
                "is_attention": True,
            }
        )
    return checks


def default_out(store: Store, study: str) -> Path:
    """The media folder when none is given: `ctt_media/STUDY` beside a SQLite file, else in the cwd."""
    from sqlalchemy.engine import make_url

    u = make_url(store.url)
    base = Path(u.database).parent if store.is_sqlite and u.database not in (None, "", ":memory:") else Path.cwd()
    return base / "ctt_media" / study


def build_items(store: Store, study: str, options: BuildOptions | None = None, **settings: Any) -> pd.DataFrame:
    """Make and register the CTT items of a study; returns one row per item (uid, trial_id,
    is_attention, split, real_is_color), in the shuffled order they were stored.

    `options` (or `BuildOptions(**settings)`; settings given with options replace its fields):
    `split="test"` makes "which is real" pairs (the color original and the trial's colorization),
    also shown in the rating mode. `split="legacy"`: the originals are black and white, so the
    items are for the 1-5 rating mode only (the colorized clip alone; `real_is_color` False), and
    their attention checks are wrong recolorings of a colorized clip. `medium="frame"`: PNG stills
    (one per clip) instead of mp4 clips.
    """
    from tqdm import tqdm

    opts = replace(options or BuildOptions(), **settings)
    st = store.get_study(study)
    if st is None:
        raise VidcolorError(f"no study named {study!r} in {store.display_url}")
    # the media folder only gets new files (random names): existing items keep theirs, nothing is replaced
    out_dir = outdir.check_place(opts.out or default_out(store, study), "--out", folder=True)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VidcolorError(f"--out {out_dir}: cannot create the media folder ({exc.strerror or exc})") from None
    rng = random.Random(opts.seed)
    dither_rng = np.random.default_rng()  # fresh entropy: the files' noise owes nothing to --seed
    trials = store.trials(study)
    checkpoints = trials.set_index("trial_id")["checkpoint"]
    shards = opts.shards or st.get("shards")
    sources = video_sources(shards)
    existing = existing_keys(store, study)
    regular: list[dict[str, Any]] = []
    kept: list[str] = []  # uids of items this build would make again: kept, not made twice
    objective = st.get("objective") or "the objective"
    chosen, why = pick_trials(trials, st["mode"], opts.trial_ids, opts.top, objective=objective)
    for tid in tqdm(chosen, desc="CTT items", unit="trial", disable=None):
        with trial_pairs(store, study, tid, checkpoints.loc[tid], shards, opts) as (pairs, split):
            new_pairs = []
            for p in pairs[: opts.clips]:
                uid = existing.get(item_key(tid, p["video_id"], p["clip"], p["frame"], opts.medium, split))
                if uid is None:
                    new_pairs.append(p)
                else:
                    kept.append(uid)
            regular += copy_pairs(new_pairs, tid, split, sources, out_dir, opts, dither_rng)
    if kept:
        log.info(
            "study %s: %d of these items exist already (%s), kept as they are", study, len(kept), ", ".join(kept[:5])
        )
    checks = attention_items(regular, opts, out_dir, rng, dither_rng)
    items = regular + checks
    rng.shuffle(items)
    uids = store.add_ctt_items(study, items)
    log.info(
        "%d CTT %s items (%d attention checks, split %s) for study %s in %s",
        len(uids),
        opts.medium,
        len(checks),
        opts.split,
        study,
        out_dir,
    )
    df = pd.DataFrame(
        {
            "uid": uids,
            **{col: [i[col] for i in items] for col in ("trial_id", "is_attention", "split", "real_is_color")},
        }
    )
    df.attrs["kept"] = kept
    df.attrs["shards"] = shards
    df.attrs["trials"], df.attrs["trials_why"] = chosen, why
    return df


# -- command -----------------------------------------------------------------------------------------


def main_build(args) -> int:
    """`vidcolor ctt build`: make the items, print how many per trial and split."""
    store = Store(args.db, create=False)  # it needs a study's trials: a database that is not there is an error
    study = store.resolve_study(args.study)
    trial_ids = [t.strip() for t in args.trials.split(",") if t.strip()] if args.trials else None
    opts = BuildOptions(
        trial_ids=trial_ids,
        top=args.top,
        clips=args.clips,
        attention_rate=args.attention_rate,
        out=args.out,
        shards=args.shards,
        split=args.split,
        medium=args.medium,
    )
    items = build_items(store, study, opts)
    counts = items.assign(trial_id=items["trial_id"].fillna("(attention check)")).groupby(["trial_id", "split"]).size()
    task = "which-is-real pairs and ratings" if opts.real_is_color else "1-5 naturalness rating only"
    print(f"study {study}: {len(items)} CTT {opts.medium} items ({task})")
    chosen = items.attrs["trials"]
    others = "" if opts.trial_ids or opts.top else "; --top K or --trials IDS to choose others"
    print(f"trials: {', '.join(chosen)} ({items.attrs['trials_why']}{others})")
    print(format_table(["trial_id", "split", "items"], [[tid, split, int(n)] for (tid, split), n in counts.items()]))
    used = items.attrs.get("shards")
    given = "--shards" if args.shards else "the study's; --shards to choose another"
    print(f"shard set: {used} ({given})" if used else "shard set: none (the study records none; --shards to give one)")
    if (items["split"] == "val").any():
        print(
            "split val: trials without a checkpoint and shard set to render the test split from "
            "use their stored sample media, rendered on the validation split"
        )
    kept = items.attrs.get("kept") or []
    if kept:
        shown = ", ".join(kept[:5]) + (", ..." if len(kept) > 5 else "")
        print(f"{len(kept)} item(s) exist already for these trials and clips and are kept, not made again: {shown}")
    return 0
