"""`vidcolor dashboard`: start the Streamlit dashboard (dashboard/app.py) as a subprocess; and
`vidcolor ctt serve`: the rater server (study.ctt.rater_app) in this process.

The database URL reaches the app through the environment variable VIDCOLOR_DB. The server listens
on localhost unless --host says otherwise. The database is opened once before the server starts
(read-only: a missing or damaged one is an error naming it, and nothing is created) and shown with
its password masked. This module imports neither the dashboard, torch nor Ray: it only finds the
app file and execs `python -m streamlit run` on it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

from models.errors import VidcolorError

log = logging.getLogger(__name__)


def app_path(script: str = "app.py") -> Path:
    """The dashboard's entry script, located without
    importing the `dashboard` package."""
    spec = importlib.util.find_spec("dashboard")
    if spec is None or not spec.submodule_search_locations:
        raise VidcolorError("the `dashboard` package is not installed (pip install -e .)")
    path = Path(list(spec.submodule_search_locations)[0]) / script
    if not path.is_file():
        raise VidcolorError(f"dashboard app not found at {path}")
    return path


def check_host(host: str, port: int) -> None:
    """Refuse a --host that does not resolve to an address to listen on (``999.1.1.1``, a
    misspelt name), before the server starts, instead of Streamlit's socket.gaierror traceback."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise VidcolorError(f"--host {host!r} is not an address to listen on ({reason})") from None


def streamlit_command(port: int, host: str = "127.0.0.1") -> list[str]:
    """The command line that serves the dashboard: headless, no usage statistics. A --port outside
    1..65535 or a --host that does not resolve is an error naming it."""
    if not 0 < port < 65536:
        raise VidcolorError(f"--port must be in 1..65535, got {port}")
    check_host(host, port)
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_path("app.py")),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--theme.base",
        "light",
    ]
    return cmd + ["--client.toolbarMode", "viewer"]


def dashboard_env(db: str | None) -> dict[str, str]:
    """The environment of the server: VIDCOLOR_DB set from --db (or inherited)."""
    env = dict(os.environ)
    if db:
        env["VIDCOLOR_DB"] = db
    return env


def main_raters(args) -> int:
    """`vidcolor ctt serve`: the rater server (study.ctt.rater_app, uvicorn in this process) until
    stopped. The database is opened first (a missing or damaged one is an error naming it)."""
    import shutil
    import tempfile

    from study.ctt.rater_app import serve
    from study.store import Store

    if not 0 < args.port < 65536:
        raise VidcolorError(f"--port must be in 1..65535, got {args.port}")
    check_host(args.host, args.port)
    store = Store(args.db or os.environ.get("VIDCOLOR_DB"), create=False)
    cache = args.cache or tempfile.mkdtemp(prefix="vidcolor-rater-")
    print(
        f"rater server (invite links only): http://{args.host}:{args.port}  (database: {store.display_url})",
        flush=True,
    )
    try:
        serve(store, args.host, args.port, cache)
    finally:
        store.close()
        if not args.cache:
            shutil.rmtree(cache, ignore_errors=True)
    return 0


def main(args) -> int:
    """Serve the dashboard until stopped.

    On POSIX the process *becomes* the Streamlit server (exec), so a SIGTERM or Ctrl-C sent to
    `vidcolor dashboard` reaches the server itself and no orphaned server is left behind. Elsewhere
    it runs Streamlit as a child and waits for it.
    """
    from study.store import Store

    cmd = streamlit_command(args.port, args.host)
    env = dashboard_env(args.db)
    store = Store(env.get("VIDCOLOR_DB"), create=False)  # the app opens the same one
    shown = store.display_url
    store.close()
    print(f"dashboard: http://{args.host}:{args.port}  (database: {shown})", flush=True)
    log.debug("running %s", " ".join(cmd))
    if os.name == "posix":
        sys.stderr.flush()
        os.execve(cmd[0], cmd, env)  # does not return
    proc = subprocess.Popen(cmd, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        return 130
