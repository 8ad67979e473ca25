"""Opening the results store: a damaged file and a missing one are clear errors naming the file,
read-only opens (`create=False`) create nothing, and URLs are shown with the password masked."""

from __future__ import annotations

import os
import pickle

import pytest

from models.errors import VidcolorError
from study.store import Store, has_password, mask_url


def listing(folder) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and mtime (ns), to prove nothing was made or changed."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("create", [True, False])
def test_a_damaged_file_is_named_and_left_as_it_was(tmp_path, create):
    db = tmp_path / "results.db"
    data = os.urandom(4096)
    db.write_bytes(data)
    before = listing(tmp_path)
    with pytest.raises(VidcolorError) as err:
        Store(f"sqlite:///{db}", create=create)
    assert str(err.value) == (
        f"results database {db} is damaged or not a SQLite database (file is not a database); "
        "give another --db, or restore the file from a copy"
    )
    assert db.read_bytes() == data and listing(tmp_path) == before  # no -wal/-shm, no byte changed


def test_read_only_open_of_a_missing_file_creates_nothing(tmp_path, monkeypatch):
    db = tmp_path / "new" / "deeper" / "results.db"
    with pytest.raises(VidcolorError) as err:
        Store(f"sqlite:///{db}", create=False)
    assert str(err.value) == f"no results database at {db}; run `vidcolor tune` first or check --db"
    assert list(tmp_path.iterdir()) == []  # no folder, no file
    relative = tmp_path / "cwd"
    relative.mkdir()
    monkeypatch.chdir(relative)
    with pytest.raises(VidcolorError) as err:
        Store("sqlite:///r.db", create=False)
    assert str(err.value).startswith(f"no results database at {relative / 'r.db'};")  # the absolute file
    assert list(relative.iterdir()) == []


