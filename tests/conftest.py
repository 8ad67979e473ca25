"""Shared test fixtures: tiny generated videos and a 64 px shard set made from them (session-scoped).

`demo_videos`: 6 color scenes (2 s at 12 fps, 64x86 px, `scene_000.mp4` ...) + `bw_000.mp4`.
`demo_shards`: those sharded at 64 px with clip_len 8 (3 clips per video; split 4/1/1 + legacy).
Both are read-only for tests: copy them before modifying anything. `tiny_checkpoint`: a tiny
untrained exp2 checkpoint folder in the test's tmp_path.

`fixture_study` / `fx`: a results database with one study of six trials and real media, for the
dashboard's and the Color Turing Test's tests (see `build_fixture_study`).

`s3_server`: an S3-compatible server on localhost (moto's server mode) for the whole session; it
puts ``AWS_ENDPOINT_URL`` and test credentials into this process's environment (and so into the
session's Ray head, whose nodes then reach it as a cluster's nodes reach their object store).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
import types
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DEMO_VIDEOS = 6
DEMO_SECONDS = 2.0
DEMO_FPS = 12
DEMO_SIZE = 64
DEMO_CLIP_LEN = 8


REPO = Path(__file__).resolve().parents[1]


# A fresh-clone CI run once ended in a segmentation fault after every test had passed and the
# summary was printed: in the interpreter's own teardown, where threads of C extensions (FFmpeg's,
# Ray's, gRPC's) can still be running. The run then ends with the session's exit status as soon as
# every plugin has finished (trylast), without that teardown.
_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session, exitstatus):
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if _EXIT_STATUS and not hasattr(config, "workerinput"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real footage beside the checkout (``../shared/data``: cockatoo.mp4, realshort.mp4,
    real/); never copied into the repo. Skips the test when it is not there."""
    for folder in (REPO.parent / "shared" / "data", Path("/work/shared/data")):
        if (folder / "cockatoo.mp4").is_file():
            return folder
    pytest.skip(f"real footage not found at {REPO.parent / 'shared' / 'data'}")


@pytest.fixture(scope="session")
def demo_videos(tmp_path_factory) -> Path:
    from data_shards.synthetic import make_demo_videos

    out = tmp_path_factory.mktemp("demo_videos")
    make_demo_videos(out, videos=DEMO_VIDEOS, seconds=DEMO_SECONDS, size=DEMO_SIZE, fps=DEMO_FPS, seed=0)
    return out


