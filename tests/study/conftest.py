"""One Ray head for the Ray tests of the session, helpers to run and stop Ray processes, and a fake
`run_training` for `vidcolor experiments` (`fake_training`).

The head is a real ``ray start --head --block`` process (2 CPUs, a capped object store, a short
temp dir, the dashboard on: its State API frees the placement groups of stopped trials). Tests
connect to it with ``address``, so the study drivers they start as subprocesses (to kill them)
and the multi-node test's second node join the same cluster. Token authentication is on by
default since Ray 2.59: every client runs with ``RAY_AUTH_MODE=token``. Every process is stopped
by its pid at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# Ray reads RAY_AUTH_MODE once, at import: set it before anything in this session imports Ray.
os.environ.setdefault("RAY_AUTH_MODE", "token")

RAY = str(Path(sys.executable).with_name("ray"))
VIDCOLOR = str(Path(sys.executable).with_name("vidcolor"))
HEAD_CPUS = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        RAY_AUTH_MODE="token",
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONUNBUFFERED="1",
        TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1",
        RAY_DEDUP_LOGS="0",
    )
    return env


def _parents() -> dict[int, int]:
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        out[int(stat.parent.name)] = int(fields[1])
    return out


def descendants(pid: int) -> list[int]:
    """Every live descendant of pid (from /proc)."""
    parents = _parents()
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found += kids
        frontier += kids
    return found


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop_tree(proc: subprocess.Popen, known: list[int] = (), grace_s: float = 10.0) -> None:
    """SIGTERM a process we started, then SIGKILL it and every descendant, each by pid."""
    known = {pid for pid in known if _cmdline(pid).find("ray") >= 0}  # not a reused pid of someone else
    pids = known | set(descendants(proc.pid))
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pids |= set(descendants(proc.pid))
            proc.kill()
            proc.wait(timeout=10)
    for pid in pids:
        kill_pid(pid)


@dataclass
class RayCluster:
    address: str
    head: subprocess.Popen
    temp_dir: str
    head_pids: list[int] = field(default_factory=list)

    def start_node(self, num_cpus: int, resources: str | None = None) -> subprocess.Popen:
        """A second node on this machine joining the head (a real two-node cluster on one box)."""
        cmd = [
            RAY,
            "start",
            f"--address={self.address}",
            f"--num-cpus={num_cpus}",
            "--object-store-memory=100000000",
            "--block",
            "--disable-usage-stats",
        ]
        if resources:
            cmd.append(f"--resources={resources}")
        log_path = Path(self.temp_dir) / f"node-{time.monotonic_ns()}.log"
        node = subprocess.Popen(
            cmd, env=ray_env(), stdout=open(log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log_path.read_text(errors="replace"):
            if node.poll() is not None or time.monotonic() > deadline:
                stop_tree(node)
                raise RuntimeError(f"ray start --address did not come up: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        return node


def ensure_auth_token() -> None:
    """`ray start --head` under RAY_AUTH_MODE=token needs a token and, unlike a local `ray.init()`,
    does not make one: on a fresh machine (no ~/.ray/auth_token) generate it as Ray's docs say."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return
    token = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token").expanduser()
    if not token.is_file():
        subprocess.run(
            [RAY, "get-auth-token", "--generate"], env=ray_env(), check=True, capture_output=True, timeout=120
        )


@pytest.fixture(scope="session")
def ray_cluster(s3_server):
    """The session's Ray head; yields a RayCluster. Stopped by pid at the end of the session. Its
    processes see the session's S3 server (`s3_server` sets AWS_ENDPOINT_URL and credentials)."""
    ensure_auth_token()
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="vcr", dir="/tmp")  # short: Ray's socket paths are length-limited
    cmd = [
        RAY,
        "start",
        "--head",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        f"--num-cpus={HEAD_CPUS}",
        "--num-gpus=0",
        "--object-store-memory=150000000",
        f"--temp-dir={temp_dir}",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={free_port()}",
        "--disable-usage-stats",
        "--block",
    ]
    log_path = Path(temp_dir) / "head.log"
    head = subprocess.Popen(
        cmd, env=ray_env(), stdout=open(log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    address = f"127.0.0.1:{port}"
    cluster = RayCluster(address, head, temp_dir)
    try:
        deadline = time.monotonic() + 120
        while True:
            if head.poll() is not None:
                raise RuntimeError(f"ray start --head exited with {head.returncode}")
            if "Ray runtime started" in log_path.read_text(errors="replace"):
                break  # (the GCS port opens earlier, before clients can authenticate)
            if time.monotonic() > deadline:
                raise RuntimeError("the Ray head did not come up in 120 s")
            time.sleep(0.5)
        cluster.head_pids = descendants(head.pid)
        yield cluster
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        stop_tree(head, cluster.head_pids + descendants(head.pid))
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_tools():
    """The helpers above for test modules (conftest is not importable under --import-mode=importlib)."""
    import types

    return types.SimpleNamespace(
        VIDCOLOR=VIDCOLOR,
        RAY=RAY,
        env=ray_env,
        stop_tree=stop_tree,
        descendants=descendants,
        free_port=free_port,
        process_name=process_name,
        kill_pid=kill_pid,
    )


@dataclass
class TrainingCall:
    """One call of the fake `run_training` (`fake_training`): what it was given, and the names in
    the run folder when it was called."""

    experiment: object
    train: object
    shards: str
    out: Path
    found: list[str]


@pytest.fixture
def fake_training(monkeypatch):
    """`vidcolor experiments` without training or Ray: `run_training` saves an untrained model of
    the experiment (torch seeded by its training seed) as the run's best checkpoint and returns
    ``calls.metrics(train)`` (default ``{"val_rmse_rgb": 1.0}``); every call is appended to the
    list it yields, a `TrainingCall`."""
    import torch

    import study.experiments
    import study.train.launch
    from models.checkpoint import save_checkpoint
    from models.gamut import ABGamut
    from models.model import create_model

    class Calls(list):
        metrics = staticmethod(lambda train: {"val_rmse_rgb": 1.0})

    calls = Calls()

    def run_training(experiment, train, shards, out, *, workers):
        calls.append(TrainingCall(experiment, train, shards, out, sorted(p.name for p in out.iterdir())))
        torch.manual_seed(train.seed)
        gamut = ABGamut(experiment.grid)
        save_checkpoint(out / "best", create_model(experiment.replace(pretrained=None), gamut), experiment, gamut)
        return {"best": str(out / "best"), "metrics": calls.metrics(train)}

    monkeypatch.setattr(study.train.launch, "run_training", run_training)
    monkeypatch.setattr(study.experiments, "init_ray", lambda address=None, **kw: False)
    return calls
