"""Fixtures of the results store tests: a store on a SQLite file and, when the PostgreSQL binaries
and psycopg are there, the same store on a throwaway PostgreSQL server (the `store` fixture runs
each test on both; `empty_db_url` is such a database before any store opened it); `study` adds one
study to it."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from study.store import Store


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _unavailable(reason: str) -> None:
    """Skip a PostgreSQL variant, or fail it under CI=true (.ci/run installs the server, so a
    missing one there is a broken CI, not a reason to test less)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def _postgres_bindir() -> Path | None:
    """initdb/pg_ctl on PATH, or in Debian's /usr/lib/postgresql/<version>/bin (not on PATH)."""
    on_path = shutil.which("pg_ctl")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return next((d for d in candidates if (d / "initdb").exists() and (d / "pg_ctl").exists()), None)


@pytest.fixture(scope="module")
def postgres_server():
    """A throwaway PostgreSQL server on a Unix socket (skipped without the binaries or psycopg,
    failed instead under CI=true)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("PostgreSQL tests need psycopg (pip install 'vidcolor[postgres]')")
    bindir = _postgres_bindir()
    if bindir is None:
        _unavailable("PostgreSQL tests need initdb/pg_ctl (apt-get install postgresql)")
    as_root = os.geteuid() == 0
    run = (lambda cmd: ["runuser", "-u", "postgres", "--", *cmd]) if as_root else (lambda cmd: cmd)
    if as_root and subprocess.run(["id", "postgres"], capture_output=True).returncode:
        _unavailable("running as root without a 'postgres' user to run the server")
    folder = Path(tempfile.mkdtemp(prefix="vcpg"))  # short path: the socket name must stay < 108 bytes
    folder.chmod(0o777)
    data, port = folder / "data", _free_port()
    try:
        subprocess.run(
            run([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            run(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-w",
                    "-l",
                    str(folder / "log"),
                    "-o",
                    f"-k {folder} -c listen_addresses='' -p {port} -c fsync=off",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        _unavailable(f"could not start a PostgreSQL server: {exc}")
    try:
        yield f"postgresql://postgres@/{{db}}?host={folder}&port={port}"
    finally:
        subprocess.run(
            run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True, timeout=60
        )
        shutil.rmtree(folder, ignore_errors=True)


_DB_NUMBERS = itertools.count()


@pytest.fixture()
def new_postgres_db(postgres_server) -> Callable[[], str]:
    """A function creating a fresh, empty database on the test server; returns its name."""
    import psycopg

    def make() -> str:
        name = f"vc_test_{next(_DB_NUMBERS)}"
        with psycopg.connect(postgres_server.format(db="postgres"), autocommit=True) as con:
            con.execute(f"CREATE DATABASE {name}")
        return name

    return make


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def empty_db_url(request, tmp_path) -> str:
    """The URL of an empty database no store has opened yet: a SQLite file, or a fresh database on
    the test PostgreSQL server (each test runs on both)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    return request.getfixturevalue("postgres_server").format(db=request.getfixturevalue("new_postgres_db")())


@pytest.fixture()
def store(empty_db_url):
    s = Store(empty_db_url)
    if not empty_db_url.startswith("sqlite"):
        assert s.engine.dialect.name == "postgresql" and s.url.startswith("postgresql+psycopg://")
    yield s
    s.close()


@pytest.fixture()
def study(store):
    store.create_study(
        "s1", objective="val_rmse", mode="min", spec={"trials": 3}, shards="/data/shards", storage_path="/tmp/ray"
    )
    return "s1"