def _mjpeg_with_bad_frame(
    path: Path, frames: list[np.ndarray], bad: int, fps: int = 12, pix_fmt: str = "yuvj444p"
) -> Path:
    """An intra-only (MJPEG) mkv of ``frames`` whose frame ``bad`` has its JPEG data zeroed."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mjpeg", rate=fps)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode(None))
    with av.open(str(path)) as c:
        payload = [bytes(p) for p in c.demux(video=0) if p.size][bad]
    data = bytearray(path.read_bytes())
    at = data.find(payload)
    data[at : at + len(payload)] = bytes(len(payload))
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="session")
def mjpeg_with_bad_frame():
    """``make(path, frames, bad, fps=12, pix_fmt="yuvj444p")``: a video with one undecodable frame."""
    return _mjpeg_with_bad_frame


@pytest.fixture(scope="session")
def demo_shards(tmp_path_factory, demo_videos) -> Path:
    from data_shards.writer import write_shard_set

    out = tmp_path_factory.mktemp("demo_shards")
    write_shard_set([demo_videos], out, size=DEMO_SIZE, clip_len=DEMO_CLIP_LEN, seed=0, show_progress=False)
    return out


@pytest.fixture()
def tiny_checkpoint(tmp_path) -> Path:
    """A tiny untrained exp2 checkpoint folder (seeded), for the evaluation and experiments tests."""
    import torch

    from models.checkpoint import save_checkpoint
    from models.gamut import ABGamut
    from models.model import create_model
    from models.presets import get_preset

    torch.manual_seed(0)
    config = get_preset("exp2").replace(size="tiny")
    gamut = ABGamut(config.grid)
    save_checkpoint(tmp_path / "ck", create_model(config, gamut), config, gamut)
    return tmp_path / "ck"


# -- an S3-compatible server --------------------------------------------------------------------

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "vidcolor-test",
    "AWS_SECRET_ACCESS_KEY": "vidcolor-test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _s3():
    from pyarrow import fs

    return fs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"], scheme="http", allow_bucket_creation=True)


def _make_bucket(name: str) -> None:
    _s3().create_dir(name)


def _upload(local: Path, url: str) -> None:
    """Copy a local folder's files to ``s3://BUCKET/PREFIX`` (the bucket is created if needed)."""
    from pyarrow import fs

    prefix = url[len("s3://") :]
    s3 = _s3()
    s3.create_dir(prefix.split("/", 1)[0])
    fs.copy_files(str(local), prefix, source_filesystem=fs.LocalFileSystem(), destination_filesystem=s3)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's S3 server on 127.0.0.1; yields ``.endpoint``, ``.make_bucket(name)`` and
    ``.upload(folder, s3_url)``."""
    moto = Path(sys.executable).with_name("moto_server")
    if not moto.exists():
        pytest.fail(f"{moto} not found: the S3 tests need moto[server] (make setup installs it)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    server = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"moto_server did not come up on {endpoint}: {log.read_text()[-2000:]}")
            time.sleep(0.3)
    saved = {k: os.environ.get(k) for k in [*S3_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(S3_ENV, AWS_ENDPOINT_URL=endpoint)
    try:
        yield types.SimpleNamespace(endpoint=endpoint, make_bucket=_make_bucket, upload=_upload)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.terminate()
        server.wait(timeout=30)


# -- the fixture study (dashboard and CTT tests) --------------------------------------------------

STUDY = "fixture"
SIZE = 64
FRAMES = 8
FPS = 8
CLIPS = (("vid_a", 0), ("vid_b", 1))
# trial id -> (experiment, lam, lr, grid, saturation of its predictions, status, epochs)
TRIALS = {
    "t_001": ("exp1", 0.50, 1e-3, 10, 0.40, "TERMINATED", 3),
    "t_002": ("exp2", 0.98, 3e-3, 10, 0.95, "TERMINATED", 3),
    "t_003": ("exp2", 0.30, 1e-4, 12, 0.70, "STOPPED", 1),
    "t_004": ("exp5", 0.70, 5e-3, 12, 0.60, "TERMINATED", 3),
    "t_005": ("exp5", 0.75, 2e-3, 10, 0.50, "RUNNING", 2),
    "t_006": ("exp1", 0.40, 1e-2, 12, 0.30, "ERROR", 0),
}
SPEC = {
    "name": STUDY,
    "preset": "exp2",
    "num_trials": 8,
    # as study.tune.driver records it
    "search": [
        {"name": "lam", "type": "float", "low": 0.2, "high": 1.0, "log": False, "choices": []},
        {"name": "lr", "type": "float", "low": 1e-4, "high": 1e-2, "log": True, "choices": []},
        {"name": "grid", "type": "choice", "low": None, "high": None, "log": False, "choices": [10, 12]},
    ],
    "objective": {"metric": "val_rmse_rgb", "mode": "min"},
}


def gt_frames(seed: int) -> list[np.ndarray]:
    """A colorful moving pattern: uint8 (H, W, 3) RGB frames."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    out = []
    for t in range(FRAMES):
        phase = t / FRAMES + seed * 0.3
        r = 0.5 + 0.5 * np.sin(2 * np.pi * (xx + phase))
        g = 0.5 + 0.5 * np.sin(2 * np.pi * (yy + 0.5 * phase))
        b = 0.5 + 0.5 * np.cos(2 * np.pi * (xx + yy - phase))
        out.append((np.stack([r, g, b], -1) * 255).astype(np.uint8))
    return out


