"""`vidcolor shard`: videos and frame folders -> WebDataset tar shards, manifest and color statistics.

Each source is decoded once (PyAV or Pillow; in parallel with ``--jobs``), resized to a square
``--size`` (short side, then center crop), optionally picked down to ``--fps``, and cut into clips
of ``--clip-len`` consecutive frames (the last clip aligned to the video's end so no frame is
lost). Workers encode each clip straight into a per-source staging tar and return the source's ab
histogram; the main process then assigns splits by video (seeded; black-and-white sources go to
``legacy``) and copies the clips into ``{split}-NNNNNN.tar`` shards of at most ``--shard-size``
MB. Everything is built in a hidden folder inside ``--out`` and moved in place at the end, so a
failed or interrupted run never leaves a half-written or mixed shard set behind.

One WebDataset sample = one clip: key ``{video_id}_clipNNNNN``, members ``000.jpg ...`` (quality
95, no chroma subsampling) or ``000.png`` (``--lossless``), and ``json`` with ``video_id, split,
fps, frame_indices, source, clip, start`` (``start`` = the clip's first stored-frame position).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import multiprocessing as mp
import os
import random
import re
import shlex
import shutil
import tarfile
import tempfile
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import av
import numpy as np
import webdataset as wds
from PIL import Image
from tqdm import tqdm

from data_shards import manifest as mf
from data_shards import stats
from data_shards.video import FramePicker, find_sources, iter_indexed_frames, probe
from models.errors import VidcolorError

log = logging.getLogger(__name__)

JPEG_QUALITY = 95
MAX_CLIP_LEN = 999  # member names are three digits
_BUILD_PREFIX = ".vidcolor-build-"
_SHARD_NAME = re.compile(r"^[a-z]+-\d{6}\.tar$")


# ----------------------------------------------------------------------------- options

def parse_split(text: str) -> dict[str, float]:
    """``"80,10,10"`` -> {"train": 80, "val": 10, "test": 10}; errors name the value."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 3:
        raise VidcolorError(f"--split {text!r}: expected three percentages train,val,test such as 80,10,10")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise VidcolorError(f"--split {text!r}: {next(p for p in parts if not _is_number(p))!r} is not a number") from None
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise VidcolorError(f"--split {text!r}: percentages must be finite and non-negative")
    if abs(sum(values) - 100.0) > 1e-6:
        raise VidcolorError(f"--split {text!r}: percentages add up to {sum(values):g}, not 100")
    if values[0] <= 0:
        raise VidcolorError(f"--split {text!r}: the train percentage must be above 0")
    return dict(zip(mf.SPLITS, values))


def _is_number(p: str) -> bool:
    try:
        float(p)
        return True
    except ValueError:
        return False


