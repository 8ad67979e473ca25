"""`vidcolor shard`: videos and frame folders -> WebDataset tar shards, manifest and color statistics.

Each source is decoded once (PyAV or Pillow; in parallel with ``--jobs``), resized to a square
``--size`` (short side, then center crop), optionally picked down to ``--fps``, and cut into clips
of ``--clip-len`` consecutive frames (the last clip aligned to the video's end so no frame is
lost). Workers (`data_shards.staging`) encode each clip straight into a per-source staging tar and
return the source's ab histogram and a perceptual fingerprint of its frames; the main process then
assigns splits by video (`data_shards.splits`: ``--split`` percentages, seeded, and/or a
``--split-file``; black-and-white sources go to ``legacy``; copies of one video, found by their
fingerprints (`data_shards.fingerprint`), share one split and are listed under ``duplicates``)
and copies the clips into ``{split}-NNNNNN.tar`` shards of at most ``--shard-size`` MB
(`data_shards.packing`), recording each shard's counts and sha256 in the manifest (and the split
file's path and sha256, so the set can be made again). A split file is read and matched against
the sources before anything is decoded; that every color source is listed can only be checked
after decoding (black-and-white sources need no entry).
Everything is built in a hidden folder inside ``--out`` and moved in place at the end, so a failed
or interrupted run never leaves a half-written or mixed shard set behind; ``--out`` is locked for
the whole run (`data_shards.outlock`), and the next run removes what a killed one left.

One WebDataset sample = one clip: key ``{video_id}_clipNNNNN``, members ``000.jpg ...`` (quality
95, no chroma subsampling) or ``000.png`` (``--lossless``), and ``json`` with ``video_id, split,
fps, frame_indices, source, clip, start`` (``start`` = the clip's first stored-frame position).
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import shlex
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from data_shards import fingerprint, outlock, stats
from data_shards import manifest as mf
from data_shards.packing import pack_split
from data_shards.sources import find_sources
from data_shards.splits import DEFAULT_SPLIT, SplitPlan, match_split_file, parse_split, read_split_file
from data_shards.staging import process_source
from models.errors import VidcolorError

log = logging.getLogger(__name__)

MAX_CLIP_LEN = 999  # member names are three digits
#: The most bytes one clip of uint8 RGB frames (``size * size * 3 * clip_len``) may take. Sharding
#: holds a few clips' worth per worker (the clip window, the frames not yet counted, their float
#: copies for the histogram), so --size 4096 with clips of 16 (805 MB a clip) took 11 GB and 98 s
#: a source; a size over the budget is refused before anything is decoded.
CLIP_BUFFER_BUDGET = 256 * 2**20


# ----------------------------------------------------------------------------- options


def make_video_ids(paths: list[Path]) -> list[str]:
    """Readable, unique ids without dots (WebDataset cuts keys at the first dot)."""
    ids, seen = [], set()
    for p in paths:
        name = p.name if p.is_dir() else p.stem
        base = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "video"
        vid, k = base, 2
        while vid in seen:
            vid, k = f"{base}-{k}", k + 1
        seen.add(vid)
        ids.append(vid)
    return ids


@dataclass(frozen=True)
class ShardOptions:
    """How a shard set is made (the `vidcolor shard` flags); checked on construction, errors name the flag."""

    size: int = 256
    clip_len: int = 16
    fps: float | None = None  # target frame rate, None to keep every frame
    split: str | None = None  # train,val,test percentages; None: DEFAULT_SPLIT, or only the split file
    split_file: str | None = None  # explicit source -> split assignment (data_shards.splits)
    seed: int = 0
    shard_size: float = 256.0  # MB per shard
    lossless: bool = False
    jobs: int = 1
    command: str | None = None  # the command line recorded in the manifest

    def __post_init__(self) -> None:
        if self.size < 8 or self.size > 4096:
            raise VidcolorError(f"--size {self.size}: must be between 8 and 4096 px")
        if not 1 <= self.clip_len <= MAX_CLIP_LEN:
            raise VidcolorError(f"--clip-len {self.clip_len}: must be between 1 and {MAX_CLIP_LEN}")
        clip_bytes = self.size * self.size * 3 * self.clip_len
        if clip_bytes > CLIP_BUFFER_BUDGET:
            largest = math.isqrt(CLIP_BUFFER_BUDGET // (3 * self.clip_len))
            raise VidcolorError(
                f"--size {self.size} with --clip-len {self.clip_len}: a clip of frames takes "
                f"{clip_bytes / 2**20:.0f} MiB, over the {CLIP_BUFFER_BUDGET // 2**20} MiB limit per clip; "
                f"the largest --size for clips of {self.clip_len} is {largest}"
            )
        if self.fps is not None and not (self.fps > 0 and math.isfinite(self.fps)):
            raise VidcolorError(f"--fps {self.fps}: must be a positive number")
        if not self.shard_size > 0:
            raise VidcolorError(f"--shard-size {self.shard_size}: must be a positive number of MB")
        if self.jobs < 1:
            raise VidcolorError(f"--jobs {self.jobs}: must be at least 1")
        if self.split is not None:
            parse_split(self.split)

    @property
    def percents(self) -> dict[str, float] | None:
        """The percentages the unlisted color videos are drawn by; None when a split file alone decides."""
        if self.split is None:
            return None if self.split_file else parse_split(DEFAULT_SPLIT)
        return parse_split(self.split)

    @property
    def shard_bytes(self) -> int:
        return int(self.shard_size * 1e6)


# ----------------------------------------------------------------------------- the whole run


def shard_command(args: argparse.Namespace) -> str:
    """The `vidcolor shard` command line the manifest records."""
    parts = [
        "vidcolor",
        "shard",
        *map(str, args.sources),
        "--out",
        str(args.out),
        "--size",
        str(args.size),
        "--clip-len",
        str(args.clip_len),
    ]
    if args.split_file:
        parts += ["--split-file", str(args.split_file)]
    if args.split is not None or not args.split_file:
        parts += ["--split", args.split or DEFAULT_SPLIT]
    parts += ["--seed", str(args.seed), "--shard-size", f"{args.shard_size:g}", "--jobs", str(args.jobs)]
    if args.fps is not None:
        parts += ["--fps", f"{args.fps:g}"]
    if args.lossless:
        parts.append("--lossless")
    if args.overwrite:
        parts.append("--overwrite")
    return shlex.join(parts)


def write_shard_set(
    sources: list[str | Path], out: str | Path, *, overwrite: bool = False, show_progress: bool = True, **options: Any
) -> dict[str, Any]:
    """Shard ``sources`` into ``out``; ``options`` are `ShardOptions` fields (size, clip_len, fps,
    split, split_file, seed, shard_size, lossless, jobs, command). Returns the manifest; raises
    VidcolorError when nothing is usable, and for a bad split file before anything is written."""
    opts = ShardOptions(**options)
    split_file = read_split_file(opts.split_file) if opts.split_file else None
    if "://" in str(out):
        raise VidcolorError(
            f"--out {out}: vidcolor shard writes a local folder; shard into one, then upload it "
            f"(e.g. `aws s3 sync FOLDER {out}`): readers and studies take the s3:// set"
        )
    out = outlock.check_out(out, overwrite)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VidcolorError(f"--out {out}: cannot create the folder ({exc.strerror or exc})") from None
    with outlock.OutLock(out):  # held until the set is installed: a second run into `out` fails at once
        outlock.check_out(out, overwrite)  # again: another run may have written there meanwhile
        outlock.remove_leftovers(out)
        paths, skipped = _collect_sources(sources)
        ids = make_video_ids(paths)
        listed = match_split_file(split_file, paths, ids, sources) if split_file else {}
        plan = SplitPlan(opts.percents, opts.seed, split_file, listed)
        try:
            build = Path(tempfile.mkdtemp(prefix=outlock.BUILD_PREFIX, dir=out))
        except OSError as exc:
            raise VidcolorError(f"--out {out}: folder is not writable ({exc.strerror or exc})") from None
        try:
            return _build(list(zip(paths, ids)), skipped, out, build, opts, plan, show_progress)
        finally:
            shutil.rmtree(build, ignore_errors=True)


def _collect_sources(sources: list[str | Path]) -> tuple[list[Path], list[dict[str, str]]]:
    """(video files and frame folders found under ``sources``, without repeats; skipped entries)."""
    paths: list[Path] = []
    skipped: list[dict[str, str]] = []
    for src in sources:
        src_path = Path(src)
        if not src_path.exists():
            skipped.append({"source": str(src), "reason": f"{src}: no such file or folder"})
            continue
        unreadable = len(skipped)
        found = find_sources(src_path, skipped)
        if not found and len(skipped) == unreadable:
            skipped.append({"source": str(src), "reason": f"{src}: no video files or frame folders inside"})
        paths.extend(p for p in found if p.resolve() not in {q.resolve() for q in paths})
    return paths, skipped


def _decode_sources(tasks: list[dict[str, Any]], jobs: int, show_progress: bool) -> list[dict[str, Any]]:
    """Run `process_source` on every task (``jobs`` at a time); results in task order. The bar
    counts frames, so its rate is the frames/s of the whole run.

    The workers are threads, not processes: FFmpeg's decode and swscale, Pillow's JPEG/PNG
    encoder and torch's histogram all release the GIL, so threads scale about like processes (8
    real clips at --size 128, --jobs 2 on 2 cores: 1.4x over --jobs 1; forked processes, 1.5x).
    A forked process is not safe: fork copies FFmpeg's internal locks as other threads of the
    caller hold them (PyAV used earlier in the same process), and such a worker hung forever in
    swscale."""
    results: list[dict[str, Any]] = []
    with tqdm(total=None, unit="frame", desc="decode", disable=not show_progress, smoothing=0.1) as bar:
        if jobs == 1 or len(tasks) <= 1:
            for task in tasks:
                results.append(process_source(task, progress=bar.update))
                bar.set_postfix_str(f"{len(results)}/{len(tasks)} sources")
        else:
            with ThreadPoolExecutor(max_workers=min(jobs, len(tasks)), thread_name_prefix="decode") as pool:
                futures = [pool.submit(process_source, task) for task in tasks]
                try:
                    for fut in as_completed(futures):
                        res = fut.result()
                        results.append(res)
                        bar.update(res.get("frames", 0) if not res["reason"] else 0)
                        bar.set_postfix_str(f"{len(results)}/{len(tasks)} sources")
                except BaseException:  # Ctrl-C: finish only the sources already started
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    return sorted(results, key=lambda r: r["index"])


def _assign(
    results: list[dict[str, Any]], skipped: list[dict[str, str]], plan: SplitPlan
) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """(the usable results, each with its ``split`` (black-and-white ones: legacy); the manifest's
    ``duplicates``). Failures go to ``skipped``. Copies of one color video share a split (see
    `data_shards.splits`). Raises when nothing is usable, when the split file leaves color sources
    out, or when it puts two copies in different splits."""
    for res in results:
        if res["reason"]:
            log.warning("skipped %s", res["reason"])
            skipped.append({"source": res["source"], "reason": res["reason"]})
    usable = [r for r in results if not r["reason"]]
    if not usable:
        lines = "\n  ".join(s["reason"] for s in skipped) or "no sources given"
        raise VidcolorError(f"nothing usable to shard; every source was skipped:\n  {lines}")
    groups = fingerprint.duplicate_groups([r.get("fingerprint") for r in usable])
    copies = [[usable[i]["id"] for i in g if not usable[i]["grayscale"]] for g in groups]
    split_of = plan.assign(
        {r["id"]: r["source"] for r in usable if not r["grayscale"]},
        {r["id"]: r["source"] for r in usable if r["grayscale"]},
        [c for c in copies if len(c) > 1],
    )
    for r in usable:
        r["split"] = mf.LEGACY if r["grayscale"] else split_of[r["id"]]
    return usable, [_report_copies([usable[i] for i in g]) for g in groups]


def _report_copies(group: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Log a warning naming each copy and the first source of its group; the group's entry in the
    manifest's ``duplicates``: ``[{id, source, split, distance}]`` (``distance``: differing hash
    bits from the first, of `fingerprint.BITS`)."""
    first = group[0]
    entry = []
    for r in group:
        d = first["fingerprint"].distance(r["fingerprint"])
        entry.append({"id": r["id"], "source": r["source"], "split": r["split"], "distance": d})
        if r is first:
            continue
        how = f"their frames' perceptual hashes are {d} of {fingerprint.BITS} bits apart"
        if r["split"] == first["split"]:
            log.warning("%s is a copy of %s (%s): both go to %s", r["source"], first["source"], how, r["split"])
        else:  # one is black-and-white: a gray copy of a color video stays in legacy
            log.warning(
                "%s (%s) is a copy of %s (%s) (%s); black-and-white sources stay in legacy",
                r["source"],
                r["split"],
                first["source"],
                first["split"],
                how,
            )
    return entry


