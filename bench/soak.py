"""Soak: demo-sized studies back to back, optionally under load from another process.

Each study is `vidcolor tune study/configs/demo.toml` (6 trials, TPE + ASHA, a local Ray) in a
subprocess of its own with a time limit, on the demo's 64 px shard set (made once). The table
gives, per study, whether it finished, its wall time, the trials' statuses, and how often the
placement-group reclaimer acted (`reclaimed`) or reported a stall (`stalls`): a study that never
finishes within the limit is a hang, which is what this benchmark exists to catch.

    python bench/soak.py [--studies 10] [--load 1] [--limit-s 900] [--json FILE]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from study.report import fmt, format_table, write_json

ROOT = Path(__file__).resolve().parents[1]
VIDCOLOR = str(Path(sys.executable).with_name("vidcolor"))


def _burn(stop: float) -> None:
    x = 0
    while time.monotonic() < stop:
        x = (x * 31 + 7) % 1_000_003


def run_one(i: int, work: Path, shards: Path, limit_s: float) -> dict:
    """One study in a subprocess; its outcome from the exit status, its log and the store."""
    from study.store import Store

    db = f"sqlite:///{work}/soak-{i}.db"
    log_path = work / f"soak-{i}.log"
    cmd = [VIDCOLOR, "tune", str(ROOT / "study" / "configs" / "demo.toml"), "--shards", str(shards),
           "--db", db, "--storage", str(work / f"ray-{i}")]
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            rc = None
    wall = time.monotonic() - t0
    text = log_path.read_text(errors="replace")
    statuses: dict[str, int] = {}
    try:
        trials = Store(db, create=False).trials("demo")
        statuses = {str(k): int(v) for k, v in trials["status"].value_counts().items()}
    except Exception as exc:  # noqa: BLE001 - a hung or failed study may have no store
        statuses = {"unreadable": 1}
        print(f"  study {i}: store unreadable ({exc})", file=sys.stderr)
    return {"study": i, "finished": rc == 0, "rc": rc, "wall_s": wall, "statuses": statuses,
            "reclaimed": text.count("reclaimed placement group"), "stalls": text.count("made no progress")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--studies", type=int, default=10)
    p.add_argument("--load", type=int, default=1, help="busy processes running beside the studies (default 1)")
    p.add_argument("--limit-s", type=float, default=900.0, help="a study still running after this is a hang")
    p.add_argument("--workdir", default=None)
    p.add_argument("--json", default=None, metavar="FILE")
    args = p.parse_args(argv)
    from study.demo import prepare_data

    work = Path(args.workdir or tempfile.mkdtemp(prefix="vc-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    shards = prepare_data(work)
    stop = time.monotonic() + args.studies * args.limit_s
    burners = [mp.Process(target=_burn, args=(stop,), daemon=True) for _ in range(args.load)]
    for b in burners:
        b.start()
    rows = []
    try:
        for i in range(args.studies):
            rows.append(run_one(i, work, shards, args.limit_s))
            r = rows[-1]
            print(f"  study {i}: {'finished' if r['finished'] else 'FAILED/HUNG'} in {r['wall_s']:.0f} s",
                  file=sys.stderr, flush=True)
    finally:
        for b in burners:
            b.terminate()
    print(f"soak: {len(rows)} demo studies back to back, {args.load} busy process(es) beside them, "
          f"limit {args.limit_s:.0f} s each; work folder {work}")
    print(format_table(["study", "finished", "wall s", "trials", "reclaimed", "stalls"],
                       [[str(r["study"]), "yes" if r["finished"] else "NO", fmt(r["wall_s"], 0),
                         ", ".join(f"{n} {s.lower()}" for s, n in sorted(r["statuses"].items())),
                         str(r["reclaimed"]), str(r["stalls"])] for r in rows]))
    done = sum(r["finished"] for r in rows)
    print(f"{done} of {len(rows)} finished")
    if args.json:
        write_json(args.json, {"studies": rows, "finished": done, "load": args.load, "limit_s": args.limit_s})
    return 0 if done == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