def split_counts(n: int, percents: dict[str, float]) -> dict[str, int]:
    """Videos per split: largest-remainder rounding, then one video for every non-empty split while
    there are enough (train first), so 6 videos at 80/10/10 give 4/1/1."""
    names = list(percents)
    raw = [n * percents[s] / 100.0 for s in names]
    counts = [math.floor(r) for r in raw]
    by_remainder = sorted(range(len(names)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    for i, s in enumerate(names):
        if percents[s] > 0 and counts[i] == 0:
            donor = max(range(len(names)), key=lambda j: counts[j])
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[i] += 1
    return dict(zip(names, counts))


def assign_splits(video_ids: list[str], percents: dict[str, float], seed: int) -> dict[str, str]:
    """Seeded split by video: shuffle the sorted ids, then cut by `split_counts`."""
    ids = sorted(video_ids)
    random.Random(seed).shuffle(ids)
    out: dict[str, str] = {}
    start = 0
    for split, count in split_counts(len(ids), percents).items():
        for vid in ids[start:start + count]:
            out[vid] = split
        start += count
    return out


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


def encode_frame(frame: np.ndarray, lossless: bool) -> tuple[str, bytes]:
    """uint8 (H, W, 3) -> (extension, bytes): PNG, or JPEG q95 with 4:4:4 chroma (keeps ab sharp)."""
    buf = io.BytesIO()
    if lossless:
        Image.fromarray(frame).save(buf, format="PNG", compress_level=1)
        return "png", buf.getvalue()
    Image.fromarray(frame).save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return "jpg", buf.getvalue()


# ----------------------------------------------------------------------------- per source (worker)

def process_source(task: dict[str, Any], progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Decode one source into a staging tar of clips; never raises (errors come back as ``reason``)."""
    path, vid, clip_len = Path(task["path"]), task["id"], task["clip_len"]
    result: dict[str, Any] = {"index": task["index"], "id": vid, "source": str(path), "reason": None}
    try:
        info = probe(path)
        result.update(fps=FramePicker(info.fps, task["fps"]).out_fps, width=info.width,
                      height=info.height, has_audio=info.has_audio)
        hist = stats.empty_histogram()
        window: deque[tuple[int, np.ndarray]] = deque(maxlen=clip_len)
        fresh: list[np.ndarray] = []  # frames not yet counted in the histogram
        clips: list[dict[str, Any]] = []
        n = 0
        with wds.TarWriter(task["staging"], encoder=False, mtime=int(time.time())) as tar:
            def write_clip(start: int) -> None:
                key = f"{vid}_clip{len(clips):05d}"
                sample = {"__key__": key}
                for j, (_, frame) in enumerate(window):
                    ext, data = encode_frame(frame, task["lossless"])
                    sample[f"{j:03d}.{ext}"] = data
                tar.write(sample)
                clips.append({"start": start, "frame_indices": [i for i, _ in window]})

            for index, frame in iter_indexed_frames(path, task["size"], task["fps"]):
                window.append((index, frame))
                fresh.append(frame)
                n += 1
                if n % clip_len == 0:
                    write_clip(n - clip_len)
                    hist += stats.frames_histogram(np.stack(fresh))
                    fresh.clear()
                    if progress:
                        progress(clip_len)
            if n < clip_len:
                raise VidcolorError(f"{path}: too short, {n} frames is less than one clip of {clip_len}")
            if fresh:  # the tail: one more clip aligned to the end, overlapping the previous one
                write_clip(n - clip_len)
                hist += stats.frames_histogram(np.stack(fresh))
                if progress:
                    progress(len(fresh))
        tone = stats.tone(hist)
        result.update(frames=n, clips=clips, hist=hist, grayscale=tone != "color", tone=tone)
    except VidcolorError as exc:
        result["reason"] = str(exc)
    except (av.FFmpegError, OSError, ValueError, RuntimeError) as exc:  # anything a bad file can raise
        log.debug("failed on %s", path, exc_info=True)
        result["reason"] = f"{path}: {type(exc).__name__}: {exc}"
    if result["reason"]:
        Path(task["staging"]).unlink(missing_ok=True)
    return result


def _tar_bytes(key: str, sample: dict[str, Any]) -> int:
    """Bytes the members of one sample take in a tar: a 512-byte header each, data padded to 512
    (plus a long-name header pair for member names over 100 characters)."""
    total = 0
    for member, data in sample.items():
        if member.startswith("__"):
            continue
        name_extra = 1024 + -(-len(key) // 512) * 512 if len(key) + 1 + len(member) > 100 else 0
        total += 512 + name_extra + -(-len(data) // 512) * 512
    return total


def _tar_file_size(member_bytes: int) -> int:
    """File size of a tar holding ``member_bytes``: two zero end blocks, padded to 10240-byte records."""
    return -(-(member_bytes + 1024) // tarfile.RECORDSIZE) * tarfile.RECORDSIZE


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)  # one process per core; avoid oversubscription


def _read_staging(path: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {member: bytes}) in tar order from a staging tar this module wrote."""
    key, members = None, {}
    with tarfile.open(path) as tar:
        for info in tar:
            base, ext = info.name.split(".", 1)
            if key is not None and base != key:
                yield key, members
                members = {}
            key = base
            members[ext] = tar.extractfile(info).read()
    if key is not None:
        yield key, members


# ----------------------------------------------------------------------------- output folder

def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise VidcolorError(f"--out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VidcolorError(f"--out {out}: cannot create output folder ({exc.strerror or exc})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise VidcolorError(f"--out {out}: folder is not writable")
    present = [p.name for p in out.iterdir() if not p.name.startswith(_BUILD_PREFIX)]
    if not present:
        return
    if not overwrite:
        raise VidcolorError(f"--out {out}: folder is not empty ({', '.join(sorted(present)[:3])}"
                            f"{', ...' if len(present) > 3 else ''}); pass --overwrite to replace the shard "
                            "set there, or choose an empty folder (two shard sets are never mixed)")
    if mf.MANIFEST_FILE not in present:
        raise VidcolorError(f"--out {out}: not empty and holds no shard set ({mf.MANIFEST_FILE} missing); "
                            "refusing to overwrite it")


def _install(build: Path, out: Path) -> None:
    """Replace the shard set in ``out`` by the one in ``build``; the manifest goes last."""
    old_manifest = out / mf.MANIFEST_FILE
    old_manifest.unlink(missing_ok=True)
    for p in out.iterdir():
        if p.is_file() and (_SHARD_NAME.match(p.name) or p.name == stats.AB_HIST_FILE):
            p.unlink()
    for p in sorted(build.iterdir()):
        if p.is_file() and p.name != mf.MANIFEST_FILE:
            os.replace(p, out / p.name)
    os.replace(build / mf.MANIFEST_FILE, out / mf.MANIFEST_FILE)


# ----------------------------------------------------------------------------- the whole run

def shard_command(args: argparse.Namespace) -> str:
    parts = ["vidcolor", "shard", *map(str, args.sources), "--out", str(args.out), "--size", str(args.size),
             "--clip-len", str(args.clip_len), "--split", args.split, "--seed", str(args.seed),
             "--shard-size", f"{args.shard_size:g}", "--jobs", str(args.jobs)]
    if args.fps is not None:
        parts += ["--fps", f"{args.fps:g}"]
    if args.lossless:
        parts.append("--lossless")
    if args.overwrite:
        parts.append("--overwrite")
    return shlex.join(parts)


def write_shard_set(sources: list[str | Path], out: str | Path, *, size: int = 256, clip_len: int = 16,
                    fps: float | None = None, split: str = "80,10,10", seed: int = 0,
                    shard_size: float = 256.0, lossless: bool = False, jobs: int = 1,
                    overwrite: bool = False, command: str | None = None,
                    show_progress: bool = True) -> dict[str, Any]:
    """Shard ``sources`` into ``out``; returns the manifest. Raises VidcolorError when nothing usable."""
    if size < 8 or size > 4096:
        raise VidcolorError(f"--size {size}: must be between 8 and 4096 px")
    if not 1 <= clip_len <= MAX_CLIP_LEN:
        raise VidcolorError(f"--clip-len {clip_len}: must be between 1 and {MAX_CLIP_LEN}")
    if fps is not None and not (fps > 0 and math.isfinite(fps)):
        raise VidcolorError(f"--fps {fps}: must be a positive number")
    if not shard_size > 0:
        raise VidcolorError(f"--shard-size {shard_size}: must be a positive number of MB")
    if jobs < 1:
        raise VidcolorError(f"--jobs {jobs}: must be at least 1")
    percents = parse_split(split)
    out = Path(out)
    _prepare_out(out, overwrite)

    paths: list[Path] = []
    skipped: list[dict[str, str]] = []
    for src in sources:
        src_path = Path(src)
        if not src_path.exists():
            skipped.append({"source": str(src), "reason": f"{src}: no such file or folder"})
            continue
        found = find_sources(src_path)
        if not found:
            skipped.append({"source": str(src), "reason": f"{src}: no video files or frame folders inside"})
        paths.extend(p for p in found if p.resolve() not in {q.resolve() for q in paths})
    ids = make_video_ids(paths)

    try:
        build = Path(tempfile.mkdtemp(prefix=_BUILD_PREFIX, dir=out))
    except OSError as exc:
        raise VidcolorError(f"--out {out}: folder is not writable ({exc.strerror or exc})") from None
    try:
        return _build(paths, ids, skipped, out, build, percents, size=size, clip_len=clip_len, fps=fps,
                      seed=seed, shard_bytes=int(shard_size * 1e6), lossless=lossless, jobs=jobs,
                      command=command, show_progress=show_progress)
    finally:
        shutil.rmtree(build, ignore_errors=True)


def _build(paths, ids, skipped, out, build, percents, *, size, clip_len, fps, seed, shard_bytes, lossless,
           jobs, command, show_progress) -> dict[str, Any]:
    staging = build / "staging"
    staging.mkdir()
    tasks = [{"index": i, "id": vid, "path": str(p), "size": size, "clip_len": clip_len, "fps": fps,
              "lossless": lossless, "staging": str(staging / f"{i:06d}.tar")} for i, (p, vid) in enumerate(zip(paths, ids))]

    # Decode phase: the bar counts frames; its rate is the frames/s of the whole run.
    t0 = time.perf_counter()
    results: list[dict[str, Any]] = []
    with tqdm(total=None, unit="frame", desc="decode", disable=not show_progress, smoothing=0.1) as bar:
        if jobs == 1 or len(tasks) <= 1:
            for task in tasks:
                results.append(process_source(task, progress=bar.update))
                bar.set_postfix_str(f"{len(results)}/{len(tasks)} sources")
        else:
            with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=mp.get_context("fork"),
                                     initializer=_worker_init) as pool:
                futures = [pool.submit(process_source, task) for task in tasks]
                for fut in as_completed(futures):
                    res = fut.result()
                    results.append(res)
                    bar.update(res.get("frames", 0) if not res["reason"] else 0)
                    bar.set_postfix_str(f"{len(results)}/{len(tasks)} sources")
    results.sort(key=lambda r: r["index"])
    decode_s = time.perf_counter() - t0

    for res in results:
        if res["reason"]:
            log.warning("skipped %s", res["reason"])
            skipped.append({"source": res["source"], "reason": res["reason"]})
    usable = [r for r in results if not r["reason"]]
    if not usable:
        lines = "\n  ".join(s["reason"] for s in skipped) or "no sources given"
        raise VidcolorError(f"nothing usable to shard; every source was skipped:\n  {lines}")

    split_of = assign_splits([r["id"] for r in usable if not r["grayscale"]], percents, seed)
    for r in usable:
        r["split"] = mf.LEGACY if r["grayscale"] else split_of[r["id"]]

    # Copy phase: staging tars -> split shards (no re-encoding). An integer mtime keeps tarfile
    # from adding a PAX header (1 KB) to every member.
    mtime = int(time.time())
    splits: dict[str, dict[str, Any]] = {}
    shard_stats: dict[str, dict[str, int]] = {}
    train_hist = stats.empty_histogram()
    videos = []
    for split in (*mf.SPLITS, mf.LEGACY):
        members = [r for r in usable if r["split"] == split]
        if not members:
            continue
        names: list[str] = []
        # Rolled over by hand on the real tar size (headers and padding included), so a shard
        # stays within --shard-size unless a single clip is larger.
        writer = wds.ShardWriter(str(build / f"{split}-%06d.tar"), maxcount=10 ** 12, maxsize=float("inf"),
                                 verbose=0, encoder=False, mtime=mtime)
        used = 0
        try:
            for r in members:
                r_shards: list[str] = []
                for (key, members_), clip in zip(_read_staging(str(staging / f"{r['index']:06d}.tar")), r["clips"]):
                    meta = {"video_id": r["id"], "split": split, "fps": r["fps"], "frame_indices": clip["frame_indices"],
                            "source": r["source"], "clip": int(key.rsplit("_clip", 1)[1]), "start": clip["start"]}
                    sample = {"__key__": key, **members_, "json": json.dumps(meta).encode()}
                    need = _tar_bytes(key, sample)
                    if used and _tar_file_size(used + need) > shard_bytes:
                        writer.next_stream()
                        used = 0
                    writer.write(sample)
                    used += need
                    name = Path(writer.fname).name
                    if name not in shard_stats:
                        shard_stats[name] = {"clips": 0, "frames": 0}
                        names.append(name)
                    shard_stats[name]["clips"] += 1
                    shard_stats[name]["frames"] += clip_len
                    if name not in r_shards:
                        r_shards.append(name)
                videos.append({"id": r["id"], "source": r["source"], "split": split, "frames": r["frames"],
                               "clips": len(r["clips"]), "fps": r["fps"], "width": r["width"], "height": r["height"],
                               "grayscale": r["grayscale"], "tone": r["tone"], "has_audio": r["has_audio"],
                               "shards": r_shards})
                if split == "train":
                    train_hist += r["hist"]
        finally:
            writer.close()
        splits[split] = {"shards": names, "clips": sum(len(r["clips"]) for r in members),
                         "frames": sum(r["frames"] for r in members), "videos": len(members)}
    shutil.rmtree(staging)
    if "train" not in splits:
        log.warning("no color video in the train split: ab_hist.npy is empty and the set cannot train a model")

    manifest = {
        "format": mf.FORMAT, "size": size, "clip_len": clip_len, "fps": fps, "lossless": lossless,
        "videos": videos, "splits": splits, "shard_stats": shard_stats, "skipped": skipped,
        "command": command or "", "versions": mf.versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "decode_seconds": round(decode_s, 3),
    }
    stats.save_histogram(build / stats.AB_HIST_FILE, train_hist)
    mf.write_manifest(build / mf.MANIFEST_FILE, manifest)
    _install(build, out)
    return manifest


def print_summary(manifest: dict[str, Any], out: str | Path) -> None:
    """The table people read after `vidcolor shard`."""
    print(f"shard set {out}: {manifest['size']} px, clip_len {manifest['clip_len']}, "
          f"{'PNG' if manifest['lossless'] else 'JPEG q95'}")
    print(f"{'split':<8} {'videos':>6} {'clips':>6} {'frames':>8} {'shards':>6}")
    for name, s in manifest["splits"].items():
        print(f"{name:<8} {s['videos']:>6} {s['clips']:>6} {s['frames']:>8} {len(s['shards']):>6}")
    total = sum(s["frames"] for s in manifest["splits"].values())
    secs = manifest.get("decode_seconds") or 0
    if secs:
        print(f"decoded {total} frames in {secs:.1f} s ({total / secs:.0f} frames/s)")
    if manifest["skipped"]:
        print(f"skipped {len(manifest['skipped'])} source(s):")
        for s in manifest["skipped"]:
            print(f"  {s['reason']}")


def main(args: argparse.Namespace) -> int:
    manifest = write_shard_set(args.sources, args.out, size=args.size, clip_len=args.clip_len, fps=args.fps,
                               split=args.split, seed=args.seed, shard_size=args.shard_size,
                               lossless=args.lossless, jobs=args.jobs, overwrite=args.overwrite,
                               command=shard_command(args))
    print_summary(manifest, args.out)
    return 0
