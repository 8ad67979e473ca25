"""The results store upgrades a database written by an older version when it opens it: renamed
columns (`kind` -> `media_type` / `medium`) and added CTT item columns, in one transaction, every
row kept; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3

import pandas as pd
import pytest
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    func,
    inspect,
    select,
)

import study.store.engine as store_engine
from models.errors import VidcolorError
from study.store import Store
from study.store.schema import Base

T0 = dt.datetime(2024, 5, 1, 12, 0, 0)


def old_schema() -> MetaData:
    """The tables as the previous version made them: vc_media and vc_ctt_items with their `kind`
    column (copied from that version's schema); the other tables have not changed."""
    md = MetaData()
    for name in ("vc_studies", "vc_trials", "vc_epochs", "vc_raters", "vc_ctt_votes"):
        Base.metadata.tables[name].to_metadata(md)
    Table("vc_media", md,
          Column("id", Integer, primary_key=True),
          Column("trial_pk", ForeignKey("vc_trials.id", ondelete="CASCADE"), nullable=False, index=True),
          Column("kind", String(40), nullable=False),
          Column("path", Text, nullable=False),
          Column("video_id", String(200)), Column("clip", Integer), Column("frame", Integer),
          Column("created", DateTime, nullable=False),
          UniqueConstraint("trial_pk", "path", name="uq_vc_media_trial_path"))
    Table("vc_ctt_items", md,
          Column("id", Integer, primary_key=True),
          Column("uid", String(64), unique=True, nullable=False),
          Column("study_id", ForeignKey("vc_studies.id", ondelete="CASCADE"), nullable=False, index=True),
          Column("trial_pk", ForeignKey("vc_trials.id", ondelete="CASCADE")),
          Column("real_path", Text, nullable=False), Column("fake_path", Text, nullable=False),
          Column("kind", String(10), nullable=False),
          Column("is_attention", Boolean, nullable=False),
          Column("video_id", String(200)), Column("clip", Integer), Column("frame", Integer),
          Column("split", String(40)), Column("source", Text),
          Column("real_is_color", Boolean, nullable=False),
          Column("created", DateTime, nullable=False))
    return md


# what the old database holds: (trial number, kind, path, video_id, clip, frame)
OLD_MEDIA = [(1, "gray_png", "/m/t1/000_gray.png", "v0", 0, 0), (1, "pred_png", "/m/t1/000_pred.png", "v0", 0, 0),
             (1, "gt_png", "/m/t1/000_gt.png", "v0", 0, 0), (1, "gray_mp4", "/m/t1/gray.mp4", "v0", 0, None),
             (1, "pred_mp4", "/m/t1/pred.mp4", "v0", 0, None), (1, "gt_mp4", "/m/t1/gt.mp4", "v0", 0, None),
             (2, "pred_mp4", "/m/t2/pred.mp4", "v1", 3, None)]
# (uid, trial number, kind, is_attention, frame, split, real_is_color)
OLD_ITEMS = [("u_clip", 1, "clip", False, None, "test", True), ("u_frame", 2, "frame", False, 3, "legacy", False),
             ("u_check", None, "clip", True, None, "test", True)]
# (rater_id, index in OLD_ITEMS, choice, picked_real, response_ms, rating, mode)
OLD_VOTES = [("r1", 0, "left", False, 812.5, None, "2afc"), ("r1", 1, None, None, 1500.0, 4, "rating"),
             ("r2", 2, "right", True, 640.0, None, "2afc")]


def write_old_database(url: str) -> dict[str, int]:
    """A database as the previous version left it, with a study, two trials, media of every type,
    CTT items of both media and votes; returns the number of rows per table."""
    engine = create_engine(store_engine._normalize_url(url))
    md = old_schema()
    md.create_all(engine)
    t = md.tables

    def add(c, table: str, **row) -> int:  # ids from the database, as the old version got them
        return c.execute(t[table].insert().values(**row)).inserted_primary_key[0]

    with engine.begin() as c:
        study = add(c, "vc_studies", name="old", spec={}, objective="val_rmse_rgb", mode="min", created=T0,
                    status="FINISHED")
        trials = {n: add(c, "vc_trials", study_id=study, trial_id=f"t{n}", experiment=exp, config={}, params={},
                         status="TERMINATED") for n, exp in ((1, "exp2"), (2, "exp5"))}
        for n, kind, path, video, clip, frame in OLD_MEDIA:
            add(c, "vc_media", trial_pk=trials[n], kind=kind, path=path, video_id=video, clip=clip, frame=frame,
                created=T0)
        add(c, "vc_raters", id="r1", name="alice", created=T0)
        add(c, "vc_raters", id="r2", name=None, created=T0)
        items = [add(c, "vc_ctt_items", uid=uid, study_id=study, trial_pk=trials.get(n), real_path=f"/c/{uid}_a",
                     fake_path=f"/c/{uid}_b", kind=kind, is_attention=att, video_id=None if n is None else f"v{n}",
                     clip=None, frame=frame, split=split, source=None, real_is_color=color, created=T0)
                 for uid, n, kind, att, frame, split, color in OLD_ITEMS]
        for rater, i, choice, picked, ms, rating, mode in OLD_VOTES:
            add(c, "vc_ctt_votes", rater_id=rater, item_id=items[i], choice=choice, picked_real=picked,
                response_ms=ms, rating=rating, mode=mode, created=T0)
    counts = row_counts(engine)
    engine.dispose()
    return counts


def row_counts(engine) -> dict[str, int]:
    """Rows per table of the previous version (the tables added since then start empty)."""
    with engine.connect() as c:
        return {name: c.execute(select(func.count()).select_from(Base.metadata.tables[name])).scalar_one()
                for name in old_schema().tables}


def columns(store: Store, table: str) -> set[str]:
    return {c["name"] for c in inspect(store.engine).get_columns(table)}


def plain(values) -> list:
    """A column's values with pandas' NaN/NaT as None and whole floats as ints (comparable to the inserts)."""
    return [None if v is None or (not isinstance(v, str) and pd.isna(v))
            else int(v) if isinstance(v, float) and v.is_integer() else v for v in values]


def test_old_database_is_renamed_on_open_and_every_row_reads_back(empty_db_url, caplog):
    counts = write_old_database(empty_db_url)
    with caplog.at_level(logging.INFO, logger="study.store.engine"):
        store = Store(empty_db_url)
    try:
        assert "renamed vc_media.kind to media_type; renamed vc_ctt_items.kind to medium" in caplog.text
        assert "added" not in caplog.text  # the previous version already had every CTT item column
        assert {"media_type"} <= columns(store, "vc_media") and "kind" not in columns(store, "vc_media")
        assert {"medium"} <= columns(store, "vc_ctt_items") and "kind" not in columns(store, "vc_ctt_items")
        assert row_counts(store.engine) == counts  # nothing lost, nothing added
        assert store.campaigns("old").empty and store.pair_votes("old").empty  # the campaign tables, made on open

        media = store.media("old").sort_values("path")
        expected = sorted(OLD_MEDIA, key=lambda m: m[2])
        assert list(media["media_type"]) == [m[1] for m in expected]
        assert list(media["trial_id"]) == [f"t{m[0]}" for m in expected]
        assert plain(media["frame"]) == [m[5] for m in expected] and plain(media["clip"]) == [m[4] for m in expected]

        items = store.ctt_items("old").set_index("uid")
        assert items.loc[[i[0] for i in OLD_ITEMS], "medium"].tolist() == ["clip", "frame", "clip"]
        assert plain(items.loc["u_frame", ["frame", "split", "real_is_color", "trial_id", "votes"]]) == [
            3, "legacy", False, "t2", 1]
        assert plain(items.loc["u_check", ["is_attention", "trial_id"]]) == [True, None]

        votes = store.votes("old")
        assert list(votes["uid"]) == ["u_clip", "u_frame", "u_check"]
        assert list(votes["medium"]) == ["clip", "frame", "clip"] and list(votes["mode"]) == ["2afc", "rating", "2afc"]
        assert plain(votes["choice"]) == ["left", None, "right"] and plain(votes["rating"]) == [None, 4, None]
        assert plain(votes["picked_real"]) == [False, None, True] and list(votes["rater"])[:2] == ["alice", "alice"]
        assert list(votes["response_ms"]) == [812.5, 1500.0, 640.0]

        # the upgraded database takes new rows under the new names
        rater = store.add_rater("bob")
        assert store.next_ctt_item("old", rater, medium="frame")["uid"] == "u_frame"
        store.add_media("old", "t2", media_type="gt_mp4", path="/m/t2/gt.mp4", video_id="v1", clip=3)
        assert set(store.media("old", "t2")["media_type"]) == {"pred_mp4", "gt_mp4"}
        [uid] = store.add_ctt_items("old", [{"real_path": "/c/n_a", "fake_path": "/c/n_b", "medium": "frame"}])
        assert store.get_ctt_item(uid)["medium"] == "frame"
    finally:
        store.close()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="study.store.engine"):
        Store(empty_db_url).close()  # opening it again changes nothing
    assert "upgraded" not in caplog.text


