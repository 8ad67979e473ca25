"""Real footage end to end: the seed's five experiments trained on real clips with one fixed budget,
scored on held-out real clips with color ground truth, beside the gray baseline.

1. Shards ``DATA/train`` (train/val by video, ``--split 90,10,0``) and ``DATA/test`` (test only,
   ``--split 0,0,100``) at ``--size`` px (default 64) into the work folder (reused when present).
2. ``vidcolor experiments`` on them: exp1 ... exp6, each trained with the same budget (``--epochs``
   x ``--steps`` optimizer steps of ``--batch`` frames, the tiny model, Ray Train's local mode;
   exp4 - exp6 start from exp2's model; exp5 and exp6's ConvLSTM trains on whole 16-frame clips,
   ``--temporal-batch`` of them a step, by default ``--batch`` / 16 so that every step sees the
   same frames, its gradient truncated every ``--seq-len`` + 1 frames; exp3 averages exp1 and
   exp2), evaluated on the test clips.
3. The seed-style table on the test clips: RMSE, RMSE over gray's, PSNR, SSIM, colorfulness ratio
   and its gap to 1, CDC and warping error and what the color adds to the gray input's
   (+CDC, +warp), per experiment, and the gray row (ab = 0: the input as a viewer sees it). With
   ``--seeds N`` every experiment is trained N times (seeds 0 ... N-1): the tables of
   ``vidcolor experiments --seeds`` (mean ± sd over the seeds, and each experiment's paired
   bootstrap interval against ``--reference``). Each experiment also gets a row ``expN+stab``: the
   same models scored through the filter of ``vidcolor colorize --stabilize`` (``--stabilize S``,
   default 0.7; ``--no-stabilize`` leaves them out), as ``vidcolor evaluate --stabilize`` scores
   it: on the test clips' frames at the shard size, a fresh filter per stored clip.
4. Two contact sheet PNGs per test clip, each model colorizing the whole clip in order at the
   sheet's resolution as ``vidcolor colorize`` would (its temporal state carried): ``CLIP.png``
   (rows: frames spread over the clip; columns: the gray input, each experiment, exp5 through
   ``--stabilize``, the ground truth) and ``CLIP-strip.png`` (the same models as rows, six
   consecutive frames across, where flicker shows).
5. The black-and-white films (``DATA/legacy``) colorized by the experiment with the best validation
   RMSE ratio (its mean over the seeds; chosen on validation, never on the test clips), by its
   seed with the best validation ratio.

    python bench/real.py [--data ../shared/data/real] [--workdir DIR] [--json FILE]

The footage is the user's (see its terms); nothing of it is copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from models import DEFAULT_STABILIZE_STRENGTH
from study.report import write_json

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "real"
EXPERIMENTS = ("exp1", "exp2", "exp3", "exp4", "exp5", "exp6")
TEMPORAL = ("exp5", "exp6")  # the ConvLSTM's: trained on whole clips
CLIP_LEN = 16  # frames per stored clip
SHEET_FRAMES = 4
SHEET_HEIGHT = 120  # px per tile row
STRIP_FRAMES = 6  # consecutive frames per model in the strip sheet
SHEET_STABILIZED = ("exp5",)  # models also shown through --stabilize on the sheets (the +stab rows: all)


def shard_sets(data: Path, work: Path, size: int) -> tuple[Path, Path]:
    """The training (train/val) and test-only shard sets, made once per work folder and size."""
    from data_shards.writer import write_shard_set

    out = []
    for name, split in (("train", "90,10,0"), ("test", "0,0,100")):
        folder = work / f"{name}{size}"
        manifest = folder / "manifest.json"
        if manifest.is_file() and json.loads(manifest.read_text()).get("size") == size:
            print(f"  shard set {folder} (kept)")
        else:
            t0 = time.monotonic()
            write_shard_set(
                [data / name],
                folder,
                size=size,
                clip_len=CLIP_LEN,
                split=split,
                seed=0,
                overwrite=True,
                show_progress=False,
                command=f"bench/real.py {name} --split {split}",
            )
            print(f"  shard set {folder} in {time.monotonic() - t0:.0f} s")
        out.append(folder)
    return out[0], out[1]


def _display(frames: np.ndarray, height: int) -> np.ndarray:
    from PIL import Image

    h, w = frames.shape[1:3]
    size = (max(8, round(w * height / h)), height)
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.LANCZOS)) for f in frames])


def _gray(frames: np.ndarray) -> np.ndarray:
    """The frames' L with ab = 0, as RGB: what the model sees, and the gray baseline."""
    import torch

    from models.color import frames_to_lab, lab_to_frames

    l_norm, ab = frames_to_lab(torch.from_numpy(frames)[None])
    return lab_to_frames(l_norm, torch.zeros_like(ab))[0].numpy()


