"""Soak: demo-sized studies back to back, optionally under load from another process.

Each study is `vidcolor tune study/configs/demo.toml` (6 trials, TPE + ASHA, a local Ray) in a
subprocess of its own with a time limit, on the demo's 64 px shard set (made once). The table
gives, per study, whether it finished, its wall time, the trials' statuses, and how often the
placement-group reclaimer acted (`reclaimed`) or reported a stall (`stalls`): a study that never
finishes within the limit is a hang, which is what this benchmark exists to catch.

``--kill-node`` adds one more study on a two-node Ray cluster started on this machine (a head and
a second node of 2 CPUs each, both ``ray start``): once a trial has reported an epoch the second
node's raylet is killed (-9), no node replaces it, and the study must still finish on the head.

    python bench/soak.py [--studies 10] [--kill-node] [--load 1] [--limit-s 900] [--json FILE]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from study.report import fmt, format_table, write_json

ROOT = Path(__file__).resolve().parents[1]
VIDCOLOR = str(Path(sys.executable).with_name("vidcolor"))
RAY = str(Path(sys.executable).with_name("ray"))
RAY_ENV = {"RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}


def _burn(stop: float) -> None:
    x = 0
    while time.monotonic() < stop:
        x = (x * 31 + 7) % 1_000_003


def _outcome(i: int, db: str, rc: int | None, wall: float, log_path: Path) -> dict:
    """A study's row: finished or not, wall time, trial statuses from the store, reclaims, stalls."""
    from study.store import Store

    text = log_path.read_text(errors="replace")
    statuses: dict[str, int] = {}
    try:
        trials = Store(db, create=False).trials("demo")
        statuses = {str(k): int(v) for k, v in trials["status"].value_counts().items()}
    except Exception as exc:
        statuses = {"unreadable": 1}
        print(f"  study {i}: store unreadable ({exc})", file=sys.stderr)
    return {
        "study": i,
        "finished": rc == 0,
        "rc": rc,
        "wall_s": wall,
        "statuses": statuses,
        "reclaimed": text.count("reclaimed placement group"),
        "stalls": text.count("made no progress"),
    }


def _tune_cmd(i: int, work: Path, shards: Path, *extra: str) -> tuple[list[str], str, Path]:
    db = f"sqlite:///{work}/soak-{i}.db"
    cmd = [
        VIDCOLOR,
        "tune",
        str(ROOT / "study" / "configs" / "demo.toml"),
        "--shards",
        str(shards),
        "--db",
        db,
        "--storage",
        str(work / f"ray-{i}"),
        *extra,
    ]
    return cmd, db, work / f"soak-{i}.log"