def test_a_failed_upgrade_leaves_the_database_as_it_was(empty_db_url, monkeypatch):
    counts = write_old_database(empty_db_url)
    # the last step fails after both renames ran: all of them must be undone
    monkeypatch.setattr(store_engine, "CTT_ITEM_ADDED", {**store_engine.CTT_ITEM_ADDED, "broken": "NOT A TYPE((("})
    with pytest.raises(VidcolorError, match="(?s)cannot upgrade the results database .*; it is left as it was"):
        Store(empty_db_url)
    engine = create_engine(store_engine._normalize_url(empty_db_url))
    try:
        have = {t: {c["name"] for c in inspect(engine).get_columns(t)} for t in ("vc_media", "vc_ctt_items")}
        assert "kind" in have["vc_media"] and "media_type" not in have["vc_media"]
        assert "kind" in have["vc_ctt_items"] and not {"medium", "broken"} & have["vc_ctt_items"]
        assert row_counts(engine) == counts
    finally:
        engine.dispose()
    monkeypatch.undo()
    store = Store(empty_db_url)  # the real upgrade then goes through
    try:
        assert sorted(store.media("old")["media_type"]) == sorted(m[1] for m in OLD_MEDIA)
        assert list(store.ctt_items("old")["medium"]) == ["clip", "frame", "clip"]
    finally:
        store.close()