def gray_of(frame: np.ndarray) -> np.ndarray:
    y = frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(y[..., None], 3, axis=-1).clip(0, 255).astype(np.uint8)


def saturate(frame: np.ndarray, s: float) -> np.ndarray:
    g = gray_of(frame).astype(np.float32)
    return (g + s * (frame.astype(np.float32) - g)).clip(0, 255).astype(np.uint8)


_ENCODED: dict[str, Path] = {}  # content digest -> first mp4 of those frames


def write_mp4(path: Path, frames: list[np.ndarray]) -> None:
    """An H.264 mp4 of ``frames``; the same frames twice give the same file (libx264 is not
    byte-repeatable under load, and the real side of every trial's clip must be one clip)."""
    import hashlib
    import shutil

    from study.media.video_out import VideoWriter

    digest = hashlib.sha256(b"".join(f.tobytes() for f in frames)).hexdigest()
    if digest in _ENCODED and _ENCODED[digest].is_file():
        shutil.copyfile(_ENCODED[digest], path)
        return
    _ENCODED[digest] = Path(path)
    with VideoWriter(path, FPS, SIZE, SIZE) as w:
        for f in frames:
            w.write(f)


def build_fixture_study(root: Path, with_items: bool = True) -> dict:
    """A SQLite results database with one study of six trials (three experiments, per-epoch
    metrics, one early-stopped, one running, one failed) and real media: tiny H.264 mp4s and PNG
    frames of gray / prediction / ground truth for two clips per trial, plus CTT items built from
    those media."""
    from study.store import Store

    root = Path(root)
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{root / 'results.db'}"
    store = Store(url)
    store.create_study(STUDY, objective="val_rmse_rgb", mode="min", spec=SPEC, shards=str(root / "shards"))
    t0 = dt.datetime(2026, 1, 1, 12, 0, 0)
    for k, (tid, (exp, lam, lr, grid, sat, status, n_epochs)) in enumerate(TRIALS.items()):
        store.upsert_trial(
            STUDY,
            tid,
            experiment=exp,
            params={"lam": lam, "lr": lr, "grid": grid},
            config={"preset": exp, "lam": lam, "lr": lr, "grid": grid, "size": "tiny"},
            started=t0 + dt.timedelta(minutes=5 * k),
        )
        for e in range(n_epochs):
            rmse = 20 - 4 * sat + 3 / (e + 1) + 0.5 * abs(lam - 0.9)
            store.log_epoch(
                STUDY,
                tid,
                e,
                {  # the keys study.train.loop reports
                    "epoch": e,
                    "lr": lr,
                    "train_loss": 4.0 / (e + 1) + sat,
                    "val_rmse_rgb": rmse,
                    "val_rmse_ab": rmse / 2,
                    "val_psnr": 40 - rmse,
                    "val_colorfulness_pred": 10 + 30 * sat,
                    "val_colorfulness_gt": 40.0,
                    "val_colorfulness_gap": abs(30 - 30 * sat),
                    "val_temporal_error": 1.0 + (lam - 0.2) * 2 + sat,
                    "val_added_warp": 0.1 + 0.5 * sat,  # more color, more flicker on top of the input's
                    "val_added_cdc": 0.05 + 0.25 * sat,
                },
                time=t0 + dt.timedelta(minutes=5 * k + e + 1),
            )
        if status != "RUNNING":
            store.finish_trial(
                STUDY,
                tid,
                status,
                error="CUDA out of memory" if status == "ERROR" else None,
                ended=t0 + dt.timedelta(minutes=5 * k + n_epochs + 1),
            )
        if status == "ERROR":
            continue
        for seed, (vid, clip) in enumerate(CLIPS):
            gt = gt_frames(seed)
            views = {"gt": gt, "gray": [gray_of(f) for f in gt], "pred": [saturate(f, sat) for f in gt]}
            for role, frames in views.items():
                path = media / f"{tid}_{vid}_{clip}_{role}.mp4"
                write_mp4(path, frames)
                store.add_media(STUDY, tid, f"{role}_mp4", path, video_id=vid, clip=clip)
                for fi in (0, FRAMES - 1):
                    png = media / f"{tid}_{vid}_{clip}_{role}_{fi:03d}.png"
                    Image.fromarray(frames[fi]).save(png)
                    store.add_media(STUDY, tid, f"{role}_png", png, video_id=vid, clip=clip, frame=fi)
    info = {"url": url, "study": STUDY, "root": root, "store": store}
    if with_items:
        from study.ctt import build as ctt

        info["items"] = ctt.build_items(
            store, STUDY, trial_ids=None, top=None, clips=2, attention_rate=0.25, out=root / "ctt", seed=0
        )
    return info


