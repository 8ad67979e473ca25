"""Load test of the CTT vote path: R concurrent raters x V votes each against the results store.

Each rater (a thread sharing one Store, as the dashboard's sessions do; or, with --processes, a
process with its own Store) loops: draw the next item among the least-voted it has not seen, then
record a vote on it; every 10th vote is sent twice (a double click) and the second must be refused.
Afterwards every intended vote must be stored exactly once. With --lock the threads' votes queue on
a process-wide lock first, as the dashboard's do (dashboard/data.py record_vote). Prints latency percentiles of
record_vote and of the whole next-item + vote step; `--json FILE` writes the figures.

    python bench/votes.py [--raters 20] [--votes 50] [--db sqlite:///votes.db] [--json out.json]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from study.report import format_table, write_json  # noqa: E402
from study.store import Store  # noqa: E402

STUDY = "vote-load"


def setup(url: str, raters: int, votes: int) -> list[str]:
    """A study with enough items for every rater to cast `votes` votes, and the raters."""
    store = Store(url)
    store.create_study(STUDY, objective="val_rmse_rgb", mode="min")
    store.upsert_trial(STUDY, "t0", experiment="exp2", params={"lam": 0.5})
    n_items = votes + 10
    store.add_ctt_items(STUDY, [{"trial_id": "t0" if i % 10 else None, "is_attention": i % 10 == 0,
                                 "real_path": f"/m/{i}a.mp4", "fake_path": f"/m/{i}b.mp4"} for i in range(n_items)])
    return [store.add_rater(f"rater{r:02d}") for r in range(raters)]


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def rater_loop(store: Store, rater_id: str, votes: int, seed: int, lock=None) -> dict:
    rng = random.Random(seed)
    lock = lock or _NoLock()
    vote_ms, step_ms, cast, dup_refused, dup_accepted = [], [], [], 0, 0
    for k in range(votes):
        t0 = time.perf_counter()
        item = store.next_ctt_item(STUDY, rater_id, rng=rng)
        if item is None:
            break
        side = rng.choice(("left", "right"))
        t1 = time.perf_counter()
        with lock:
            ok = store.record_vote(rater_id, item["uid"], choice=side, picked_real=rng.random() < 0.6,
                                   response_ms=rng.uniform(500, 4000))
        t2 = time.perf_counter()
        vote_ms.append((t2 - t1) * 1000)
        step_ms.append((t2 - t0) * 1000)
        if ok:
            cast.append(item["uid"])
        if k % 10 == 9:  # a double click
            with lock:
                again = store.record_vote(rater_id, item["uid"], choice=side, picked_real=True)
            dup_refused += int(not again)
            dup_accepted += int(again)
    return {"rater": rater_id, "vote_ms": vote_ms, "step_ms": step_ms, "cast": cast,
            "dup_refused": dup_refused, "dup_accepted": dup_accepted}


def _process_main(args):
    url, rater_id, votes, seed = args
    return rater_loop(Store(url), rater_id, votes, seed)


def run(url: str, raters: int = 20, votes: int = 50, processes: bool = False, lock: bool = False) -> dict:
    """Run the load test on a fresh database at `url`; returns the figures and the checks."""
    rater_ids = setup(url, raters, votes)
    t0 = time.perf_counter()
    if processes:
        with mp.get_context("spawn").Pool(raters) as pool:
            results = pool.map(_process_main, [(url, r, votes, i) for i, r in enumerate(rater_ids)])
    else:
        store = Store(url)
        vote_lock = threading.Lock() if lock else None
        results = [None] * raters
        barrier = threading.Barrier(raters)

        def worker(i: int) -> None:
            barrier.wait()
            results[i] = rater_loop(store, rater_ids[i], votes, i, vote_lock)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(raters)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    wall = time.perf_counter() - t0
    stored = Store(url).votes(STUDY)
    vote_ms = np.concatenate([r["vote_ms"] for r in results])
    step_ms = np.concatenate([r["step_ms"] for r in results])
    intended = {(r["rater"], uid) for r in results for uid in r["cast"]}
    stored_pairs = list(zip(stored["rater_id"], stored["uid"]))
    return {
        "raters": raters, "votes_per_rater": votes, "mode": "processes" if processes else ("threads + lock" if lock else "threads"),
        "database": url.split("://")[0], "votes_intended": raters * votes,
        "votes_cast": sum(len(r["cast"]) for r in results), "votes_stored": len(stored),
        "distinct_stored": len(set(stored_pairs)), "stored_match_cast": set(stored_pairs) == intended,
        "duplicates_refused": sum(r["dup_refused"] for r in results),
        "duplicates_accepted": sum(r["dup_accepted"] for r in results),
        "wall_s": wall, "votes_per_s": len(stored) / wall,
        "vote_p50_ms": float(np.percentile(vote_ms, 50)), "vote_p99_ms": float(np.percentile(vote_ms, 99)),
        "step_p50_ms": float(np.percentile(step_ms, 50)), "step_p99_ms": float(np.percentile(step_ms, 99)),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--raters", type=int, default=20)
    p.add_argument("--votes", type=int, default=50)
    p.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file in a temp folder)")
    p.add_argument("--processes", action="store_true", help="one process per rater instead of threads")
    p.add_argument("--lock", action="store_true", help="threads queue their votes on a lock (as the dashboard)")
    p.add_argument("--json", default=None, metavar="FILE")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{tmp}/votes.db"
        res = run(url, args.raters, args.votes, args.processes, args.lock)
    rows = [("raters x votes", f"{res['raters']} x {res['votes_per_rater']} ({res['mode']}, {res['database']})"),
            ("votes stored / cast", f"{res['votes_stored']} / {res['votes_cast']}"),
            ("exactly once", str(res["stored_match_cast"] and res["distinct_stored"] == res["votes_stored"])),
            ("double clicks refused", f"{res['duplicates_refused']} (accepted: {res['duplicates_accepted']})"),
            ("record_vote p50 / p99", f"{res['vote_p50_ms']:.1f} / {res['vote_p99_ms']:.1f} ms"),
            ("next item + vote p50 / p99", f"{res['step_p50_ms']:.1f} / {res['step_p99_ms']:.1f} ms"),
            ("throughput", f"{res['votes_per_s']:.0f} votes/s over {res['wall_s']:.1f} s")]
    print(format_table(["figure", "value"], rows, numeric_right=False))
    if args.json:
        write_json(args.json, res)
    ok = res["stored_match_cast"] and res["votes_stored"] == res["votes_intended"] and res["duplicates_accepted"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