def test_first_release_database_gains_the_new_ctt_item_columns(tmp_path, caplog):
    db = tmp_path / "old.db"
    con = sqlite3.connect(db)  # vc_ctt_items as the first release made it, with one item in it
    con.executescript(
        "CREATE TABLE vc_ctt_items (id INTEGER PRIMARY KEY, uid VARCHAR(64) UNIQUE, study_id INTEGER NOT NULL, "
        "trial_pk INTEGER, real_path TEXT NOT NULL, fake_path TEXT NOT NULL, kind VARCHAR(10) NOT NULL, "
        "is_attention BOOLEAN NOT NULL, video_id VARCHAR(200), clip INTEGER, created DATETIME NOT NULL);"
        "INSERT INTO vc_ctt_items VALUES (1, 'u_old', 1, NULL, '/r0.png', '/f0.png', 'frame', 0, 'v', 2, "
        "'2024-01-01 00:00:00');")
    con.close()
    with caplog.at_level(logging.INFO, logger="study.store.engine"):
        store = Store(f"sqlite:///{db}")
    assert ("renamed vc_ctt_items.kind to medium; added vc_ctt_items.frame; added vc_ctt_items.split; "
            "added vc_ctt_items.source; added vc_ctt_items.real_is_color") in caplog.text
    assert "vc_media" not in caplog.text  # a new table: made with the new names
    store.create_study("s", objective="val_rmse_rgb")  # id 1, the old item's study
    [uid] = store.add_ctt_items("s", [{"real_path": "/r.mp4", "fake_path": "/f.mp4"}])
    con = sqlite3.connect(db)
    cols = {row[1] for row in con.execute("PRAGMA table_info(vc_ctt_items)")}
    con.close()
    assert {"medium", "frame", "split", "source", "real_is_color"} <= cols and "kind" not in cols
    items = store.ctt_items("s").set_index("uid")
    assert plain(items.loc["u_old", ["medium", "clip", "frame", "real_is_color"]]) == ["frame", 2, None, True]
    assert items.loc[uid, "medium"] == "clip"
    assert store.next_ctt_item("s", store.add_rater(), mode="2afc", medium="clip")["uid"] == uid
    store.close()
    Store(f"sqlite:///{db}").close()  # opening it again changes nothing and does not fail
