"""Load test of the rater server over HTTP: R raters in headless Chromium, V votes each.

`vidcolor ctt serve` (study.ctt.rater_app under uvicorn) runs on localhost on a study of V + 10
items (two small mp4s, so each item is a composite clip) with one campaign (2afc, V counted items
per session, no practice, no attention checks, no display limit) and one invite link good for any
number of sessions. R raters, at most ``--concurrency`` at a time (each a browser context of one
headless Chromium), open the link (``/i/TOKEN``), tick the consent box, press Start, and answer V
items by clicking "← Left" or "Right →" (alternately) as soon as each item is on screen: no time
spent looking, so the machine is saturated and the figures are upper bounds.

Measured, all in the browser (the server has no timing hook):

- a vote: from the click (a capturing listener on the page) until the next item is on screen
  (``#progress`` reads "Item k+1 of V" and the ``#stage`` holds its decoded ``img``/``video``; after
  the last item, the end panel): ``/api/answer``, ``/api/state``, the rest of the next item's
  file (the page fetches it while the item before is up) and its decoding;
- the ``/api/answer`` and ``/api/state`` requests from sent to first byte of the answer
  (Chromium's resource timing): the server's part of a vote as the browser sees it, with any
  wait for a core or for the server's one event loop (uvicorn, one process) in either process;
- a start: from the click on Start until the first item is on screen.

Checked afterwards in the store: every session finished, R x V votes stored, each (rater, item)
once. The exit status is 0 when all of that holds and no rater gave up.

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
CAMPAIGN = "load"
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
WAIT_MS = 120_000  # the longest any one step may take before the rater gives up

# the page's script: `window.__t0` set by the click (capturing, before the page's own handler);
# `window.__until(want)` resolves with the ms from that click until the next item is on screen
# (want: its "Item k of V" text) or, with want null, the end panel
WATCH = """() => {
  document.addEventListener('click', () => { window.__t0 = performance.now(); }, {capture: true});
  window.__until = (want, limit) => new Promise((ok, fail) => {
    const there = () => want === null ? document.getElementById('end') :
      document.getElementById('progress').textContent === want &&
      document.querySelector('#stage img, #stage video');
    const check = () => {
      if (!there()) return;
      obs.disconnect(); clearTimeout(timer); ok(performance.now() - window.__t0);
    };
    const obs = new MutationObserver(check);
    obs.observe(document.body, {subtree: true, childList: true, characterData: true});
    const timer = setTimeout(() => { obs.disconnect(); fail(new Error('not on screen: ' + want)); }, limit);
    check();
  });
}"""


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
    store.create_campaign(
        STUDY, CAMPAIGN, task="2afc", session_items=votes, practice_items=0, attention_share=0.0, display_s=0
    )
    token = store.add_invites(STUDY, CAMPAIGN, 1, max_uses=None)[0]
    store.close()
    return token


def serve(url: str, port: int, cache: Path, log: Path) -> subprocess.Popen:
    """`vidcolor ctt serve` on `port` once its /health answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "study", "ctt", "serve", "--db", url, "--port", str(port), "--cache", str(cache)],
        cwd=ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read() == b"ok":
                return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"rater server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.3)


class Figures:
    """What the raters measured: ms per vote, per start, per request (by path), and errors."""

    def __init__(self):
        self.votes: list[float] = []
        self.starts: list[float] = []
        self.requests: dict[str, list[float]] = {"/api/answer": [], "/api/state": []}
        self.errors: list[str] = []

    def request_done(self, request) -> None:
        path = "/" + request.url.split("/", 3)[-1].split("?")[0]
        if path in self.requests:
            t = request.timing
            if t["requestStart"] >= 0 and t["responseStart"] >= t["requestStart"]:
                self.requests[path].append(t["responseStart"] - t["requestStart"])


async def one_rater(browser, link: str, votes: int, sem: asyncio.Semaphore, figs: Figures, n: int) -> None:
    """One rater's session: consent, Start, V answers as soon as each item is on screen. A failure
    ends this rater (recorded in `figs.errors`), not the run."""
    async with sem:
        ctx = await browser.new_context(viewport={"width": 1366, "height": 768})
        try:
            page = await ctx.new_page()
            page.set_default_timeout(WAIT_MS)
            page.on("requestfinished", figs.request_done)
            await page.goto(link)
            await page.get_by_label("I have read the above and agree to take part.").check()
            t0 = time.perf_counter()
            await page.get_by_role("button", name="Start").click()
            await page.wait_for_url("**/rate")
            await page.evaluate(WATCH)
            await page.evaluate("([w, l]) => window.__until(w, l)", [f"Item 1 of {votes}", WAIT_MS])
            figs.starts.append((time.perf_counter() - t0) * 1000)
            for i in range(1, votes + 1):
                want = f"Item {i + 1} of {votes}" if i < votes else None
                await page.locator("#left" if i % 2 else "#right").click()
                figs.votes.append(await page.evaluate("([w, l]) => window.__until(w, l)", [want, WAIT_MS]))
        except Exception as exc:  # reported with the figures; the run goes on
            first = (str(exc).splitlines() or [""])[0][:200]
            figs.errors.append(f"rater {n}: {type(exc).__name__}: {first}")
        finally:
            await ctx.close()