def _colorized(clip_frames: np.ndarray, checkpoint: str, stabilize: float | None) -> np.ndarray:
    """The clip's frames colorized in order as ``vidcolor colorize`` does (the temporal state, and
    the --stabilize filter's, carried from frame to frame), (T, H, W, 3) uint8."""
    from study.colorize.inference import FilmInference

    film = FilmInference.from_checkpoint(checkpoint, device="cpu", stabilize=stabilize)
    film.reset()
    return np.concatenate([film.colorize(f[None]) for f in clip_frames])


def _sheet(columns: list[tuple[str, np.ndarray]], out: Path, *, label_w: int = 0) -> Path:
    """Tiles (rows x (H, W, 3)) per labelled column into one PNG; with ``label_w`` the columns are
    drawn as rows (label at the left), for a strip of consecutive frames per model."""
    from PIL import Image, ImageDraw

    th, tw = columns[0][1].shape[1:3]
    n = len(columns[0][1])
    label_h = 18
    if label_w:
        sheet = Image.new("RGB", (label_w + tw * n, th * len(columns)), "white")
    else:
        sheet = Image.new("RGB", (tw * len(columns), label_h + th * n), "white")
    draw = ImageDraw.Draw(sheet)
    for c, (label, tiles) in enumerate(columns):
        if label_w:
            draw.text((4, c * th + th // 2 - 6), label, fill="black")
        else:
            draw.text((c * tw + 4, 3), label, fill="black")
        for r, tile in enumerate(tiles):
            xy = (label_w + r * tw, c * th) if label_w else (c * tw, label_h + r * th)
            sheet.paste(Image.fromarray(tile.astype(np.uint8)), xy)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def contact_sheet(
    clip: Path,
    checkpoints: dict[str, str],
    out: Path,
    stabilize: float | None = None,
    stabilized: tuple[str, ...] = (),
) -> list[Path]:
    """Two PNGs per clip, each model colorizing the whole clip in order (its temporal state carried,
    as ``vidcolor colorize`` runs; with ``stabilize``, the models named in ``stabilized`` also
    through ``--stabilize S``, as ``expN+stab``): ``out`` (rows: SHEET_FRAMES frames spread over
    the clip; columns: gray input, each model, ground truth) and its ``-strip`` sibling (rows: the
    same columns; across: STRIP_FRAMES consecutive frames from the clip's middle, where flicker
    shows)."""
    from data_shards.video import decode_frames, probe

    info = probe(clip)
    frames = np.stack([frame for _, frame in decode_frames(info)])
    shown = _display(frames, SHEET_HEIGHT)
    picks = np.linspace(0, len(frames) - 1, SHEET_FRAMES).round().astype(int)
    start = max(0, len(frames) // 2 - STRIP_FRAMES // 2)
    strip = np.arange(start, min(len(frames), start + STRIP_FRAMES))
    columns = [("gray input", _gray(shown))]
    for name, ckpt in checkpoints.items():
        columns.append((name, _colorized(shown, ckpt, None)))
        if stabilize is not None and name in stabilized:
            columns.append((f"{name}+stab", _colorized(shown, ckpt, stabilize)))
    columns.append(("ground truth", shown))
    strip_out = out.with_name(f"{out.stem}-strip{out.suffix}")
    return [
        _sheet([(label, tiles[picks]) for label, tiles in columns], out),
        _sheet([(label, tiles[strip]) for label, tiles in columns], strip_out, label_w=90),
    ]


def colorize_films(legacy: Path, checkpoint: str, out: Path) -> list[dict]:
    from study.cli import main as vidcolor

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for src in sorted(legacy.iterdir()):
        dest = out / f"{src.stem}_color.mp4"
        t0 = time.monotonic()
        rc = vidcolor(["colorize", checkpoint, str(src), str(dest), "--overwrite", "--device", "cpu"])
        rows.append({"film": src.name, "out": str(dest), "rc": rc, "seconds": time.monotonic() - t0})
    return rows


def best_seed(entry: dict) -> str:
    """The checkpoint of an experiment's seed with the lowest validation RMSE ratio (its only one
    without --seeds)."""
    runs = [r for r in entry.get("seeds", [entry]) if (r.get("val") or {}).get("val_rmse_ratio") is not None]
    return min(runs, key=lambda r: r["val"]["val_rmse_ratio"])["checkpoint"] if runs else entry["checkpoint"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT_DATA), help="folder with train/, test/ and legacy/")
    p.add_argument("--workdir", default="real_run", help="shard sets, runs, sheets and films (default real_run)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--steps", type=int, default=250, help="optimizer steps per epoch")
    p.add_argument("--batch", type=int, default=16, help="windows per step")
    p.add_argument(
        "--temporal-batch",
        type=int,
        default=None,
        metavar="N",
        help="whole clips per step for exp5 and exp6 (default: --batch / the clips' 16 frames, at least 1: "
        "the frames of the image models' step)",
    )
    p.add_argument("--seq-len", type=int, default=2, help="exp5's ConvLSTM context (windows of seq_len + 1 frames)")
    p.add_argument("--only", default=None, help="comma-separated experiments (default all of EXPERIMENTS)")
    p.add_argument("--seeds", type=int, default=1, help="train each experiment N times, seeds 0 ... N-1 (default 1)")
    p.add_argument("--reference", default=None, help="the experiment the others are compared with (default exp1)")
    p.add_argument(
        "--stabilize",
        type=float,
        default=DEFAULT_STABILIZE_STRENGTH,
        metavar="S",
        help=f"strength of the expN+stab rows: each model scored through the filter of colorize --stabilize S, "
        f"as evaluate --stabilize does (default {DEFAULT_STABILIZE_STRENGTH})",
    )
    p.add_argument("--no-stabilize", action="store_true", help="leave the expN+stab rows out")
    p.add_argument(
        "--rescore", action="store_true", help="train nothing: score the runs already in the work folder again"
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more settings for every experiment")
    p.add_argument("--json", default=None, metavar="FILE")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from data_shards.outdir import check_file
    from study.experiments import run_experiments, summary

    if args.json:
        check_file(args.json, "--json", overwrite=True)  # a bench run replaces its own figures
    data, work = Path(args.data), Path(args.workdir).resolve()
    for sub in ("train", "test", "legacy"):
        if not (data / sub).is_dir():
            print(f"error: {data / sub}: not found (the real footage: train/, test/, legacy/)", file=sys.stderr)
            return 2
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    print(f"[1/4] shard sets at {args.size} px")
    train, test = shard_sets(data, work, args.size)
    # the ConvLSTM trains on whole clips (CLIP_LEN frames a window): the same frames per step as
    # the image models' --batch single frames, unless --temporal-batch says otherwise
    clips = args.temporal_batch or max(1, args.batch // CLIP_LEN)
    budget = [
        "size=tiny",
        f"epochs={args.epochs}",
        f"steps_per_epoch={args.steps}",
        f"batch_size={args.batch}",
        f"seq_len={args.seq_len}",
        *(f"{name}.batch_size={clips}" for name in TEMPORAL),
    ]
    print(
        f"[2/4] experiments, each {args.epochs} x {args.steps} steps of {args.batch} frames "
        f"({clips} whole clip(s) of {CLIP_LEN} for {' and '.join(TEMPORAL)}; tiny model, {args.size} px), "
        f"{args.seeds} seed(s) each"
    )
    t0 = time.monotonic()
    results = run_experiments(
        str(train),
        work / "runs",
        [*budget, *args.set],
        only=args.only or ",".join(EXPERIMENTS),
        workers=0,
        split="test",
        test_shards=str(test),
        overwrite=True,
        seeds=args.seeds,
        reference=args.reference,
        stabilize=None if args.no_stabilize else args.stabilize,
        rescore=args.rescore,
    )  # its own runs
    train_s = time.monotonic() - t0
    n_clips = results["experiments"] and len(next(iter(results["experiments"].values()))["videos"])
    print(
        f"\nthe seed's experiments on {n_clips} "
        f"real test clips ({data / 'test'}), {args.epochs} x {args.steps} steps x {args.batch} frames "
        f"({clips} clip(s) for {', '.join(TEMPORAL)}), tiny, {args.size} px:"
    )
    print(summary(results))
    print("[3/4] contact sheets" + (" (seed 0's models)" if args.seeds > 1 else ""))
    checkpoints = {name: e["checkpoint"] for name, e in results["experiments"].items() if not name.endswith("+stab")}
    sheets = [
        str(path)
        for clip in sorted((data / "test").iterdir())
        for path in contact_sheet(
            clip,
            checkpoints,
            work / "sheets" / f"{clip.stem}.png",
            None if args.no_stabilize else args.stabilize,
            stabilized=SHEET_STABILIZED,
        )
    ]
    print("  " + "\n  ".join(sheets))
    chosen = {
        n: e["val"]["val_rmse_ratio"]
        for n, e in results["experiments"].items()
        if (e.get("val") or {}).get("val_rmse_ratio") is not None
    }  # trained ones, on validation
    best_name = min(chosen, key=chosen.get) if chosen else "exp1"
    film_checkpoint = best_seed(results["experiments"][best_name]) if chosen else checkpoints[best_name]
    print(f"[4/4] black-and-white films colorized by {best_name} (best validation RMSE/gray): {film_checkpoint}")
    films = colorize_films(data / "legacy", film_checkpoint, work / "films")
    for f in films:
        print(f"  {f['out']} ({'ok' if f['rc'] == 0 else 'exit ' + str(f['rc'])}, {f['seconds']:.0f} s)")
    total = time.monotonic() - t_start
    print(f"total {total / 60:.1f} min (training and evaluation {train_s / 60:.1f} min)")
    if args.json:
        write_json(
            args.json,
            {
                "budget": budget,
                "size": args.size,
                "results": results,
                "sheets": sheets,
                "films": films,
                "best": best_name,
                "film_checkpoint": film_checkpoint,
                "seconds": total,
            },
        )
    return 0 if all(f["rc"] == 0 for f in films) else 1


if __name__ == "__main__":
    sys.exit(main())