def _build(
    sources: list[tuple[Path, str]],
    skipped: list[dict[str, str]],
    out: Path,
    build: Path,
    opts: ShardOptions,
    plan: SplitPlan,
    show_progress: bool,
) -> dict[str, Any]:
    """Decode the (path, video id) ``sources``, assign splits by ``plan``, pack the shards and the
    statistics in ``build``, then install in ``out``."""
    staging = build / "staging"
    staging.mkdir()
    tasks = [
        {
            "index": i,
            "id": vid,
            "path": str(p),
            "size": opts.size,
            "clip_len": opts.clip_len,
            "fps": opts.fps,
            "lossless": opts.lossless,
            "staging": str(staging / f"{i:06d}.tar"),
        }
        for i, (p, vid) in enumerate(sources)
    ]
    t0 = time.perf_counter()
    results = _decode_sources(tasks, opts.jobs, show_progress)
    decode_s = time.perf_counter() - t0
    usable, duplicates = _assign(results, skipped, plan)

    splits: dict[str, dict[str, Any]] = {}
    shard_stats: dict[str, dict[str, int]] = {}
    train_hist = stats.empty_histogram()
    videos = []
    for split in (*mf.SPLITS, mf.LEGACY):
        members = [r for r in usable if r["split"] == split]
        if not members:
            continue
        names, entries = pack_split(split, members, build, opts.shard_bytes, opts.clip_len, shard_stats)
        videos += entries
        splits[split] = {
            "shards": names,
            "clips": sum(len(r["clips"]) for r in members),
            "frames": sum(r["frames"] for r in members),
            "videos": len(members),
        }
        if split == "train":
            train_hist += sum(r["hist"] for r in members)
    shutil.rmtree(staging)
    for name, stat in shard_stats.items():
        stat["bytes"], stat["sha256"] = mf.file_digest(build / name)
    if "train" not in splits:
        asked = plan.split_file is not None or (plan.percents or {}).get("train") == 0
        log.log(
            logging.INFO if asked else logging.WARNING,
            "no color video in the train split: ab_hist.npy is "
            "empty and the set is for evaluation only (it cannot train a model)",
        )
    manifest = {
        "format": mf.FORMAT,
        "size": opts.size,
        "clip_len": opts.clip_len,
        "fps": opts.fps,
        "lossless": opts.lossless,
        "videos": videos,
        "splits": splits,
        "shard_stats": shard_stats,
        "skipped": skipped,
        "duplicates": duplicates,
        "split_file": plan.record(
            [r["id"] for r in usable if not r["grayscale"]],
            [[v["id"] for v in group if v["split"] != mf.LEGACY] for group in duplicates],
        ),
        "command": opts.command or "",
        "versions": mf.versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "decode_seconds": round(decode_s, 3),
    }
    stats.save_histogram(build / stats.AB_HIST_FILE, train_hist)
    mf.write_manifest(build / mf.MANIFEST_FILE, manifest)
    outlock.install(build, out)
    return manifest