async def drive(link: str, raters: int, votes: int, concurrency: int) -> Figures:
    from playwright.async_api import async_playwright

    figs = Figures()
    sem = asyncio.Semaphore(concurrency)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            await asyncio.gather(*(one_rater(browser, link, votes, sem, figs, n) for n in range(raters)))
        finally:
            await browser.close()
    return figs


def _pct(xs: list[float], q: float, digits: int = 1) -> float | None:
    return round(float(np.percentile(xs, q)), digits) if xs else None


def run(db: str | None, raters: int, votes: int, concurrency: int) -> dict:
    """Set up, serve, drive R raters x V votes (at most `concurrency` at once), check the store;
    returns the figures (see `main` for the table)."""
    from study.store import Store

    with tempfile.TemporaryDirectory(prefix="vc-rater-load-") as tmp:
        work = Path(tmp)
        url = db or f"sqlite:///{work / 'load.db'}"
        token = setup(url, work, votes)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = serve(url, port, work / "cache", work / "server.log")
        t0 = time.perf_counter()
        try:
            figs = asyncio.run(drive(f"http://127.0.0.1:{port}/i/{token}", raters, votes, concurrency))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        wall = time.perf_counter() - t0
        server_log = (work / "server.log").read_text(errors="replace")
        if "Traceback" in server_log:  # kept for whoever reads the run
            kept = Path(tempfile.gettempdir()) / f"rater_load-server-{os.getpid()}.log"
            kept.write_text(server_log)
            print(f"the server's log, with its tracebacks: {kept}", file=sys.stderr)
        store = Store(url)
        stored = store.campaign_votes(STUDY, CAMPAIGN)
        sessions = store.campaign_sessions(STUDY, CAMPAIGN)
        store.close()
    pairs = set(zip(stored["rater_id"], stored["uid"]))
    answer, state = figs.requests["/api/answer"], figs.requests["/api/state"]
    return {
        "db": "postgresql" if url.startswith("postgres") else "sqlite",
        "raters": raters,
        "votes_each": votes,
        "concurrency": concurrency,
        "wall_s": round(wall, 1),
        "votes_per_s": round(len(figs.votes) / wall, 1) if wall else None,
        "sessions": len(sessions),
        "sessions_finished": int(sessions["finished"].notna().sum()),
        "votes_stored": len(stored),
        "distinct_stored": len(pairs),
        "all_stored_once": len(stored) == len(pairs) == raters * votes,
        "votes_timed": len(figs.votes),
        "vote_p50_ms": _pct(figs.votes, 50),
        "vote_p99_ms": _pct(figs.votes, 99),
        "vote_max_ms": _pct(figs.votes, 100),
        "start_p50_ms": _pct(figs.starts, 50),
        "start_p99_ms": _pct(figs.starts, 99),
        "answer_req_p50_ms": _pct(answer, 50),
        "answer_req_p99_ms": _pct(answer, 99),
        "state_req_p50_ms": _pct(state, 50),
        "state_req_p99_ms": _pct(state, 99),
        "requests_timed": {"answer": len(answer), "state": len(state)},
        "rater_errors": figs.errors,
        "server_errors": server_log.count("Traceback"),
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
    columns = {
        "db": "db",
        "raters": "raters",
        "votes_each": "votes each",
        "concurrency": "at once",
        "wall_s": "wall s",
        "votes_per_s": "votes/s",
        "votes_stored": "stored",
        "all_stored_once": "once each",
        "sessions_finished": "finished",
        "vote_p50_ms": "vote p50 ms",
        "vote_p99_ms": "vote p99 ms",
        "answer_req_p50_ms": "answer req p50",
        "answer_req_p99_ms": "answer req p99",
        "state_req_p50_ms": "state req p50",
        "state_req_p99_ms": "state req p99",
        "start_p50_ms": "start p50 ms",
    }
    print(format_table(tuple(columns.values()), [tuple(res[k] for k in columns)], digits=1))
    for err in res["rater_errors"]:
        print(err, file=sys.stderr)
    if res["server_errors"]:
        print(f"the server logged {res['server_errors']} tracebacks", file=sys.stderr)
    if args.json:
        write_json(args.json, res)
    ok = res["all_stored_once"] and res["sessions_finished"] == res["sessions"] == args.raters
    return 0 if ok and not res["rater_errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
