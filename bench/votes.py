"""Load test of the CTT vote path: R concurrent raters x V votes each against the results store.

Each rater is a thread sharing one Store, as the sessions of one rater server or dashboard do (or,
with --processes, a process with its own Store). ``--path session`` (default) is the rater
server's: the rater opens a campaign session through an invite, then for each pair reads the
session state (``session_state``, which starts the pair's display clock), looks at the pair for
``--think-s`` seconds (jittered 0.5-1.5x; the protocol shows each pair 1 s; 0 = no pause, a closed
loop that saturates the store) and answers (``answer``). ``--path dashboard`` is the colleague's
page: draw the next item among the least-voted not yet seen (``next_ctt_item``), then
``record_vote``. Every 10th vote is sent twice (a double click) and the second must be refused.
Afterwards every intended vote must be stored exactly once. Prints latency percentiles of the
vote (``answer`` / ``record_vote``) and of the whole step (state or draw + vote, without the pause);
``--json FILE`` writes the figures.

    python bench/votes.py [--raters 50] [--votes 40] [--think-s 1] [--path session|dashboard]
                          [--db sqlite:///votes.db | postgresql://...] [--json out.json]
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

from study.report import format_table, write_json
from study.store import Store

STUDY = "vote-load"


def setup(url: str, raters: int, votes: int) -> list[str]:
    """A study with enough items for every rater to cast `votes` votes, and the raters."""
    store = Store(url)
    store.create_study(STUDY, objective="val_rmse_rgb", mode="min")
    store.upsert_trial(STUDY, "t0", experiment="exp2", params={"lam": 0.5})
    n_items = votes + 10
    store.add_ctt_items(
        STUDY,
        [
            {
                "trial_id": "t0" if i % 10 else None,
                "is_attention": i % 10 == 0,
                "real_path": f"/m/{i}a.mp4",
                "fake_path": f"/m/{i}b.mp4",
            }
            for i in range(n_items)
        ],
    )
    return [store.add_rater(f"rater{r:02d}") for r in range(raters)]


def rater_loop(store: Store, rater_id: str, votes: int, seed: int, think_s: float = 0.0) -> dict:
    """The dashboard path: draw the least-voted unseen item, pause, vote."""
    rng = random.Random(seed)
    vote_ms, step_ms, cast, dup_refused, dup_accepted = [], [], [], 0, 0
    for k in range(votes):
        t0 = time.perf_counter()
        item = store.next_ctt_item(STUDY, rater_id, rng=rng)
        if item is None:
            break
        side = rng.choice(("left", "right"))
        t1 = time.perf_counter()
        _pause(rng, think_s)
        t2 = time.perf_counter()
        ok = store.record_vote(
            rater_id, item["uid"], choice=side, picked_real=rng.random() < 0.6, response_ms=rng.uniform(500, 4000)
        )
        t3 = time.perf_counter()
        vote_ms.append((t3 - t2) * 1000)
        step_ms.append((t1 - t0 + t3 - t2) * 1000)
        if ok:
            cast.append(item["uid"])
        if k % 10 == 9:  # a double click
            again = store.record_vote(rater_id, item["uid"], choice=side, picked_real=True)
            dup_refused += int(not again)
            dup_accepted += int(again)
    return {
        "rater": rater_id,
        "vote_ms": vote_ms,
        "step_ms": step_ms,
        "cast": cast,
        "dup_refused": dup_refused,
        "dup_accepted": dup_accepted,
    }


def session_loop(store: Store, token: str, votes: int, seed: int, think_s: float = 0.0) -> dict:
    """The rater server's path: open a session through the invite, then per pair read the state,
    pause, answer."""
    rng = random.Random(seed)
    sid = store.open_session(token, f"rater{seed:02d}", rng=rng)
    vote_ms, step_ms, cast, dup_refused, dup_accepted = [], [], [], 0, 0
    for k in range(votes):
        t0 = time.perf_counter()
        state = store.session_state(sid)
        if state["done"]:
            break
        uid = state["item"]["uid"]
        t1 = time.perf_counter()
        _pause(rng, think_s)
        side = rng.choice(("left", "right"))
        t2 = time.perf_counter()
        out = store.answer(sid, uid, choice=side, picked_real=rng.random() < 0.6, response_ms=rng.uniform(500, 4000))
        t3 = time.perf_counter()
        vote_ms.append((t3 - t2) * 1000)
        step_ms.append((t1 - t0 + t3 - t2) * 1000)
        if out.get("recorded"):
            cast.append(uid)
        if k % 10 == 9:  # a double click: the pair was answered, the server must ignore it
            again = store.answer(sid, uid, choice=side, picked_real=True)
            dup_refused += int(bool(again.get("stale")))
            dup_accepted += int(bool(again.get("recorded")))
    return {
        "rater": None,
        "sid": sid,
        "vote_ms": vote_ms,
        "step_ms": step_ms,
        "cast": cast,
        "dup_refused": dup_refused,
        "dup_accepted": dup_accepted,
    }


def _pause(rng: random.Random, think_s: float) -> None:
    if think_s > 0:
        time.sleep(think_s * rng.uniform(0.5, 1.5))


def _process_main(args):
    url, who, votes, seed, think_s, path = args
    loop = session_loop if path == "session" else rater_loop
    return loop(Store(url), who, votes, seed, think_s)


def run(
    url: str, raters: int = 20, votes: int = 50, processes: bool = False, think_s: float = 0.0, path: str = "dashboard"
) -> dict:
    """Run the load test on a fresh database at `url`; returns the figures and the checks."""
    if path not in ("session", "dashboard"):
        raise SystemExit(f"--path: session or dashboard, got {path!r}")
    rater_ids = setup(url, raters, votes)
    if path == "session":  # one invite good for every session, as a link posted to a crowd
        store = Store(url)
        store.create_campaign(STUDY, "load", session_items=votes, practice_items=0, attention_share=0.0, display_s=0)
        (token,) = store.add_invites(STUDY, "load", 1, max_uses=None)
        rater_ids = [token] * raters
    loop = session_loop if path == "session" else rater_loop
    t0 = time.perf_counter()
    if processes:
        with mp.get_context("spawn").Pool(raters) as pool:
            results = pool.map(_process_main, [(url, r, votes, i, think_s, path) for i, r in enumerate(rater_ids)])
    else:
        store = Store(url)
        results = [None] * raters
        barrier = threading.Barrier(raters)

        def worker(i: int) -> None:
            barrier.wait()
            results[i] = loop(store, rater_ids[i], votes, i, think_s)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(raters)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    wall = time.perf_counter() - t0
    stored = Store(url).votes(STUDY)
    if path == "session":  # a session's rater id, from the campaign's stored sessions
        raters_of = Store(url).campaign_sessions(STUDY, "load").set_index("session_id")["rater_id"]
        for r in results:
            r["rater"] = raters_of[r["sid"]]
    vote_ms = np.concatenate([r["vote_ms"] for r in results])
    step_ms = np.concatenate([r["step_ms"] for r in results])
    intended = {(r["rater"], uid) for r in results for uid in r["cast"]}
    stored_pairs = list(zip(stored["rater_id"], stored["uid"]))
    return {
        "raters": raters,
        "votes_per_rater": votes,
        "mode": "processes" if processes else "threads",
        "path": path,
        "think_s": think_s,
        "database": url.split("://")[0],
        "votes_intended": raters * votes,
        "votes_cast": sum(len(r["cast"]) for r in results),
        "votes_stored": len(stored),
        "distinct_stored": len(set(stored_pairs)),
        "stored_match_cast": set(stored_pairs) == intended,
        "duplicates_refused": sum(r["dup_refused"] for r in results),
        "duplicates_accepted": sum(r["dup_accepted"] for r in results),
        "wall_s": wall,
        "votes_per_s": len(stored) / wall,
        "vote_p50_ms": float(np.percentile(vote_ms, 50)),
        "vote_p99_ms": float(np.percentile(vote_ms, 99)),
        "step_p50_ms": float(np.percentile(step_ms, 50)),
        "step_p99_ms": float(np.percentile(step_ms, 99)),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--raters", type=int, default=50)
    p.add_argument("--votes", type=int, default=40)
    p.add_argument(
        "--think-s",
        type=float,
        default=1.0,
        help="seconds a rater looks at a pair before voting (jittered 0.5-1.5x; 0: no pause, the store saturated)",
    )
    p.add_argument(
        "--path",
        default="session",
        choices=("session", "dashboard"),
        help="the rater server's campaign sessions, or the dashboard's rating page",
    )
    p.add_argument(
        "--db",
        default=None,
        help="database URL (default: a fresh SQLite file in a temp folder; a PostgreSQL database must be empty)",
    )
    p.add_argument("--processes", action="store_true", help="one process per rater instead of threads")
    p.add_argument("--json", default=None, metavar="FILE")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{tmp}/votes.db"
        res = run(url, args.raters, args.votes, args.processes, args.think_s, args.path)
    rows = [
        (
            "raters x votes",
            f"{res['raters']} x {res['votes_per_rater']} ({res['path']} path, {res['mode']}, "
            f"{res['database']}, pause {res['think_s']:g} s)",
        ),
        ("votes stored / cast", f"{res['votes_stored']} / {res['votes_cast']}"),
        ("exactly once", str(res["stored_match_cast"] and res["distinct_stored"] == res["votes_stored"])),
        ("double clicks refused", f"{res['duplicates_refused']} (accepted: {res['duplicates_accepted']})"),
        ("vote p50 / p99", f"{res['vote_p50_ms']:.1f} / {res['vote_p99_ms']:.1f} ms"),
        ("state or draw + vote p50 / p99", f"{res['step_p50_ms']:.1f} / {res['step_p99_ms']:.1f} ms"),
        ("throughput", f"{res['votes_per_s']:.0f} votes/s over {res['wall_s']:.1f} s"),
    ]
    print(format_table(["figure", "value"], rows, numeric_right=False))
    if args.json:
        write_json(args.json, res)
    ok = res["stored_match_cast"] and res["votes_stored"] == res["votes_intended"] and res["duplicates_accepted"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
