"""The results store on real SQLite files: round trips, unique constraints, concurrent votes, WAL."""

from __future__ import annotations

import itertools
import math
import os
import pickle
import random
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from models.errors import VidcolorError
from study.store import Store


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_server():
    """A throwaway PostgreSQL server on a Unix socket (skipped without the binaries or psycopg)."""
    pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg (pip install 'vidcolor[postgres]')")
    bindir = Path(shutil.which("pg_ctl") or "/nonexistent").resolve().parent
    if not (bindir / "initdb").exists():
        pytest.skip("PostgreSQL tests need initdb/pg_ctl on PATH")
    as_root = os.geteuid() == 0
    run = (lambda cmd: ["runuser", "-u", "postgres", "--", *cmd]) if as_root else (lambda cmd: cmd)
    if as_root and subprocess.run(["id", "postgres"], capture_output=True).returncode:
        pytest.skip("running as root without a 'postgres' user to run the server")
    folder = Path(tempfile.mkdtemp(prefix="vcpg"))  # short path: the socket name must stay < 108 bytes
    folder.chmod(0o777)
    data, port = folder / "data", _free_port()
    try:
        subprocess.run(run([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
                       check=True, capture_output=True, timeout=120)
        subprocess.run(run([str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(folder / "log"), "-o",
                            f"-k {folder} -c listen_addresses='' -p {port} -c fsync=off", "start"]),
                       check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"could not start a PostgreSQL server: {exc}")
    try:
        yield f"postgresql://postgres@/{{db}}?host={folder}&port={port}"
    finally:
        subprocess.run(run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


_DB_NUMBERS = itertools.count()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'results.db'}")
    else:
        import psycopg

        template = request.getfixturevalue("postgres_server")
        name = f"vc_test_{next(_DB_NUMBERS)}"
        with psycopg.connect(template.format(db="postgres"), autocommit=True) as con:
            con.execute(f"CREATE DATABASE {name}")
        s = Store(template.format(db=name))
        assert s.engine.dialect.name == "postgresql" and s.url.startswith("postgresql+psycopg://")
    yield s
    s.close()


@pytest.fixture()
def study(store):
    store.create_study("s1", objective="val_rmse", mode="min", spec={"trials": 3}, shards="/data/shards",
                       storage_path="/tmp/ray")
    return "s1"


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


def test_study_round_trip_and_uniqueness(store, study):
    got = store.get_study("s1")
    assert got["spec"] == {"trials": 3} and got["objective"] == "val_rmse" and got["mode"] == "min"
    assert got["shards"] == "/data/shards" and got["status"] == "RUNNING"
    with pytest.raises(VidcolorError, match="already exists"):
        store.create_study("s1", objective="val_rmse")
    again = store.create_study("s1", objective="val_rmse", exist_ok=True)  # resume
    assert again["id"] == got["id"]
    with pytest.raises(VidcolorError, match="objective"):
        store.create_study("s1", objective="val_psnr", mode="max", exist_ok=True)
    with pytest.raises(VidcolorError, match="mode"):
        store.create_study("s2", objective="x", mode="lowest")
    store.create_study("s2", objective="val_colorfulness", mode="max")
    assert store.latest_study()["name"] == "s2"
    store.set_study_status("s1", "FINISHED")
    assert list(store.studies()["status"]) == ["FINISHED", "RUNNING"]
    assert store.get_study("nope") is None
    with pytest.raises(VidcolorError, match="no study named 'nope'"):
        store.trials("nope")


def test_trials_epochs_best_and_flattened_columns(store, study):
    store.upsert_trial(study, "t1", experiment="exp2", config={"lam": 0.5, "grid": 10, "lr": 1e-3},
                       params={"lam": 0.5, "lr": 1e-3})
    store.upsert_trial(study, "t2", experiment="exp1", params={"lam": 0.9, "lr": 1e-2})
    assert store.log_epoch(study, "t1", 0, {"val_rmse": 9.0, "loss": np.float32(2.5)}, checkpoint="/ck/0")
    assert store.log_epoch(study, "t1", 1, {"val_rmse": 7.0, "loss": 2.0}, checkpoint="/ck/1")
    assert not store.log_epoch(study, "t1", 2, {"val_rmse": 8.0, "loss": 1.5}, checkpoint="/ck/2")
    assert not store.log_epoch(study, "t2", 0, {"val_rmse": float("nan"), "loss": float("inf")})  # NaN never best
    store.log_epoch(study, "t1", 2, {"val_rmse": 8.5, "loss": 1.4})  # upsert, not a second row
    store.finish_trial(study, "t1", "TERMINATED")
    store.finish_trial(study, "t2", "ERROR", error="loss is NaN")

    t1 = store.get_trial(study, "t1")
    assert t1["best_epoch"] == 1 and t1["best_metrics"] == {"val_rmse": 7.0, "loss": 2.0}
    assert t1["checkpoint"] == "/ck/1" and t1["last_metrics"]["val_rmse"] == 8.5 and t1["epochs"] == 3
    assert t1["ended"] >= t1["started"]

    df = store.trials(study)
    assert list(df["trial_id"]) == ["t1", "t2"]
    assert {"param_lam", "param_lr", "best_val_rmse", "last_val_rmse", "best_loss", "objective"} <= set(df.columns)
    row = df.set_index("trial_id")
    assert row.loc["t1", "param_lam"] == 0.5 and row.loc["t1", "best_val_rmse"] == 7.0
    assert row.loc["t1", "objective"] == 7.0 and row.loc["t1", "epochs"] == 3
    assert row.loc["t2", "status"] == "ERROR" and row.loc["t2", "error"] == "loss is NaN"
    assert math.isnan(row.loc["t2", "last_val_rmse"])  # stored as JSON null
    assert row.loc["t1", "config"] == {"lam": 0.5, "grid": 10, "lr": 1e-3}

    ep = store.epochs(study)
    assert list(zip(ep["trial_id"], ep["epoch"])) == [("t1", 0), ("t1", 1), ("t1", 2), ("t2", 0)]
    assert list(ep["val_rmse"])[:3] == [9.0, 7.0, 8.5]
    assert len(store.epochs(study, ["t2"])) == 1

    summary = store.studies().set_index("name").loc["s1"]
    assert summary["trials"] == 2 and summary["finished"] == 1 and summary["failed"] == 1 and summary["best"] == 7.0

    # resume: a relaunched trial goes back to RUNNING with its history intact
    store.upsert_trial(study, "t2", status="RUNNING")
    t2 = store.get_trial(study, "t2")
    assert t2["status"] == "RUNNING" and t2["error"] is None and t2["ended"] is None and t2["epochs"] == 1
    with pytest.raises(VidcolorError, match="status"):
        store.upsert_trial(study, "t2", status="DONE")
    with pytest.raises(VidcolorError, match="no trial 'zz'"):
        store.finish_trial(study, "zz")


def test_max_mode_objective(store):
    store.create_study("mx", objective="val_psnr", mode="max")
    store.log_epoch("mx", "a", 0, {"val_psnr": 20.0})
    store.log_epoch("mx", "a", 1, {"val_psnr": 25.0})
    store.log_epoch("mx", "a", 2, {"val_psnr": 22.0})
    assert store.get_trial("mx", "a")["best_epoch"] == 1


def test_same_trial_id_in_two_studies(store, study):
    store.create_study("other", objective="val_rmse")
    store.log_epoch(study, "t1", 0, {"val_rmse": 1.0})
    store.log_epoch("other", "t1", 0, {"val_rmse": 2.0})
    assert store.trials(study)["objective"].tolist() == [1.0]
    assert store.trials("other")["objective"].tolist() == [2.0]


def test_media_round_trip(store, study, tmp_path):
    store.upsert_trial(study, "t1", experiment="exp2")
    store.add_media(study, "t1", "pred_mp4", tmp_path / "v0_pred.mp4", video_id="v0", clip=0)
    for f in range(2):
        store.add_media(study, "t1", "gray_png", tmp_path / f"v0_{f}_gray.png", video_id="v0", clip=0, frame=f)
    store.add_media(study, "t1", "pred_mp4", tmp_path / "v0_pred.mp4", video_id="v0", clip=0)  # idempotent
    df = store.media(study, "t1")
    assert len(df) == 3
    assert sorted(df["kind"]) == ["gray_png", "gray_png", "pred_mp4"]
    assert set(df.loc[df["kind"] == "gray_png", "frame"]) == {0, 1}
    assert df["path"].str.startswith(str(tmp_path)).all()
    assert len(store.media(study)) == 3 and store.media(study, "t9").empty


def test_ctt_items_next_item_and_votes(store, study):
    store.upsert_trial(study, "t1", experiment="exp2")
    uids = store.add_ctt_items(study, [
        {"real_path": "/m/a_real.mp4", "fake_path": "/m/a_fake.mp4", "trial_id": "t1", "video_id": "v0", "clip": 0},
        {"real_path": "/m/b_real.mp4", "fake_path": "/m/b_fake.mp4", "trial_id": "t1", "video_id": "v1", "clip": 3},
        {"real_path": "/m/c_real.mp4", "fake_path": "/m/c_bad.mp4", "is_attention": True, "kind": "clip"},
    ])
    assert len(set(uids)) == 3 and all(len(u) == 16 for u in uids)
    assert all("t1" not in u and "real" not in u for u in uids)
    with pytest.raises(VidcolorError, match="fake_path"):
        store.add_ctt_items(study, [{"real_path": "x"}])
    with pytest.raises(VidcolorError, match="kind"):
        store.add_ctt_items(study, [{"real_path": "x", "fake_path": "y", "kind": "gif"}])
    assert len(store.ctt_items(study)) == 3  # the failed batches left nothing behind

    alice, bob = store.add_rater("alice"), store.add_rater("bob")
    assert store.add_rater("alice") == alice and store.add_rater() != store.add_rater()
    # Bob votes on items 0 and 1, so Alice's least-voted choice is the attention item.
    assert store.record_vote(bob, uids[0], choice="left", picked_real=True, response_ms=900)
    assert store.record_vote(bob, uids[1], choice="right", picked_real=False, response_ms=1200)
    nxt = store.next_ctt_item(study, alice)
    assert nxt["uid"] == uids[2] and nxt["is_attention"] and "trial_id" not in nxt
    assert store.next_ctt_item(study, bob)["uid"] == uids[2]
    assert store.record_vote(alice, uids[2], choice="left", picked_real=True, response_ms=500)
    # now every item has one vote; Alice has not seen 0 and 1
    assert store.next_ctt_item(study, alice, rng=random.Random(0))["uid"] in uids[:2]
    assert store.record_vote(alice, uids[0], choice="right", picked_real=False)
    assert store.next_ctt_item(study, alice)["uid"] == uids[1]
    assert store.record_vote(alice, uids[1], rating=4, mode="rating")
    assert store.next_ctt_item(study, alice) is None

    # a duplicate is refused without raising, and changes nothing
    assert store.record_vote(alice, uids[0], choice="left", picked_real=True) is False
    with pytest.raises(VidcolorError, match="unknown CTT item"):
        store.record_vote(alice, "nope", choice="left", picked_real=True)
    with pytest.raises(VidcolorError, match="unknown rater"):
        store.record_vote("ghost", uids[0], choice="left", picked_real=True)
    with pytest.raises(VidcolorError, match="rating"):
        store.record_vote(bob, uids[2], rating=6, mode="rating")
    with pytest.raises(VidcolorError, match="choice"):
        store.record_vote(bob, uids[2], choice="middle", picked_real=True)

    votes = store.votes(study)
    assert len(votes) == 5
    mine = votes[votes["rater"] == "alice"].set_index("uid")
    assert mine.loc[uids[0], "fooled"] is True and mine.loc[uids[0], "experiment"] == "exp2"
    assert mine.loc[uids[2], "is_attention"] and mine.loc[uids[2], "fooled"] is False
    assert mine.loc[uids[1], "rating"] == 4 and mine.loc[uids[1], "mode"] == "rating"
    assert store.ctt_items(study).set_index("uid")["votes"].to_dict() == {uids[0]: 2, uids[1]: 2, uids[2]: 1}
    assert set(store.raters()["name"].dropna()) == {"alice", "bob"}


def test_ctt_items_record_split_and_legacy_items_are_rated_only(store, study):
    store.upsert_trial(study, "t1", experiment="exp2")
    color, legacy = store.add_ctt_items(study, [
        {"real_path": "/m/a.mp4", "fake_path": "/m/b.mp4", "trial_id": "t1", "split": "test",
         "source": "/videos/cockatoo.mp4", "video_id": "cockatoo", "clip": 2},
        {"real_path": "/m/c.png", "fake_path": "/m/d.png", "trial_id": "t1", "split": "legacy", "kind": "frame",
         "frame": 5, "source": "/videos/film.mp4", "real_is_color": False},
    ])
    items = store.ctt_items(study).set_index("uid")
    assert items.loc[color, ["split", "source", "real_is_color", "kind"]].tolist() == [
        "test", "/videos/cockatoo.mp4", True, "clip"]
    assert items.loc[legacy, ["split", "frame", "real_is_color", "kind"]].tolist() == ["legacy", 5, False, "frame"]
    rater = store.add_rater("carol")
    # "which is real" never draws the black-and-white original; the rating mode draws both
    for _ in range(5):
        assert store.next_ctt_item(study, rater, mode="2afc", rng=random.Random(_))["uid"] == color
    assert {store.next_ctt_item(study, rater, mode="rating", rng=random.Random(k))["uid"] for k in range(20)} == {
        color, legacy}
    assert store.next_ctt_item(study, rater, kind="frame")["uid"] == legacy
    with pytest.raises(VidcolorError, match="black-and-white original"):
        store.record_vote(rater, legacy, choice="left", picked_real=False, mode="2afc")
    with pytest.raises(VidcolorError, match="mode must be one of"):
        store.next_ctt_item(study, rater, mode="ranking")
    assert store.record_vote(rater, legacy, rating=2, mode="rating")
    assert store.record_vote(rater, color, choice="left", picked_real=True)
    assert store.next_ctt_item(study, rater, mode="2afc") is None
    assert store.next_ctt_item(study, rater, mode="rating") is None


def test_old_database_gains_the_new_ctt_item_columns(tmp_path):
    db = tmp_path / "old.db"
    con = sqlite3.connect(db)  # vc_ctt_items as the first release made it, with one item in it
    con.executescript(
        "CREATE TABLE vc_ctt_items (id INTEGER PRIMARY KEY, uid VARCHAR(64) UNIQUE, study_id INTEGER NOT NULL, "
        "trial_pk INTEGER, real_path TEXT NOT NULL, fake_path TEXT NOT NULL, kind VARCHAR(10) NOT NULL, "
        "is_attention BOOLEAN NOT NULL, video_id VARCHAR(200), clip INTEGER, created DATETIME NOT NULL);")
    con.close()
    store = Store(f"sqlite:///{db}")
    store.create_study("s", objective="val_rmse_rgb")
    [uid] = store.add_ctt_items("s", [{"real_path": "/r.mp4", "fake_path": "/f.mp4"}])
    con = sqlite3.connect(db)
    cols = {row[1] for row in con.execute("PRAGMA table_info(vc_ctt_items)")}
    con.close()
    assert {"frame", "split", "source", "real_is_color"} <= cols
    assert store.next_ctt_item("s", store.add_rater(), mode="2afc")["uid"] == uid  # default: color original
    Store(f"sqlite:///{db}")  # opening it again changes nothing and does not fail


def test_concurrent_votes_each_stored_exactly_once(store, study):
    """8 threads (raters) race over the same 25 items, each vote attempted twice at once."""
    uids = store.add_ctt_items(study, [{"real_path": f"/r{i}", "fake_path": f"/f{i}"} for i in range(25)])
    raters = [store.add_rater(f"r{i}") for i in range(8)]
    results: list[tuple[str, str, bool]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def vote(rater: str, seed: int) -> None:
        order = uids[:]
        random.Random(seed).shuffle(order)
        start.wait()
        for uid in order:
            try:
                ok = store.record_vote(rater, uid, choice="left", picked_real=seed % 2 == 0, response_ms=seed)
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)
                continue
            with lock:
                results.append((rater, uid, ok))

    threads = [threading.Thread(target=vote, args=(r, i * 2 + k)) for i, r in enumerate(raters) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    accepted = Counter((r, u) for r, u, ok in results if ok)
    assert len(results) == 8 * 25 * 2
    assert len(accepted) == 8 * 25 and set(accepted.values()) == {1}
    votes = store.votes(study)
    assert len(votes) == 8 * 25
    assert not votes.duplicated(["rater_id", "uid"]).any()


def test_store_pickles_as_its_url(store, study):
    store.log_epoch(study, "t1", 0, {"val_rmse": 3.0})
    clone = pickle.loads(pickle.dumps(store))
    assert clone.url == store.url and clone.trials(study)["objective"].tolist() == [3.0]
    clone.close()


def test_optuna_shares_the_database(store, study):
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ost = optuna.create_study(storage=store.optuna_storage_url, study_name="s1")
    ost.optimize(lambda t: t.suggest_float("lam", 0, 1), n_trials=2)
    assert len(optuna.load_study(study_name="s1", storage=store.url).trials) == 2
    assert store.get_study("s1")["objective"] == "val_rmse"  # our tables untouched


def test_reported_epoch_key_does_not_shadow_trial_columns(store, study):
    # Ray Train reports carry `epoch` beside the metrics; the trial's own best_epoch column stays unique
    store.upsert_trial(study, "t1", experiment="exp1", params={"lam": 0.5})
    store.log_epoch(study, "t1", 0, {"epoch": 0, "val_rmse": 9.0})
    store.log_epoch(study, "t1", 1, {"epoch": 1, "val_rmse": 7.0})
    df = store.trials(study)
    assert not df.columns.duplicated().any()
    assert df.loc[0, "best_epoch"] == 1 and df.loc[0, "best_val_rmse"] == 7.0
    ep = store.epochs(study)
    assert list(ep["epoch"]) == [0, 1] and not ep.columns.duplicated().any()
