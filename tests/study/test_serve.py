"""`vidcolor dashboard`: the database is checked before the server starts (a missing or damaged one
is an error naming it, nothing created) and the startup line shows its URL with the password masked."""

from __future__ import annotations

import os

import pytest

from study import serve
from study.cli import main
from study.store import Store


@pytest.fixture()
def no_exec(monkeypatch):
    """Stops `serve.main` where it would become the Streamlit server; records what it would run."""
    calls = []

    def fake_execve(path, cmd, env):
        calls.append((cmd, env))
        raise SystemExit(0)

    monkeypatch.setattr(os, "execve", fake_execve)
    return calls


def test_missing_database_is_an_error_and_nothing_is_created(tmp_path, capsys, no_exec):
    db = tmp_path / "nowhere" / "results.db"
    assert main(["dashboard", "--db", f"sqlite:///{db}"]) == 2
    err = capsys.readouterr().err
    assert f"error: no results database at {db}; run `vidcolor tune` first or check --db" in err
    assert "Traceback" not in err and list(tmp_path.iterdir()) == [] and no_exec == []


def test_damaged_database_is_an_error_naming_it(tmp_path, capsys, no_exec):
    db = tmp_path / "results.db"
    db.write_bytes(b"\x00garbage" * 512)
    assert main(["dashboard", "--db", f"sqlite:///{db}"]) == 2
    err = capsys.readouterr().err
    assert f"error: results database {db} is damaged or not a SQLite database" in err and no_exec == []
    assert db.read_bytes() == b"\x00garbage" * 512


def test_startup_line_masks_the_password(tmp_path, capsys, monkeypatch, no_exec):
    db = tmp_path / "results.db"
    Store(f"sqlite:///{db}").close()
    with pytest.raises(SystemExit):
        main(["dashboard", "--db", f"sqlite:///{db}", "--port", "8599"])
    assert f"dashboard: http://127.0.0.1:8599  (database: sqlite:///{db})" in capsys.readouterr().out
    ((cmd, env),) = no_exec
    assert env["VIDCOLOR_DB"] == f"sqlite:///{db}" and cmd[-1] == "viewer"

    class Opened:  # what Store gives for a PostgreSQL URL (no server needed to check the printed line)
        display_url = "postgresql+psycopg://vc:***@db.example/results"

        def __init__(self, url, create=True):
            assert url == "postgresql://vc:s3cret@db.example/results" and create is False

        def close(self):
            pass

    monkeypatch.setattr("study.store.Store", Opened)
    with pytest.raises(SystemExit):
        serve.main(
            type("Args", (), {"db": "postgresql://vc:s3cret@db.example/results", "port": 8599, "host": "127.0.0.1"})()
        )
    out = capsys.readouterr()
    assert "s3cret" not in out.out + out.err and "(database: postgresql+psycopg://vc:***@db.example/results)" in out.out


@pytest.mark.filterwarnings("ignore:Query string argument")  # pysqlite ignores ?password=
def test_startup_line_masks_a_query_string_password(tmp_path, capsys, no_exec):
    db = tmp_path / "results.db"
    Store(f"sqlite:///{db}").close()
    url = f"sqlite:///{db}?sslmode=disable&password=s3cret"
    with pytest.raises(SystemExit):
        main(["dashboard", "--db", url, "--port", "8599"])
    out = capsys.readouterr()
    assert "s3cret" not in out.out + out.err
    assert f"(database: sqlite:///{db}?password=***&sslmode=disable)" in out.out  # parameters sorted
    ((_, env),) = no_exec
    assert env["VIDCOLOR_DB"] == url  # the server connects with the URL as given


@pytest.mark.parametrize("command", ["dashboard", "ctt serve"])
def test_unresolvable_host_is_an_error_naming_it(tmp_path, capsys, no_exec, command):
    db = tmp_path / "results.db"
    Store(f"sqlite:///{db}").close()
    assert main([*command.split(), "--db", f"sqlite:///{db}", "--host", "999.1.1.1"]) == 2
    err = capsys.readouterr().err
    assert "error: --host '999.1.1.1' is not an address to listen on (" in err
    assert "Traceback" not in err and no_exec == []


def test_host_names_and_wildcards_resolve():
    for host in ("127.0.0.1", "localhost", "0.0.0.0"):
        serve.check_host(host, 8501)