def _wait(proc: subprocess.Popen, timeout: float) -> int | None:
    """The exit status, or None after killing the process group of a study past its limit."""
    try:
        return proc.wait(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def run_one(i: int, work: Path, shards: Path, limit_s: float) -> dict:
    """One study in a subprocess (its own local Ray) with a time limit."""
    cmd, db, log_path = _tune_cmd(i, work, shards)
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        rc = _wait(proc, limit_s)
    return _outcome(i, db, rc, time.monotonic() - t0, log_path)


# -- a study that loses a node ---------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], [pid]
    while frontier:
        pid = frontier.pop()
        kids = [c for c, p in parent.items() if p == pid]
        found += kids
        frontier += kids
    return found


def _ray_start(args: list[str], log_path: Path, env: dict, started: list) -> subprocess.Popen:
    """`ray start ... --block`, recorded in ``started`` at once, returned once Ray is up."""
    proc = subprocess.Popen(
        [RAY, "start", *args, "--block", "--disable-usage-stats"],
        env=env,
        stdout=open(log_path, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started.append((proc, []))
    deadline = time.monotonic() + 120
    while "Ray runtime started" not in log_path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"ray start {' '.join(args[:1])} did not come up: {log_path.read_text()[-1500:]}")
        time.sleep(0.5)
    started[-1] = (proc, _descendants(proc.pid))  # Ray's daemons, to stop them by pid later
    return proc


def _stop(procs: list[tuple[subprocess.Popen, list[int]]]) -> None:
    """SIGKILL every process started here and every descendant, by pid (Ray's daemons leave the group)."""
    for proc, known in procs:
        pids = set(known) | set(_descendants(proc.pid)) | {proc.pid}
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()


def _busy_workers(raylet: int) -> list[str]:
    """The node's worker processes running a task or actor (Ray names them ``ray::Class``)."""
    names = []
    for pid in _descendants(raylet):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if name.startswith("ray::") and name != "ray::IDLE":
            names.append(name)
    return names


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_node_loss(i: int, work: Path, shards: Path, limit_s: float) -> dict:
    """One study on a head + second node cluster; the second node's raylet is killed mid-study."""
    from study.store import Store

    env = {**os.environ, **RAY_ENV}
    token = Path.home() / ".ray" / "auth_token"
    if not os.environ.get("RAY_AUTH_TOKEN") and not token.is_file():  # `ray start` does not make one
        subprocess.run([RAY, "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=120)
    temp = Path(tempfile.mkdtemp(prefix="vcsk", dir="/tmp"))  # short: Ray's socket paths are length-limited
    address = f"127.0.0.1:{_free_port()}"
    started: list[tuple[subprocess.Popen, list[int]]] = []
    cmd, db, log_path = _tune_cmd(i, work, shards, "--address", address, "--stall-after", "60")
    try:  # every process is recorded as soon as it exists, so the finally clause stops it
        _ray_start(
            [
                "--head",
                f"--port={address.split(':')[1]}",
                "--node-ip-address=127.0.0.1",
                "--num-cpus=2",
                "--num-gpus=0",
                f"--temp-dir={temp}",
                "--include-dashboard=true",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={_free_port()}",
            ],
            temp / "head.log",
            env,
            started,
        )
        _ray_start([f"--address={address}", "--num-cpus=2", "--num-gpus=0"], temp / "node.log", env, started)
        node_pids = started[-1][1]
        raylet = next(p for p in node_pids if Path(f"/proc/{p}/comm").read_text().strip() == "raylet")
        t0 = time.monotonic()
        with open(log_path, "w") as log:
            driver = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            started.append((driver, []))
            killed_at = None
            while killed_at is None and driver.poll() is None and time.monotonic() - t0 < limit_s:
                time.sleep(2.0)
                try:
                    trials = Store(db, create=False).trials("demo")
                except Exception:
                    continue
                if (trials.epochs >= 1).any() and _busy_workers(raylet):
                    os.kill(raylet, signal.SIGKILL)  # the node is lost mid-study; nothing replaces it
                    killed_at = time.monotonic() - t0
            rc = _wait(driver, limit_s - (time.monotonic() - t0))
        row = _outcome(i, db, rc, time.monotonic() - t0, log_path)
        row["node_killed_at_s"] = killed_at
        return row
    finally:
        _stop(started[::-1])
        shutil.rmtree(temp, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--studies", type=int, default=10)
    p.add_argument("--kill-node", action="store_true", help="one more study on two nodes, one of them killed")
    p.add_argument("--load", type=int, default=1, help="busy processes running beside the studies (default 1)")
    p.add_argument("--limit-s", type=float, default=900.0, help="a study still running after this is a hang")
    p.add_argument("--workdir", default=None)
    p.add_argument("--json", default=None, metavar="FILE")
    args = p.parse_args(argv)
    from study.demo import prepare_data

    work = Path(args.workdir or tempfile.mkdtemp(prefix="vc-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    shards = prepare_data(work)
    stop = time.monotonic() + (args.studies + args.kill_node) * args.limit_s
    burners = [mp.Process(target=_burn, args=(stop,), daemon=True) for _ in range(args.load)]
    for b in burners:
        b.start()
    rows = []
    try:
        for i in range(args.studies):
            rows.append(run_one(i, work, shards, args.limit_s))
            r = rows[-1]
            print(
                f"  study {i}: {'finished' if r['finished'] else 'FAILED/HUNG'} in {r['wall_s']:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        if args.kill_node:
            rows.append(run_node_loss(args.studies, work, shards, args.limit_s))
            r = rows[-1]
            print(
                f"  node-loss study: {'finished' if r['finished'] else 'FAILED/HUNG'} in {r['wall_s']:.0f} s "
                f"(node killed at {fmt(r['node_killed_at_s'], 0)} s)",
                file=sys.stderr,
                flush=True,
            )
    finally:
        for b in burners:
            b.terminate()
    print(
        f"soak: {len(rows)} demo studies back to back, {args.load} busy process(es) beside them, "
        f"limit {args.limit_s:.0f} s each; work folder {work}"
    )
    print(
        format_table(
            ["study", "finished", "wall s", "trials", "reclaimed", "stalls"],
            [
                [
                    str(r["study"]) + (" (node killed)" if "node_killed_at_s" in r else ""),
                    "yes" if r["finished"] else "NO",
                    fmt(r["wall_s"], 0),
                    ", ".join(f"{n} {s.lower()}" for s, n in sorted(r["statuses"].items())),
                    str(r["reclaimed"]),
                    str(r["stalls"]),
                ]
                for r in rows
            ],
        )
    )
    done = sum(r["finished"] for r in rows)
    print(f"{done} of {len(rows)} finished")
    if args.json:
        write_json(args.json, {"studies": rows, "finished": done, "load": args.load, "limit_s": args.limit_s})
    return 0 if done == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
