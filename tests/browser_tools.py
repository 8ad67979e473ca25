"""Shared by the browser tests (tests/ is on pytest's pythonpath: ``import browser_tools``):
`vidcolor dashboard` or `vidcolor ctt serve` on a free local port for the length of a block,
Chromium's path and flags, and waiting for Streamlit to finish a run."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def need_chromium() -> None:
    """Skip without Chromium, except under CI (whose .ci/run installs it), where that fails."""
    if Path(CHROMIUM).exists() or shutil.which("chromium"):
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but Chromium is missing at {CHROMIUM} (.ci/run installs it)")
    pytest.skip(f"Chromium not installed at {CHROMIUM} (apt-get install chromium); CI runs this test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(args: list[str], tmp_path: Path, what: str, health: str | None = None):
    """`python -m study ARGS --port P` on a free port until the block ends; yields (base URL, port).
    The server is stopped at the end, and its log is in the failure message if it does not start.
    `health`: the path that answers "ok" once it is up (Streamlit's, or the rater server's)."""
    health = health or ("/health" if args[:2] == ["ctt", "serve"] else "/_stcore/health")
    port = free_port()
    log_path = Path(tmp_path) / f"server-{port}.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "study", *args, "--port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{base}{health}", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{what} did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        yield base, port
    finally:
        proc.terminate()  # the command execs Streamlit: this pid is the server itself
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def settle(page, timeout: float = 60_000) -> None:
    """Wait until Streamlit has finished the current run (no running-status widget)."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)
    page.wait_for_timeout(300)