def test_read_only_open_of_a_file_without_our_tables_changes_nothing(tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch()  # an empty SQLite database: opening it for writing would turn it into a WAL file
    before = listing(tmp_path)
    with pytest.raises(VidcolorError) as err:
        Store(f"sqlite:///{empty}", create=False)
    assert str(err.value) == (
        f"no vidcolor results in {empty} (no vc_studies table); run `vidcolor tune` first or check --db"
    )
    assert listing(tmp_path) == before and empty.stat().st_size == 0


def test_read_only_open_reads_what_a_writer_made(tmp_path):
    url = f"sqlite:///{tmp_path / 'sub' / 'results.db'}"
    writer = Store(url)  # a writing command makes the folder and the file
    writer.create_study("s", objective="val_rmse_rgb", mode="min", spec={}, storage_path="/ray")
    writer.log_epoch("s", "t1", 0, {"val_rmse_rgb": 4.0})
    writer.close()
    reader = Store(url, create=False)
    assert reader.studies()["name"].tolist() == ["s"] and reader.trials("s")["objective"].tolist() == [4.0]
    clone = pickle.loads(pickle.dumps(reader))  # pickles as a read-only store
    assert clone.url == reader.url and clone._create is False
    reader.close()
    clone.close()


def test_urls_are_masked_wherever_they_are_shown(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert mask_url("postgresql://vc:s3cret@db.example:5432/results") == "postgresql://vc:***@db.example:5432/results"
    assert mask_url("postgresql://vc:s3cret@db.example:port/x") == "postgresql://vc:***@db.example:port/x"  # unparsable
    assert mask_url("sqlite:////a/b.db") == "sqlite:////a/b.db"
    assert has_password("postgresql://vc:s3cret@h/x") and not has_password("postgresql://vc@h/x")
    assert not has_password("sqlite:////a/b.db")
    for url in ("postgresql://vc:s3cret@db.example:port/x", "sqlite://vc:s3cret@localhost/r.db"):
        with pytest.raises(VidcolorError) as err:
            Store(url)
        assert "s3cret" not in str(err.value) and "vc:***@" in str(err.value), str(err.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://vc:s3cret@db.example/results", "postgresql://vc:***@db.example/results"),
        ("postgresql://vc@db.example/results?password=s3cret", "postgresql://vc@db.example/results?password=***"),
        (
            "postgresql://vc@db.example/results?sslmode=require&password=s3cret&application_name=vc",
            "postgresql://vc@db.example/results?sslmode=require&password=***&application_name=vc",
        ),
        ("postgresql://vc@db.example/results?PASSWORD=s3cret", "postgresql://vc@db.example/results?PASSWORD=***"),
        ("mysql+pymysql://vc@db.example/results?passwd=s3cret", "mysql+pymysql://vc@db.example/results?passwd=***"),
        ("postgresql://vc@db.example/r?sslpassword=s3cret&x=1", "postgresql://vc@db.example/r?sslpassword=***&x=1"),
        ("postgresql://vc:s3%40cret@db.example/results", "postgresql://vc:***@db.example/results"),
        ("postgresql://vc:s3@cret@db.example:5432/results", "postgresql://vc:***@db.example:5432/results"),
        ("postgresql://vc:s3/cret@db.example/results", "postgresql://vc:***@db.example/results"),
        ("postgresql://vc@db.example/results?password=s3%40cret", "postgresql://vc@db.example/results?password=***"),
        (
            "postgresql://vc@db.example/results?password=s3@cret&x=1",
            "postgresql://vc@db.example/results?password=***&x=1",
        ),
        ("postgresql://vc:s3cret@db.example/r?password=s3cret", "postgresql://vc:***@db.example/r?password=***"),
        ("postgresql://vc:***@db.example/r?password=***", "postgresql://vc:***@db.example/r?password=***"),
        (
            "postgresql://vc@db.example:5432/results?sslmode=require",
            "postgresql://vc@db.example:5432/results?sslmode=require",
        ),
        ("postgresql://db.example/results?passwordless=1", "postgresql://db.example/results?passwordless=1"),
        ("sqlite:////a/b.db", "sqlite:////a/b.db"),
        ("sqlite:////data/me@home/r.db?timeout=5", "sqlite:////data/me@home/r.db?timeout=5"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        (
            "cannot connect to 'postgresql://vc@h/r?password=s3cret': refused",
            "cannot connect to 'postgresql://vc@h/r?password=***': refused",
        ),
    ],
)
def test_mask_url_hides_every_password_form(url, shown):
    assert mask_url(url) == shown
    assert has_password(url) == (shown != url or "***" in url)
    assert mask_url(shown) == shown  # masking a masked URL changes nothing


@pytest.mark.filterwarnings("ignore:Query string argument")  # pysqlite ignores ?password=
def test_a_query_string_password_is_masked_in_messages_and_kept_for_connecting(tmp_path):
    from study.tune import secrets

    url = f"sqlite:///{tmp_path / 'r.db'}?password=s3cret"
    store = Store(url)
    assert store.url.endswith("?password=s3cret")  # connects with what was given
    assert store.display_url == f"sqlite:///{tmp_path / 'r.db'}?password=***" and "s3cret" not in repr(store)
    with pytest.raises(VidcolorError) as err:
        store.resolve_study("nope")
    assert "s3cret" not in str(err.value) and "?password=***" in str(err.value)
    shared = secrets.remember(store.url)  # what Tune pickles holds it masked; the driver gets it back
    assert shared == store.display_url and secrets.is_masked(shared) and secrets.resolve(shared) == store.url
    secrets._REAL.pop(shared)
    store.close()


@pytest.mark.slow
def test_optuna_storage_of_a_study_pickles_without_the_password(postgres_server, new_postgres_db):
    """What OptunaSearch writes into Tune's storage (its study, storage included) names the server
    but not the password; unpickled in the study's driver it connects with the real URL again."""
    optuna = pytest.importorskip("optuna")
    from study.tune import secrets
    from study.tune.optuna_storage import study_storage

    # the test server trusts every connection: any password is accepted and must never be stored
    url = Store(postgres_server.format(db=new_postgres_db()).replace("postgres@", "postgres:s3cret@")).url
    study = optuna.create_study(storage=study_storage(url), study_name="s")
    study.optimize(lambda t: t.suggest_float("lam", 0, 1), n_trials=2)
    blob = pickle.dumps(study)
    assert b"s3cret" not in blob and b"postgres:***@" in blob
    assert len(pickle.loads(blob).trials) == 2  # this process knows the real URL (remembered)
    secrets._REAL.pop(secrets.shareable(url))
    with pytest.raises(VidcolorError, match=r"postgres:\*\*\*@.* is not known in this process"):
        pickle.loads(blob)
