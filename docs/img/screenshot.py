"""Remake docs/img/dashboard.png: a dashboard page on the tests' fixture study, in headless Chromium.

    .venv/bin/python docs/img/screenshot.py [PAGE]     # default: hyperparameters (or trials, overview)

Builds the fixture study of tests/conftest.py (six trials, per-epoch metrics, real media) in a
temporary folder, serves `vidcolor dashboard` on it and saves a 1280x800 view of the page to
docs/img/dashboard.png as a 256-colour PNG. Needs Debian's chromium (`apt-get install chromium`).
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HEADINGS = {"trials": "Trials", "hyperparameters": "Hyperparameters", "overview": "Studies"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if urllib.request.urlopen(f"{base}/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the dashboard did not start at {base}")


def shoot(base: str, name: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(60_000)
        page.goto(f"{base}/{name}")
        expect(page.get_by_role("heading", name=HEADINGS.get(name, name), exact=True)).to_be_visible()
        page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
        page.wait_for_timeout(2500)  # plotly draws after the run
        errors = page.locator("[data-testid='stException']")
        if errors.count():
            raise SystemExit(f"{name}: {errors.first.inner_text()[:2000]}")
        raw = OUT / "dashboard.raw.png"
        page.screenshot(path=str(raw))
        browser.close()
    Image.open(raw).convert("RGB").quantize(256).save(OUT / "dashboard.png", optimize=True)
    raw.unlink()
    print(f"{OUT / 'dashboard.png'}: {(OUT / 'dashboard.png').stat().st_size // 1024} KB")


def main(name: str) -> None:
    spec = importlib.util.spec_from_file_location("fixture_conftest", ROOT / "tests" / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)  # not on sys.path: tests/study would shadow the study package

    with tempfile.TemporaryDirectory() as tmp:
        info = conftest.build_fixture_study(Path(tmp))
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "study", "dashboard", "--db", info["url"], "--port", str(port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_healthy(base, proc)
            shoot(base, name)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "hyperparameters")
