"""The results store's engine on real databases: URLs, WAL, pickling, shared Optuna tables (schema
upgrades: test_upgrade.py)."""

from __future__ import annotations

import json
import pickle
import sqlite3
import subprocess
import sys

import pytest
from sqlalchemy.engine import make_url

from models.errors import VidcolorError
from study.store import Store
from study.store.engine import _normalize_url
from study.store.schema import Base


def test_sqlite_wal_and_default_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VIDCOLOR_DB", raising=False)
    s = Store()
    assert s.url == f"sqlite:///{tmp_path / 'vidcolor.db'}"  # relative path made absolute
    assert s.journal_mode() == "wal"
    con = sqlite3.connect(tmp_path / "vidcolor.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"vc_studies", "vc_trials", "vc_epochs", "vc_media", "vc_ctt_items", "vc_ctt_votes", "vc_raters"} <= tables
    assert not tables & {"studies", "trials"}  # Optuna's names stay free
    monkeypatch.setenv("VIDCOLOR_DB", f"sqlite:///{tmp_path / 'env.db'}")
    assert Store().url.endswith("env.db")


def test_bad_urls_are_clear_errors(tmp_path):
    with pytest.raises(VidcolorError, match="not a valid SQLAlchemy URL"):
        Store("not a url")
    with pytest.raises(VidcolorError, match="folder"):
        Store(f"sqlite:///{tmp_path}")


def test_url_normalization(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _normalize_url("sqlite:///sub/dir/r.db") == f"sqlite:///{tmp_path / 'sub' / 'dir' / 'r.db'}"
    assert (tmp_path / "sub" / "dir").is_dir()  # the parent folder is made
    assert _normalize_url("sqlite://") == "sqlite://"  # in-memory stays in memory
    assert make_url(_normalize_url("sqlite:///:memory:")).database == ":memory:"
    assert _normalize_url("postgres://u:pw@db.example/vc") == "postgresql+psycopg://u:pw@db.example/vc"
    assert _normalize_url("postgresql://u@db.example:5433/vc") == "postgresql+psycopg://u@db.example:5433/vc"
    assert _normalize_url("postgresql+psycopg2://u@h/vc") == "postgresql+psycopg2://u@h/vc"  # explicit driver kept


def test_in_memory_store_keeps_one_database():
    s = Store("sqlite://")
    s.create_study("m", objective="val_rmse")
    s.log_epoch("m", "t", 0, {"val_rmse": 1.5})
    assert s.trials("m")["objective"].tolist() == [1.5]  # every session sees the same in-memory database
    assert s.journal_mode() == "memory" and s.is_sqlite
    s.close()


def test_every_table_is_prefixed():
    assert set(Base.metadata.tables) == {
        "vc_studies",
        "vc_trials",
        "vc_epochs",
        "vc_media",
        "vc_raters",
        "vc_ctt_items",
        "vc_ctt_votes",
        "vc_ctt_campaigns",
        "vc_ctt_invites",
        "vc_ctt_sessions",
        "vc_ctt_pair_votes",
    }


def test_import_pulls_in_neither_torch_nor_ray():
    code = (
        "import json, sys; import study.store; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ray'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_store_pickles_as_its_url(store, study):
    store.log_epoch(study, "t1", 0, {"val_rmse": 3.0})
    clone = pickle.loads(pickle.dumps(store))
    assert clone.url == store.url and clone.trials(study)["objective"].tolist() == [3.0]
    clone.close()


@pytest.mark.slow
def test_repr_and_display_url_mask_the_password(postgres_server, new_postgres_db):
    # the test server trusts every connection, so any password is accepted and must never be shown
    url = postgres_server.format(db=new_postgres_db()).replace("postgres@", "postgres:s3cret@")
    s = Store(url)
    try:
        assert "s3cret" in s.url and s.optuna_storage_url == s.url  # Optuna needs the real password
        assert "s3cret" not in s.display_url and "***" in s.display_url
        assert repr(s) == f"Store({s.display_url!r})" and "s3cret" not in repr(s)
        assert s.journal_mode() is None and not s.is_sqlite
        with pytest.raises(VidcolorError, match=r"\*\*\*") as err:
            s.trials("nope")
        assert "s3cret" not in str(err.value)
    finally:
        s.close()


def test_optuna_shares_the_database(store, study):
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ost = optuna.create_study(storage=store.optuna_storage_url, study_name="s1")
    ost.optimize(lambda t: t.suggest_float("lam", 0, 1), n_trials=2)
    assert len(optuna.load_study(study_name="s1", storage=store.url).trials) == 2
    assert store.get_study("s1")["objective"] == "val_rmse"  # our tables untouched
