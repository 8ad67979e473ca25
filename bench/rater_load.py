"""Load test of the rater server over HTTP: R raters in headless Chromium, V votes each.

`vidcolor ctt serve` runs on localhost on a study of V + 10 items (two small mp4s) with one
campaign (2afc, V counted pairs per session, no practice, no display limit) and one invite link
good for any number of sessions. R raters, at most ``--concurrency`` at a time (each a browser
context of one headless Chromium), open the link, start, and click "A is real" V times (once the page has
settled; again when nothing happened in 10 s, counted as a retry). Measured:
the click-to-next-pair time in the browser (a Streamlit rerun: websocket, the store, the media),
and the store's own time per answer as the server saw it (``VIDCOLOR_RATER_TIMINGS``). Checked
afterwards: every session finished, R x V votes stored, each (rater, item) once.

    python bench/rater_load.py [--raters 50] [--votes 40] [--concurrency 10] [--db URL] [--json FILE]

``--db`` takes a PostgreSQL URL too (an empty database); default a SQLite file in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from study.report import format_table, write_json  # noqa: E402

STUDY = "rater-load"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def setup(url: str, work: Path, votes: int) -> str:
    """The study, its items and campaign; returns the invite token."""
    from study.media.video_out import write_video
    from study.store import Store

    rng = np.random.default_rng(0)
    files = [
        write_video(work / f"{k}.mp4", list(rng.integers(0, 256, (8, 48, 64, 3), dtype=np.uint8)), fps=8)
        for k in ("a", "b")
    ]
    store = Store(url)
    store.create_study(STUDY, objective="val_rmse_rgb", mode="min")
    store.upsert_trial(STUDY, "t0", experiment="exp2", params={"lam": 0.5})
    store.add_ctt_items(
        STUDY,
        [
            {"trial_id": "t0", "real_path": str(files[0]), "fake_path": str(files[1]), "video_id": f"v{i}", "clip": 0}
            for i in range(votes + 10)
        ],
    )
    store.create_campaign(STUDY, "load", session_items=votes, practice_items=0, attention_share=0.0, display_s=0)
    return store.add_invites(STUDY, "load", 1, max_uses=None)[0]


def serve(url: str, port: int, timings: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "VIDCOLOR_RATER_TIMINGS": str(timings)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "study", "ctt", "serve", "--db", url, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"rater server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.5)


IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"


async def one_rater(
    browser, link: str, votes: int, sem: asyncio.Semaphore, latencies: list[float], retries: list[int]
) -> None:
    """One rater's session. Like a person, it answers once the page has settled, and clicks again
    when nothing happened within 10 s (a click on a button of the page being replaced is a click on
    the previous pair, which the server ignores): `retries` counts those."""
    async with sem:
        ctx = await browser.new_context()
        page = await ctx.new_page()
        await page.goto(link)
        await page.get_by_role("button", name="Start").click()
        for i in range(1, votes + 1):
            await page.wait_for_selector(f"text=Pair {i} of {votes}", timeout=120_000)
            await page.wait_for_function(IDLE, timeout=120_000)
            nxt = f"text=Pair {i + 1} of {votes}" if i < votes else "text=That was the last one"
            t0 = time.perf_counter()
            for _attempt in range(6):
                await page.get_by_role("button", name="A is real").click()
                try:
                    await page.wait_for_selector(nxt, timeout=10_000)
                    break
                except Exception:
                    retries.append(1)
            else:
                raise RuntimeError(f"pair {i}: no answer taken after 6 clicks")
            latencies.append((time.perf_counter() - t0) * 1000)
        await ctx.close()


async def drive(link: str, raters: int, votes: int, concurrency: int) -> list[float]:
    from playwright.async_api import async_playwright

    latencies: list[float] = []
    retries: list[int] = []
    sem = asyncio.Semaphore(concurrency)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        await asyncio.gather(*(one_rater(browser, link, votes, sem, latencies, retries) for _ in range(raters)))
        await browser.close()
    return latencies, len(retries)


def run(url: str | None, raters: int, votes: int, concurrency: int) -> dict:
    from study.store import Store

    with tempfile.TemporaryDirectory(prefix="vc-rater-load-") as tmp:
        work = Path(tmp)
        url = url or f"sqlite:///{work / 'load.db'}"
        token = setup(url, work, votes)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        timings = work / "timings.txt"
        proc = serve(url, port, timings, work / "server.log")
        t0 = time.perf_counter()
        try:
            clicks, retries = asyncio.run(drive(f"http://127.0.0.1:{port}/?invite={token}", raters, votes, concurrency))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        wall = time.perf_counter() - t0
        server = [float(x) for x in timings.read_text().split()] if timings.exists() else []
        store = Store(url)
        stored = store.campaign_votes(STUDY, "load")
        camp = store.campaigns(STUDY).iloc[0]
    pairs = set(zip(stored["rater_id"], stored["uid"]))
    return {
        "db": "postgresql" if url.startswith("postgres") else "sqlite",
        "raters": raters,
        "votes_each": votes,
        "concurrency": concurrency,
        "wall_s": round(wall, 1),
        "votes_stored": len(stored),
        "distinct_stored": len(pairs),
        "sessions_finished": int(camp["finished_sessions"]),
        "all_stored_once": len(stored) == len(pairs) == raters * votes,
        "click_retries": retries,
        "click_p50_ms": round(float(np.percentile(clicks, 50)), 1),
        "click_p99_ms": round(float(np.percentile(clicks, 99)), 1),
        "store_p50_ms": round(float(np.percentile(server, 50)), 2) if server else None,
        "store_p99_ms": round(float(np.percentile(server, 99)), 2) if server else None,
        "answers_timed": len(server),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--raters", type=int, default=50)
    p.add_argument("--votes", type=int, default=40)
    p.add_argument("--concurrency", type=int, default=10, help="raters with a page open at once")
    p.add_argument("--db", default=None, help="results database (default: a temporary SQLite file)")
    p.add_argument("--json", default=None, metavar="FILE")
    args = p.parse_args(argv)
    res = run(args.db, args.raters, args.votes, args.concurrency)
    print(
        format_table(
            (
                "db",
                "raters",
                "votes each",
                "at once",
                "wall s",
                "stored",
                "once each",
                "finished",
                "click p50 ms",
                "click p99 ms",
                "store p50 ms",
                "store p99 ms",
            ),
            [
                (
                    res["db"],
                    res["raters"],
                    res["votes_each"],
                    res["concurrency"],
                    res["wall_s"],
                    res["votes_stored"],
                    res["all_stored_once"],
                    res["sessions_finished"],
                    res["click_p50_ms"],
                    res["click_p99_ms"],
                    res["store_p50_ms"],
                    res["store_p99_ms"],
                )
            ],
        )
    )
    if args.json:
        write_json(args.json, res)
    return 0 if res["all_stored_once"] and res["sessions_finished"] == args.raters else 1


if __name__ == "__main__":
    sys.exit(main())