@pytest.fixture(scope="session")
def fixture_study(tmp_path_factory):
    return build_fixture_study(tmp_path_factory.mktemp("dash"))


@pytest.fixture(scope="session")
def fx():
    """The fixture builder and its constants, for tests that need a fresh study of their own."""

    return types.SimpleNamespace(build=build_fixture_study, TRIALS=TRIALS, FRAMES=FRAMES, STUDY=STUDY)


# -- a two-objective study (the Pareto front of `vidcolor report`, the trials table and the page) ------

#: trial id -> (status, per-epoch (val_rmse_ratio, val_added_warp)). Each trial keeps its best
#: val_rmse_ratio epoch (ASHA's objective), so its point is t_a (0.90, 0.50) although its last epoch
#: (0.93, 0.00) would beat t_b; t_b (0.95, 0.10); t_c (0.97, 0.60), dominated by both; t_d (1.00,
#: -0.20) stopped by ASHA and t_e (0.85, 0.05) still running: by their numbers both would be on the
#: front, neither may be; t_f failed before its first epoch. The front: {t_a, t_b}.
TRADEOFF_TRIALS = {
    "t_a": ("TERMINATED", [(1.20, 0.30), (0.90, 0.50), (0.93, 0.00)]),
    "t_b": ("TERMINATED", [(1.10, 0.40), (1.00, 0.20), (0.95, 0.10)]),
    "t_c": ("TERMINATED", [(1.30, 0.20), (1.00, 0.70), (0.97, 0.60)]),
    "t_d": ("STOPPED", [(1.00, -0.20)]),
    "t_e": ("RUNNING", [(0.85, 0.05)]),
    "t_f": ("ERROR", []),
}


def build_tradeoff_study(root: Path) -> dict:
    """A results database with one study of two objectives (val_rmse_ratio and val_added_warp, both
    min; its spec record as `vidcolor tune` writes it) and the trials of TRADEOFF_TRIALS."""
    from study.config.spec import parse_spec
    from study.store import Store

    spec = parse_spec(
        {
            "name": "tradeoff",
            "preset": "exp5",
            "search": {"lam": {"type": "float", "low": 0.2, "high": 1.0}},
            "objectives": [{"metric": "val_rmse_ratio", "mode": "min"}, {"metric": "val_added_warp", "mode": "min"}],
        }
    )
    url = f"sqlite:///{Path(root) / 'tradeoff.db'}"
    store = Store(url)
    store.create_study("tradeoff", objective="val_rmse_ratio", mode="min", spec=spec.to_record())
    for k, (tid, (status, epochs)) in enumerate(TRADEOFF_TRIALS.items()):
        store.upsert_trial("tradeoff", tid, experiment="exp5", params={"lam": 0.2 + 0.1 * k})
        for e, (ratio, warp) in enumerate(epochs):
            store.log_epoch("tradeoff", tid, e + 1, {"epoch": e + 1, "val_rmse_ratio": ratio, "val_added_warp": warp})
        if status != "RUNNING":
            store.finish_trial("tradeoff", tid, status, error="boom" if status == "ERROR" else None)
    return {"url": url, "study": "tradeoff", "store": store}


@pytest.fixture()
def tradeoff_study(tmp_path):
    return build_tradeoff_study(tmp_path)