def print_summary(manifest: dict[str, Any], out: str | Path) -> None:
    """The table people read after `vidcolor shard`."""
    print(
        f"shard set {out}: {manifest['size']} px, clip_len {manifest['clip_len']}, "
        f"{'PNG' if manifest['lossless'] else 'JPEG q95'}"
    )
    print(f"{'split':<8} {'videos':>6} {'clips':>6} {'frames':>8} {'shards':>6}")
    for name, s in manifest["splits"].items():
        print(f"{name:<8} {s['videos']:>6} {s['clips']:>6} {s['frames']:>8} {len(s['shards']):>6}")
    if manifest.get("split_file"):
        sf = manifest["split_file"]
        drawn = f"; {len(sf['drawn'])} unlisted drawn by --split" if sf["drawn"] else ""
        print(f"splits from {sf['path']} (sha256 {sf['sha256'][:12]}){drawn}")
    total = sum(s["frames"] for s in manifest["splits"].values())
    secs = manifest.get("decode_seconds") or 0
    if secs:
        print(f"decoded {total} frames in {secs:.1f} s ({total / secs:.0f} frames/s)")
    if manifest.get("duplicates"):
        print(f"{len(manifest['duplicates'])} video(s) found more than once (copies kept; color copies share a split):")
        for group in manifest["duplicates"]:
            print("  " + " = ".join(f"{v['source']} ({v['split']})" for v in group))
    if manifest["skipped"]:
        print(f"skipped {len(manifest['skipped'])} source(s):")
        for s in manifest["skipped"]:
            print(f"  {s['reason']}")


def main(args: argparse.Namespace) -> int:
    """Handler of `vidcolor shard`."""
    manifest = write_shard_set(
        args.sources,
        args.out,
        size=args.size,
        clip_len=args.clip_len,
        fps=args.fps,
        split=args.split,
        split_file=args.split_file,
        seed=args.seed,
        shard_size=args.shard_size,
        lossless=args.lossless,
        jobs=args.jobs,
        overwrite=args.overwrite,
        command=shard_command(args),
    )
    print_summary(manifest, args.out)
    return 0
