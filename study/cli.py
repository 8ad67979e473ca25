"""The `vidcolor` command line: one parser, subcommands imported lazily.

Each subcommand maps to a handler `module:function(args) -> int`. The handler module is imported
only when its subcommand runs, so `vidcolor shard` never imports Ray and `vidcolor dashboard`
never imports torch.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys
from collections.abc import Sequence

from models import DEFAULT_STABILIZE_STRENGTH
from models.errors import VidcolorError
from study.media import ENCODER_PRESET, X264_PRESETS
from study.ray_runtime import configure_auth

# errors of a path given on the command line that no command can use: a name longer than the file
# system allows, a symbolic link that loops (the CLI turns them into one error line naming the path)
UNUSABLE_PATH_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ELOOP})

# every command that can replace an output takes --overwrite with this help; each output's own help
# says how a folder is replaced (data_shards.outdir checks every output before any work)
OVERWRITE_HELP = "replace outputs that already exist (default: refuse them, before any work)"


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _add_expires(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--expires",
        default=None,
        metavar="WHEN",
        help="the links stop opening sessions after a duration (7d, 36h, 90m) or at a UTC date / time "
        "(2027-01-31T18:00); default never",
    )


def _add_overwrite(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)


def _add_demo_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo-data", help="generate small deterministic color videos (+1 black-and-white)")
    p.add_argument(
        "--out",
        required=True,
        help="output folder, new or empty (--overwrite replaces a folder of "
        "earlier demo videos whole, once the new ones are written)",
    )
    p.add_argument("--videos", type=int, default=8, help="number of color videos (default 8)")
    p.add_argument("--seconds", type=float, default=4.0, help="length of each video (default 4)")
    p.add_argument("--size", type=int, default=96, help="frame height in px; width is 4:3 (default 96)")
    p.add_argument("--fps", type=int, default=12, help="frame rate (default 12)")
    p.add_argument("--seed", type=int, default=0)
    _add_overwrite(p)
    p.set_defaults(handler="data_shards.synthetic:main")


def _add_shard(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("shard", help="videos or frame folders -> WebDataset shards + manifest")
    p.add_argument("sources", nargs="+", metavar="SRC", help="video files, frame folders, or directories of them")
    p.add_argument(
        "--out",
        required=True,
        help="output folder for the shard set, new or empty (--overwrite "
        "replaces the shard set there, once the new one is built; other files stay)",
    )
    p.add_argument("--size", type=int, default=256, help="square frame size: short side then center crop (default 256)")
    p.add_argument("--clip-len", type=int, default=16, help="frames per stored clip (default 16)")
    p.add_argument("--fps", type=float, default=None, help="resample to this frame rate (default: keep the source's)")
    p.add_argument(
        "--split",
        default=None,
        help="train,val,test percentages by video (default 80,10,10; a 0 "
        "leaves a split empty, e.g. 0,0,100 for an evaluation-only set); with --split-file: how the "
        "sources the file does not list are drawn",
    )
    p.add_argument(
        "--split-file",
        default=None,
        metavar="FILE",
        help="CSV of source,split lines (train, val or test) assigning sources by video id or path",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the split")
    p.add_argument("--shard-size", type=float, default=256.0, help="max shard size in MB (default 256)")
    p.add_argument("--lossless", action="store_true", help="store PNG instead of quality-95 JPEG")
    p.add_argument("--jobs", type=int, default=1, help="videos decoded in parallel (default 1)")
    _add_overwrite(p)
    p.set_defaults(handler="data_shards.writer:main")


def _add_import_eccv16(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-eccv16", help="official ECCV16 weights (.pth, local file) -> a checkpoint")
    p.add_argument("weights", help="colorization_release_v2-9b330a0b.pth")
    p.add_argument(
        "--out",
        required=True,
        help="checkpoint folder to write, new or empty (--overwrite replaces "
        "a checkpoint folder whole, once the new one is written)",
    )
    _add_overwrite(p)
    p.set_defaults(handler="study.train.import_weights:main")


def _add_trackers(p: argparse.ArgumentParser, default_dir: str) -> None:
    p.add_argument(
        "--log",
        default=None,
        metavar="TRACKERS",
        help="also send the run to experiment trackers: tensorboard, mlflow, wandb (comma-separated; "
        "W&B offline unless WANDB_API_KEY is set)",
    )
    p.add_argument("--log-dir", default=None, metavar="DIR", help=f"where --log writes (default {default_dir})")
    p.add_argument(
        "--mlflow-uri",
        default=None,
        metavar="URI",
        help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else a SQLite store in --log-dir)",
    )


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one configuration with Ray Train")
    p.add_argument("--shards", required=True, help="shard set (folder or URL)")
    p.add_argument("--preset", default="exp2", help="exp1 ... exp6 (default exp2)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting (repeatable)")
    p.add_argument(
        "--out",
        required=True,
        help="run folder, new or empty; the best checkpoint lands in OUT/best/ "
        "(--resume continues the run there, --overwrite deletes it before training)",
    )
    p.add_argument("--workers", type=int, default=1, help="Ray Train workers (default 1)")
    p.add_argument("--gpu", action="store_true", help="one GPU per worker")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument(
        "--media-every",
        type=_non_negative_int,
        default=0,
        metavar="K",
        help="render a validation clip's frames every K epochs and at the last, into OUT/samples/epochs "
        "(sent to --log trackers at each epoch's step; default 0: none)",
    )
    _add_overwrite(p)
    _add_trackers(p, "OUT/logs")
    p.set_defaults(handler="study.train.command:main")


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="per-video metrics of a checkpoint on a split")
    p.add_argument("checkpoint")
    p.add_argument("--shards", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="whole clips per batch: every frame of the split is scored, a temporal model's state "
        "carried through each clip (default 8)",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="annealed-mean T, 0 (the mode) to 1 (the mean) and up (default: the checkpoint's)",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="check the split's shard checksums (sha256, from the manifest) before reading",
    )
    _add_stabilize(p)
    _add_overwrite(p)
    p.set_defaults(handler="study.evaluation.evaluate:main")


def _add_tune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="run a hyperparameter study (Ray Tune + Optuna + ASHA)")
    p.add_argument("spec", metavar="STUDY.toml")
    p.add_argument("--shards", default=None, help="shard set (default: the spec's)")
    p.add_argument("--db", default=None, help="results database URL (default sqlite:///vidcolor.db)")
    p.add_argument("--storage", default=None, help="Ray storage path or s3:// URL (default ./ray_results)")
    p.add_argument("--address", default=None, help="Ray head address (default: start a local Ray)")
    p.add_argument("--trials", type=int, default=None, help="override the spec's number of trials")
    p.add_argument("--resume", action="store_true", help="continue an interrupted study")
    p.add_argument(
        "--stall-after",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="with no trial progress for this long, report what holds the resources and reclaim "
        "placement groups nothing uses (default 300)",
    )
    _add_trackers(p, "STORAGE/NAME-logs")
    p.set_defaults(handler="study.tune.command:main")


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="a study's trials with their objectives and its Pareto front")
    p.add_argument("study", metavar="STUDY", nargs="?", default=None, help="the study's name in the results database")
    p.add_argument("--study", dest="study_option", default=None, metavar="NAME", help="the same as STUDY")
    p.add_argument("--db", default=None, help="results database URL (default sqlite:///vidcolor.db)")
    p.add_argument(
        "--out",
        default=None,
        metavar="FILE.html",
        help="also write the study as one self-contained HTML file (tables, plots, the best trials' "
        "frames and clips, CTT results) that opens offline",
    )
    _add_overwrite(p)
    p.set_defaults(handler="study.tune.study_report:main")


def _add_experiments(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiments", help="the seed's experiments 1-5 and exp6 (+ temporal loss) with one budget")
    p.add_argument("--shards", required=True, help="shard set the experiments train on")
    p.add_argument(
        "--test-shards",
        default=None,
        metavar="SET",
        help="shard set they are evaluated on (default: --shards), e.g. one made with --split 0,0,100",
    )
    p.add_argument("--split", default="test", help="split of the evaluation set (default test)")
    p.add_argument(
        "--out",
        required=True,
        help="workspace: one run folder OUT/expN per experiment; those of "
        "experiments not chosen are kept (and used); --overwrite deletes a chosen one's before it runs",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for every experiment; expN.KEY=VALUE for expN alone (e.g. exp5.batch_size=1)",
    )
    p.add_argument("--pretrained", default=None, help="checkpoint for exp4 - exp6 (default: the exp2 model)")
    p.add_argument("--only", default=None, help="comma list, e.g. exp1,exp2,exp3")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="N",
        help="train each experiment N times, seeds 0 ... N-1 (OUT/expN/seed{k}), and report mean ± sd "
        "and each one's paired bootstrap interval against --reference (default 1)",
    )
    p.add_argument(
        "--reference",
        default=None,
        metavar="NAME",
        help="the experiment the others are compared with (default exp1, else the first chosen)",
    )
    p.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON (every seed's too)")
    _add_stabilize(
        p, "also score every experiment through the temporal filter of colorize --stabilize (rows expN+stab)"
    )
    _add_overwrite(p)
    p.add_argument(
        "--rescore",
        action="store_true",
        help="train nothing: score the chosen experiments' checkpoints already in OUT again "
        "(another test set, or after a change of the metrics)",
    )
    p.set_defaults(handler="study.experiments:main")


def _add_colorize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("colorize", help="colorize a black-and-white video with a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("input", metavar="IN", help="video file, frame folder, or a directory of them")
    p.add_argument("output", metavar="OUT", nargs="?", default=None, help="mp4 file or folder (default: IN_color.mp4)")
    p.add_argument("--device", default=None)
    p.add_argument("--batch-size", type=int, default=None, help="frames per model call (default 16)")
    p.add_argument("--crf", type=int, default=18, help="libx264 quality, 0 (lossless) to 51 (default 18)")
    p.add_argument(
        "--encoder-preset",
        default=ENCODER_PRESET,
        choices=X264_PRESETS,
        help=f"libx264 speed/size trade-off (default {ENCODER_PRESET})",
    )
    p.add_argument("--size", type=int, default=None, help="working size (default: the checkpoint's)")
    p.add_argument("--temperature", type=float, default=None, help="annealed-mean T (default: the checkpoint's)")
    _add_stabilize(p)
    _add_overwrite(p)
    p.set_defaults(handler="study.colorize.command:main", before_torch="study.colorize:share_cores_with_codecs")


def _add_stabilize(p: argparse.ArgumentParser, what: str | None = None) -> None:
    """``--stabilize [STRENGTH]``: the flow-guided temporal filter of models.stabilize (None: off)."""
    what = what or "filter the colors over time along the optical flow of the gray frames (less flicker)"
    p.add_argument(
        "--stabilize",
        type=float,
        nargs="?",
        const=DEFAULT_STABILIZE_STRENGTH,
        default=None,
        metavar="STRENGTH",
        help=f"{what}, STRENGTH in [0, 1] (alone: {DEFAULT_STABILIZE_STRENGTH}, chosen on validation footage; "
        "default: off)",
    )


def _add_ctt(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ctt", help="Color Turing Test items and results")
    ctt = p.add_subparsers(dest="ctt_command", required=True)
    b = ctt.add_parser("build", help="make CTT items from trials and clips")
    b.add_argument("--db", default=None)
    b.add_argument("--study", default=None, help="study name (default: the latest)")
    which = b.add_mutually_exclusive_group()
    which.add_argument(
        "--trials",
        default=None,
        help="comma list of trial ids (default: the best trial of each experiment, or the best 3 by the "
        "objective when every trial is of one experiment; the build prints which)",
    )
    which.add_argument("--top", type=int, default=None, help="the top k trials instead (not with --trials)")
    b.add_argument(
        "--shards",
        default=None,
        help="shard set to render the clips from (default: the one the study was run on; the one used is "
        "printed). A trial without a checkpoint or shard set uses its stored sample media, rendered on "
        "the validation split (its items show split val)",
    )
    b.add_argument(
        "--split",
        default="test",
        help="test (which-is-real pairs) or legacy (black-and-white originals: 1-5 rating items)",
    )
    b.add_argument("--medium", default="clip", choices=("clip", "frame"), help="mp4 clips or PNG still frames")
    b.add_argument(
        "--kind", dest="medium", default=argparse.SUPPRESS, choices=("clip", "frame"), help=argparse.SUPPRESS
    )  # the old name of --medium, kept for existing scripts
    b.add_argument("--clips", type=int, default=8, help="clips per trial")
    b.add_argument("--attention-rate", type=float, default=0.1)
    b.add_argument(
        "--out",
        default=None,
        help="media folder (default: beside the database); it only gains files, under new names. An item "
        "already built (same trial, video, clip, still, medium and split) is kept, not made again",
    )
    b.set_defaults(handler="study.ctt.build:main_build")
    e = ctt.add_parser("export", help="write CTT results (per trial and experiment)")
    e.add_argument("--db", default=None)
    e.add_argument("--study", default=None)
    e.add_argument("--exclude-failed", action="store_true", help="drop raters who failed attention checks")
    e.add_argument(
        "--out",
        default=None,
        help="CSV file of per-trial results; FILE-agreement.csv, FILE-raters.csv and FILE-ranking.csv are "
        "written beside it (docs/ctt-analysis.md). Default: print a table and a summary",
    )
    _add_overwrite(e)
    e.set_defaults(handler="study.ctt.export:main_export")
    c = ctt.add_parser("campaign", help="campaigns: a fixed protocol raters join through invite links")
    cs = c.add_subparsers(dest="campaign_command", required=True)
    cc = cs.add_parser("create", help="create a campaign and print its invite links")
    cc.add_argument("--db", default=None)
    cc.add_argument("--study", default=None, help="study name (default: the latest)")
    cc.add_argument("--name", required=True, help="campaign name (unique in the study)")
    cc.add_argument(
        "--task",
        default="2afc",
        choices=("2afc", "rating", "pairwise"),
        help="2afc: which of two is real; rating: 1-5 naturalness of one; pairwise: which of two "
        "trials' colorizations of one source looks more natural (ranks the trials)",
    )
    cc.add_argument("--display-s", type=float, default=1.0, help="seconds each item is shown (0: until answered)")
    cc.add_argument(
        "--pairs",
        type=int,
        default=None,
        help="counted items per session (default 40, or as many as the study's items allow: the command says so)",
    )
    cc.add_argument(
        "--practice",
        type=int,
        default=None,
        help="practice items with feedback first (default 10, or a fifth of the study's items when it has too "
        "few: the command says so)",
    )
    cc.add_argument("--attention-share", type=float, default=0.1, help="share of attention checks (default 0.1)")
    cc.add_argument("--trials", default=None, help="comma list of trial ids (default: every trial with items)")
    cc.add_argument("--links", type=int, default=1, help="invite links to make (default 1)")
    cc.add_argument("--uses", type=int, default=1, help="sessions per link (default 1; 0 = any number)")
    cc.add_argument(
        "--base-url",
        default="http://127.0.0.1:8502",
        help="where `vidcolor ctt serve` is reached, for the printed links (an http or https URL)",
    )
    _add_expires(cc)
    rec = cc.add_argument_group("recruiting platforms (Prolific, MTurk, your own)")
    rec.add_argument(
        "--consent", default=None, metavar="FILE", help="text of the consent page (UTF-8; blank lines part paragraphs)"
    )
    rec.add_argument(
        "--platform",
        choices=("prolific", "mturk"),
        default=None,
        help="take the participant's ids from the platform's URL parameters (prolific: PROLIFIC_PID, "
        "STUDY_ID, SESSION_ID; mturk: workerId, hitId, assignmentId); one session per participant",
    )
    rec.add_argument(
        "--id-param",
        action="append",
        default=[],
        metavar="KEY=NAME",
        help="a URL parameter carrying an id (KEY participant, study or session), for another platform "
        "or to rename one (repeatable)",
    )
    rec.add_argument("--completion-code", default=None, help="the code a rater who finished is shown (and sent)")
    rec.add_argument("--screened-code", default=None, help="the code a rater screened out is shown (and sent)")
    rec.add_argument(
        "--completion-url",
        default=None,
        help="where a rater goes at the end, {code} replaced by their code (Prolific: "
        "https://app.prolific.com/submissions/complete?cc={code})",
    )
    rec.add_argument("--screen", action="store_true", help="a short colour-vision screen (4 plates) before the items")
    cc.set_defaults(handler="study.ctt.campaign:main_create")
    ci = cs.add_parser("invite", help="more invite links for a campaign")
    for a in (("--db",), ("--study",)):
        ci.add_argument(*a, default=None)
    ci.add_argument("--name", required=True)
    ci.add_argument("--links", type=int, default=1)
    ci.add_argument("--uses", type=int, default=1, help="sessions per link (0 = any number)")
    ci.add_argument("--base-url", default="http://127.0.0.1:8502", help="as for create (an http or https URL)")
    _add_expires(ci)
    ci.set_defaults(handler="study.ctt.campaign:main_invite")
    cx = cs.add_parser("close", help="close a campaign: its links open no new session (open ones can finish)")
    for a in (("--db",), ("--study",)):
        cx.add_argument(*a, default=None)
    cx.add_argument("--name", required=True)
    cx.set_defaults(handler="study.ctt.campaign:main_close")
    iv = ctt.add_parser("invite", help="invite links")
    ivs = iv.add_subparsers(dest="invite_command", required=True)
    rv = ivs.add_parser("revoke", help="withdraw an invite link: it opens no new session")
    rv.add_argument("--db", default=None)
    rv.add_argument("token", help="the link's token, or the whole link")
    rv.set_defaults(handler="study.ctt.campaign:main_revoke")
    cl = cs.add_parser("list", help="the study's campaigns, their sessions and votes")
    cl.add_argument("--db", default=None)
    cl.add_argument("--study", default=None)
    cl.set_defaults(handler="study.ctt.campaign:main_list")
    sv = ctt.add_parser("serve", help="serve the rating flow of open campaigns to raters (no researcher pages)")
    sv.add_argument("--db", default=None)
    sv.add_argument("--port", type=int, default=8502)
    sv.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default localhost only; 0.0.0.0 to let raters on other machines in)",
    )
    sv.add_argument(
        "--cache",
        default=None,
        metavar="DIR",
        help="where the items' composite files are made (default: a temporary folder, removed at the end)",
    )
    sv.set_defaults(handler="study.serve:main_raters")


def _add_dashboard(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="start the Streamlit dashboard")
    p.add_argument("--db", default=None)
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default localhost only)")
    p.set_defaults(handler="study.serve:main")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole flow on generated data")
    p.add_argument("--workdir", default="demo_run", help="where data, shards, results go (default ./demo_run)")
    p.add_argument("--trials", type=int, default=None)
    p.add_argument("--no-dashboard", action="store_true", help="do not offer to start the dashboard")
    p.set_defaults(handler="study.demo:main")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidcolor", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_demo_data,
        _add_shard,
        _add_import_eccv16,
        _add_train,
        _add_evaluate,
        _add_tune,
        _add_report,
        _add_experiments,
        _add_colorize,
        _add_ctt,
        _add_dashboard,
        _add_demo,
    ):
        add(sub)
    return parser


def _resolve(spec: str):
    module_name, func_name = spec.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_auth()  # before any handler module imports Ray (Ray reads it at import)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if before_torch := getattr(args, "before_torch", None):  # environment torch reads once, as it loads
        _resolve(before_torch)()
    try:
        return int(_resolve(args.handler)(args) or 0)
    except VidcolorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the system refuses to look at, wherever a command first touches it
        if exc.errno not in UNUSABLE_PATH_ERRNOS or exc.filename is None:
            raise
        print(f"error: {exc.filename}: cannot be used ({exc.strerror})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
