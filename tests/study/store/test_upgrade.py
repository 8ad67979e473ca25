"""The results store brings a database written by any earlier version to today's schema when it opens
it, through the Alembic revisions of `study.store.migrations`: for each earlier schema (the first
release, each later change, and the last one before revisions were recorded) a database is written
the way that version did, opened, and then every row reads back and the tables equal a new store's;
on SQLite and PostgreSQL. A failed upgrade leaves the database as it was, and Optuna's tables and
its own `alembic_version` in the same database are left alone."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading

import pandas as pd
import pytest
from alembic import command
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
    inspect,
    select,
    text,
)

import study.store.engine as store_engine
from models.errors import VidcolorError
from study.store import Store, migrations
from study.store.schema import Base

T0 = dt.datetime(2024, 5, 1, 12, 0, 0)
T1 = dt.datetime(2024, 5, 2, 8, 30, 0)
# the schema of each earlier version, oldest first (the revision that describes it): the first
# release, CTT item columns, the renamed `kind` columns, campaigns, pair votes, and shown_at, the
# last schema before revisions were recorded (its databases have no vc_alembic_version)
EARLIER = ("0001", "0002", "0003", "0004", "0005", "0006")
HEAD = "0008"
REVISIONS = (*EARLIER, "0007", HEAD)  # every revision, oldest first (0007 on are always recorded)
# what the log says each revision did, by hand
MESSAGES = {
    "0002": "added vc_ctt_items.frame, split, source and real_is_color (still frames, legacy footage)",
    "0003": "renamed vc_media.kind to media_type and vc_ctt_items.kind to medium",
    "0004": "added vc_ctt_campaigns, vc_ctt_invites and vc_ctt_sessions (campaigns with invite links)",
    "0005": "added vc_ctt_pair_votes (pairwise campaigns between trials)",
    "0006": "added vc_ctt_sessions.shown_at (the display clock is the server's)",
    "0007": "added vc_media.epoch (sample frames rendered during training, by epoch)",
    "0008": "added campaign recruiting settings, invite expiry and revocation, browser-bound sessions",
}


def _items_table(md: MetaData, revision: str) -> None:
    """vc_ctt_items before revision 0003: `kind` for `medium`; before 0002 without frame, split,
    source and real_is_color (copied from those versions' schema)."""
    later = (
        [
            Column("frame", Integer),
            Column("split", String(40)),
            Column("source", Text),
            Column("real_is_color", Boolean, nullable=False),
        ]
        if revision >= "0002"
        else []
    )
    Table(
        "vc_ctt_items",
        md,
        Column("id", Integer, primary_key=True),
        Column("uid", String(64), unique=True, nullable=False),
        Column("study_id", ForeignKey("vc_studies.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("trial_pk", ForeignKey("vc_trials.id", ondelete="CASCADE")),
        Column("real_path", Text, nullable=False),
        Column("fake_path", Text, nullable=False),
        Column("kind", String(10), nullable=False),
        Column("is_attention", Boolean, nullable=False),
        Column("video_id", String(200)),
        Column("clip", Integer),
        *later,
        Column("created", DateTime, nullable=False),
    )


ADDED_0008 = {  # the columns revision 0008 added, with the value old rows get
    "vc_ctt_campaigns": {
        "consent_text": None,
        "completion_code": None,
        "screened_code": None,
        "completion_url": None,
        "id_params": None,
        "practice_uids": None,
        "screen": False,
    },
    "vc_ctt_invites": {"expires": None, "revoked": False},
    "vc_ctt_pair_votes": {"choice": None},
    "vc_ctt_sessions": {
        "secret_hash": None,
        "participant_id": None,
        "external_study": None,
        "external_session": None,
        "seed": None,
        "consented": None,
        "screen_passed": None,
        "screened_out": False,
    },
}


def _without_0008(md: MetaData, name: str) -> None:
    """Today's table `name` without the columns (and their indexes) revision 0008 added."""
    today = Base.metadata.tables[name]
    columns = [
        Column(
            c.name,
            c.type,
            *(ForeignKey(fk.target_fullname, ondelete=fk.ondelete) for fk in c.foreign_keys),
            primary_key=c.primary_key,
            nullable=c.nullable,
            index=c.index,
            unique=c.unique,
        )
        for c in today.columns
        if c.name not in ADDED_0008[name]
    ]
    unique = [
        UniqueConstraint(*con.columns.keys(), name=con.name)
        for con in today.constraints
        if isinstance(con, UniqueConstraint)
    ]
    Table(name, md, *columns, *unique)


def schema_of(revision: str) -> MetaData:
    """The `vc_` tables as the version of `revision` created them: today's tables where they have not
    changed since, and the older form of those that have (copied from that version's schema)."""
    md = MetaData()
    same = ["vc_studies", "vc_trials", "vc_epochs", "vc_raters", "vc_ctt_votes"]
    same += ["vc_ctt_items"] if revision >= "0003" else []
    same += ["vc_ctt_campaigns", "vc_ctt_invites"] if revision >= "0008" else []
    same += ["vc_ctt_pair_votes"] if revision >= "0008" else []
    same += ["vc_ctt_sessions"] if revision >= "0008" else []
    for name in same:
        Base.metadata.tables[name].to_metadata(md)
    if "0004" <= revision < "0008":  # today's campaign tables without what 0008 added
        later = (("vc_ctt_pair_votes",) if revision >= "0005" else ()) + (
            ("vc_ctt_sessions",) if revision >= "0006" else ()
        )
        for name in ("vc_ctt_campaigns", "vc_ctt_invites", *later):
            _without_0008(md, name)
    if revision >= "0007":
        Base.metadata.tables["vc_media"].to_metadata(md)
    else:  # `kind` for `media_type` before 0003; no `epoch` before 0007
        Table(
            "vc_media",
            md,
            Column("id", Integer, primary_key=True),
            Column("trial_pk", ForeignKey("vc_trials.id", ondelete="CASCADE"), nullable=False, index=True),
            Column("kind" if revision < "0003" else "media_type", String(40), nullable=False),
            Column("path", Text, nullable=False),
            Column("video_id", String(200)),
            Column("clip", Integer),
            Column("frame", Integer),
            Column("created", DateTime, nullable=False),
            UniqueConstraint("trial_pk", "path", name="uq_vc_media_trial_path"),
        )
    if revision < "0003":
        _items_table(md, revision)
    if "0004" <= revision < "0006":
        Table(
            "vc_ctt_sessions",
            md,
            Column("id", String(64), primary_key=True),
            Column("campaign_id", ForeignKey("vc_ctt_campaigns.id", ondelete="CASCADE"), nullable=False, index=True),
            Column("token", ForeignKey("vc_ctt_invites.token", ondelete="CASCADE"), nullable=False, index=True),
            Column("rater_id", ForeignKey("vc_raters.id", ondelete="CASCADE"), nullable=False, unique=True),
            Column("display_name", String(200)),
            Column("plan", Base.metadata.tables["vc_ctt_sessions"].c.plan.type, nullable=False),
            Column("practice", Integer, nullable=False),
            Column("position", Integer, nullable=False),
            Column("started", DateTime, nullable=False),
            Column("finished", DateTime),
        )
    return md


# what the old database holds: (trial number, media type, path, video_id, clip, frame)
OLD_MEDIA = [
    (1, "gray_png", "/m/t1/000_gray.png", "v0", 0, 0),
    (1, "pred_png", "/m/t1/000_pred.png", "v0", 0, 0),
    (1, "gt_png", "/m/t1/000_gt.png", "v0", 0, 0),
    (1, "gray_mp4", "/m/t1/gray.mp4", "v0", 0, None),
    (1, "pred_mp4", "/m/t1/pred.mp4", "v0", 0, None),
    (1, "gt_mp4", "/m/t1/gt.mp4", "v0", 0, None),
    (2, "pred_mp4", "/m/t2/pred.mp4", "v1", 3, None),
]
# (uid, trial number, medium, is_attention, frame, split, real_is_color)
OLD_ITEMS = [
    ("u_clip", 1, "clip", False, None, "test", True),
    ("u_frame", 2, "frame", False, 3, "legacy", False),
    ("u_check", None, "clip", True, None, "test", True),
]
# (rater_id, index in OLD_ITEMS, choice, picked_real, response_ms, rating, mode)
OLD_VOTES = [
    ("r1", 0, "left", False, 812.5, None, "2afc"),
    ("r1", 1, None, None, 1500.0, 4, "rating"),
    ("r2", 2, "right", True, 640.0, None, "2afc"),
]


def write_database(url: str, revision: str) -> dict[str, list[dict]]:
    """A database as the version of `revision` left it, holding rows in every one of its tables (a
    study, two trials with epochs, media of every type, raters, CTT items of both media, votes, and
    from 0004 on a campaign with an invite and a session, from 0005 a pairwise vote); returns each
    table's rows as written, ids included."""
    engine = create_engine(store_engine._normalize_url(url))
    md = schema_of(revision)
    md.create_all(engine)
    written: dict[str, list[dict]] = {name: [] for name in md.tables}
    media_col = "kind" if revision < "0003" else "media_type"
    medium_col = "kind" if revision < "0003" else "medium"

    def add(c, table: str, **row) -> int:  # ids from the database, as the old version got them
        key = c.execute(md.tables[table].insert().values(**row)).inserted_primary_key[0]
        pk = md.tables[table].primary_key.columns.keys()[0]
        written[table].append({pk: key, **row})
        return key

    with engine.begin() as c:
        study = add(
            c,
            "vc_studies",
            name="old",
            spec={"trials": 2},
            objective="val_rmse_rgb",
            mode="min",
            created=T0,
            status="FINISHED",
            storage_path="/ray/old",
            shards=None,
        )
        trials = {
            n: add(
                c,
                "vc_trials",
                study_id=study,
                trial_id=f"t{n}",
                experiment=exp,
                config={"lam": 0.5 * n},
                params={"lam": 0.5 * n},
                status=status,
                started=T0,
                ended=end,
                best_metrics={"val_rmse_rgb": 4.0 + n},
                last_metrics={"val_rmse_rgb": 4.5 + n},
                best_epoch=1,
                checkpoint=f"/ray/old/t{n}/ckpt",
                error=err,
            )
            for n, exp, status, end, err in ((1, "exp2", "TERMINATED", T1, None), (2, "exp5", "ERROR", None, "OOM"))
        }
        for epoch in (0, 1):
            add(c, "vc_epochs", trial_pk=trials[1], epoch=epoch, metrics={"val_rmse_rgb": 5.0 - epoch}, time=T0)
        for n, media_type, path, video, clip, frame in OLD_MEDIA:
            add(
                c,
                "vc_media",
                trial_pk=trials[n],
                **{media_col: media_type},
                path=path,
                video_id=video,
                clip=clip,
                frame=frame,
                created=T0,
            )
        for rater, name in (("r1", "alice"), ("r2", None), ("r3", "carol")):
            add(c, "vc_raters", id=rater, name=name, created=T0)
        items = []
        for uid, n, medium, att, frame, split, color in OLD_ITEMS:
            later = (
                {"frame": frame, "split": split, "source": f"/src/{uid}.mp4", "real_is_color": color}
                if revision >= "0002"
                else {}
            )
            items.append(
                add(
                    c,
                    "vc_ctt_items",
                    uid=uid,
                    study_id=study,
                    trial_pk=trials.get(n),
                    real_path=f"/c/{uid}_a",
                    fake_path=f"/c/{uid}_b",
                    **{medium_col: medium},
                    is_attention=att,
                    video_id=None if n is None else f"v{n}",
                    clip=n,
                    **later,
                    created=T0,
                )
            )
        for rater, i, choice, picked, ms, rating, mode in OLD_VOTES:
            add(
                c,
                "vc_ctt_votes",
                rater_id=rater,
                item_id=items[i],
                choice=choice,
                picked_real=picked,
                response_ms=ms,
                rating=rating,
                mode=mode,
                created=T0,
            )
        if revision >= "0004":
            campaign = add(
                c,
                "vc_ctt_campaigns",
                study_id=study,
                name="c1",
                task="2afc",
                display_s=1.5,
                session_items=2,
                practice_items=0,
                attention_share=0.5,
                trial_ids=["t1", "t2"],
                is_open=True,
                created=T0,
            )
            add(c, "vc_ctt_invites", token="tok1", campaign_id=campaign, max_uses=None, uses=1, created=T0)
            shown = {"shown_at": T1} if revision >= "0006" else {}
            add(
                c,
                "vc_ctt_sessions",
                id="sess1",
                campaign_id=campaign,
                token="tok1",
                rater_id="r3",
                display_name="carol",
                plan=["u_clip", "u_check"],
                practice=0,
                position=1,
                **shown,
                started=T0,
                finished=None,
            )
        if revision >= "0005":
            add(
                c,
                "vc_ctt_pair_votes",
                rater_id="r1",
                item_a_id=items[0],
                item_b_id=items[1],
                winner_id=items[1],
                response_ms=900.0,
                created=T1,
            )
    engine.dispose()
    return written


def as_upgraded(written: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The rows as today's tables hold them: `kind` under its new names, the columns added since with
    the values the upgrade gives old rows (CTT items were colour clips; sessions had no display clock)."""
    renamed = {"vc_media": {"kind": "media_type"}, "vc_ctt_items": {"kind": "medium"}}
    added = {
        "vc_ctt_items": {"frame": None, "split": None, "source": None, "real_is_color": True},
        "vc_ctt_sessions": {"shown_at": None, **ADDED_0008["vc_ctt_sessions"]},
        "vc_ctt_campaigns": ADDED_0008["vc_ctt_campaigns"],
        "vc_ctt_invites": ADDED_0008["vc_ctt_invites"],
        "vc_ctt_pair_votes": ADDED_0008["vc_ctt_pair_votes"],
        "vc_media": {"epoch": None},
    }
    out = {}
    for table, rows in written.items():
        names = renamed.get(table, {})
        out[table] = [{**added.get(table, {}), **{names.get(k, k): v for k, v in row.items()}} for row in rows]
    return out


def read_all(engine) -> dict[str, list[dict]]:
    """Every row of today's tables, through today's column types, in primary key order."""
    with engine.connect() as c:
        return {
            name: [dict(r._mapping) for r in c.execute(select(t).order_by(*t.primary_key.columns))]
            for name, t in Base.metadata.tables.items()
        }


def schema_signature(engine) -> dict[str, dict]:
    """Every `vc_` table's columns (type, nullable; not their order, which ALTER TABLE ADD COLUMN
    puts last, nor server defaults), primary key, foreign keys, indexes, unique and check constraints."""
    insp = inspect(engine)
    out = {}
    for t in sorted(insp.get_table_names()):
        if not t.startswith("vc_") or t == migrations.VERSION_TABLE:
            continue
        out[t] = {
            "columns": {c["name"]: (str(c["type"]), c["nullable"]) for c in insp.get_columns(t)},
            "primary key": insp.get_pk_constraint(t)["constrained_columns"],
            "foreign keys": sorted(
                (
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    fk["options"].get("ondelete"),
                )
                for fk in insp.get_foreign_keys(t)
            ),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(t)),
            "unique": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(t)),
            "checks": sorted((c["name"], c["sqltext"]) for c in insp.get_check_constraints(t)),
        }
    return out


def fresh_signature(url: str) -> dict[str, dict]:
    """The tables of a new store, made in a database of the same kind beside the one under test."""
    store = Store(url)
    try:
        return schema_signature(store.engine)
    finally:
        store.close()


@pytest.fixture()
def second_db_url(empty_db_url, tmp_path, request) -> str:
    """Another empty database of the same kind as `empty_db_url`."""
    if empty_db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'second.db'}"
    server = request.getfixturevalue("postgres_server")
    return server.format(db=request.getfixturevalue("new_postgres_db")())


def recorded(store: Store) -> str | None:
    with store.engine.connect() as c:
        return migrations.recorded_revision(c)


def plain(values) -> list:
    """A column's values with pandas' NaN/NaT as None and whole floats as ints (comparable to the inserts)."""
    return [
        None
        if v is None or (not isinstance(v, str) and pd.isna(v))
        else int(v)
        if isinstance(v, float) and v.is_integer()
        else v
        for v in values
    ]


@pytest.mark.parametrize("revision", EARLIER)
def test_each_earlier_schema_is_upgraded_and_every_row_reads_back(empty_db_url, second_db_url, revision, caplog):
    written = write_database(empty_db_url, revision)
    with caplog.at_level(logging.INFO, logger="study.store.engine"):
        store = Store(empty_db_url)
    try:
        found = "(found by its tables: made before revisions were recorded)"
        if revision == HEAD:
            assert f"schema revision {HEAD} {found}, now recorded" in caplog.text
        else:
            steps = "; ".join(f"{rev} {MESSAGES[rev]}" for rev in sorted(MESSAGES) if rev > revision)  # each one run
            assert f"upgraded from schema revision {revision} {found} to {HEAD}; {steps}" in caplog.text
        assert recorded(store) == HEAD
        assert schema_signature(store.engine) == fresh_signature(second_db_url)

        rows, expected = read_all(store.engine), as_upgraded(written)
        for table in Base.metadata.tables:
            assert rows[table] == expected.get(table, []), table  # every row, every column; new tables empty

        # and through the store's own reads, as the dashboard and the CTT commands see them
        media = store.media("old").sort_values("path")
        assert list(media["media_type"]) == [m[1] for m in sorted(OLD_MEDIA, key=lambda m: m[2])]
        items = store.ctt_items("old").set_index("uid")
        assert items.loc[[i[0] for i in OLD_ITEMS], "medium"].tolist() == ["clip", "frame", "clip"]
        assert plain(items.loc["u_frame", ["real_is_color", "trial_id", "votes"]]) == [revision < "0002", "t2", 1]
        votes = store.votes("old")
        assert list(votes["uid"]) == ["u_clip", "u_frame", "u_check"] and list(votes["rater"])[:2] == ["alice", "alice"]
        assert store.trials("old")["trial_id"].tolist() == ["t1", "t2"]
        assert len(store.pair_votes("old")) == (revision >= "0005")
        assert store.campaigns("old")["name"].tolist() == (["c1"] if revision >= "0004" else [])

        # the upgraded database takes new rows in every table a later revision changed
        store.add_media("old", "t2", media_type="gt_mp4", path="/m/t2/gt.mp4", video_id="v1", clip=3)
        [uid] = store.add_ctt_items(
            "old", [{"real_path": "/c/n_a", "fake_path": "/c/n_b", "medium": "frame", "frame": 7, "split": "test"}]
        )
        assert store.get_ctt_item(uid)["medium"] == "frame" and store.get_ctt_item(uid)["frame"] == 7
        store.create_campaign("old", "c2", task="rating", session_items=1, practice_items=0, attention_share=0.0)
        [token] = store.add_invites("old", "c2")
        state = store.session_state(store.open_session(token, display_name="dan"))  # sets shown_at
        assert state["position"] == 0 and state["shown_s"] >= 0 and state["display_name"] == "dan"
    finally:
        store.close()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="study.store.engine"):
        Store(empty_db_url, create=False).close()  # opening it again changes nothing
    assert "schema revision" not in caplog.text


def test_a_database_that_records_revision_0006_gets_media_epochs_and_keeps_its_media(empty_db_url, caplog):
    written = write_database(empty_db_url, "0006")
    engine = create_engine(store_engine._normalize_url(empty_db_url))
    with engine.begin() as c:  # as a store of the version before 0007 left it: its revision recorded
        c.execute(text(f"CREATE TABLE {migrations.VERSION_TABLE} (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        c.execute(text(f"INSERT INTO {migrations.VERSION_TABLE} VALUES ('0006')"))
    engine.dispose()
    with caplog.at_level(logging.INFO, logger="study.store.engine"):
        store = Store(empty_db_url)
    try:
        assert f"upgraded from schema revision 0006 to {HEAD}; 0007 {MESSAGES['0007']}; 0008" in caplog.text
        assert read_all(store.engine)["vc_media"] == as_upgraded(written)["vc_media"]  # every row, epoch None
        assert len(store.media("old")) == len(OLD_MEDIA) and store.media("old", epochs=True).empty
        path = "/m/t1/epochs/e0002/000_pred.png"
        store.add_media("old", "t1", "pred_png", path, video_id="v0", clip=0, frame=0, epoch=2)
        during = store.media("old", "t1", epochs=True)
        assert during[["path", "epoch"]].values.tolist() == [[path, 2]]
        assert len(store.media("old", "t1")) == 6  # the final media, as before
    finally:
        store.close()


def test_a_failed_upgrade_leaves_the_database_as_it_was(empty_db_url):
    written = write_database(empty_db_url, "0002")
    engine = create_engine(store_engine._normalize_url(empty_db_url))
    # an index with the name revision 0005 gives its own: 0005 fails after 0003 renamed the columns
    # and 0004 made the campaign tables, and every one of those must be undone
    with engine.begin() as c:
        c.execute(text("CREATE INDEX ix_vc_ctt_pair_votes_rater_id ON vc_raters (name)"))
    before = schema_signature(engine)
    with pytest.raises(VidcolorError) as err:
        Store(empty_db_url)
    message = str(err.value)
    assert message.startswith("cannot upgrade the results database ")
    assert f"from schema revision 0002 to {HEAD} (" in message and message.endswith("; it is left as it was")
    assert "ix_vc_ctt_pair_votes_rater_id" in message  # the database's own reason
    try:
        assert schema_signature(engine) == before and not inspect(engine).has_table(migrations.VERSION_TABLE)
        have = {t: {c["name"] for c in inspect(engine).get_columns(t)} for t in ("vc_media", "vc_ctt_items")}
        assert "kind" in have["vc_media"] and "kind" in have["vc_ctt_items"]
        with engine.connect() as c:
            for table, rows in written.items():
                t = schema_of("0002").tables[table]
                assert [dict(r._mapping) for r in c.execute(select(t).order_by(*t.primary_key.columns))] == rows
        with engine.begin() as c:
            c.execute(text("DROP INDEX ix_vc_ctt_pair_votes_rater_id"))
    finally:
        engine.dispose()
    store = Store(empty_db_url)  # the real upgrade then goes through
    try:
        assert recorded(store) == HEAD and read_all(store.engine)["vc_media"] == as_upgraded(written)["vc_media"]
    finally:
        store.close()


def test_a_database_holding_an_optuna_study_opens_and_optuna_still_reads_it(empty_db_url, second_db_url):
    optuna = pytest.importorskip("optuna")
    for url, revision in ((empty_db_url, "0003"), (second_db_url, None)):  # an older store, and none yet
        if revision:
            write_database(url, revision)
        storage_url = store_engine._normalize_url(url)
        study = optuna.create_study(storage=storage_url, study_name="s", directions=["minimize", "maximize"])
        study.add_trial(
            optuna.trial.create_trial(
                params={"lam": 0.5},
                values=[1.0, 2.0],
                distributions={"lam": optuna.distributions.FloatDistribution(0, 1)},
            )
        )
        engine = create_engine(storage_url)
        with engine.connect() as c:
            optuna_version = c.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        store = Store(url)
        try:
            assert recorded(store) == HEAD
            with store.engine.connect() as c:
                assert c.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == optuna_version
            store.create_study("s", objective="val_rmse_rgb")  # a vidcolor study of the same name: no clash
            assert store.studies()["name"].tolist() == (["old", "s"] if revision else ["s"])
        finally:
            store.close()
        loaded = optuna.load_study(study_name="s", storage=storage_url)
        [trial] = loaded.trials
        assert trial.values == [1.0, 2.0] and trial.params == {"lam": 0.5}
        loaded.add_trial(
            optuna.trial.create_trial(
                params={"lam": 0.1},
                values=[0.5, 3.0],
                distributions={"lam": optuna.distributions.FloatDistribution(0, 1)},
            )
        )
        assert [t.values for t in optuna.load_study(study_name="s", storage=storage_url).best_trials] == [[0.5, 3.0]]
        engine.dispose()


def test_two_stores_opening_an_old_database_at_once_upgrade_it_once(empty_db_url, caplog):
    write_database(empty_db_url, "0001")
    errors: list[Exception] = []

    def open_store() -> None:
        try:
            Store(empty_db_url).close()
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    with caplog.at_level(logging.INFO, logger="study.store.engine"):
        threads = [threading.Thread(target=open_store) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert errors == [] and caplog.text.count("upgraded from schema revision 0001") == 1


def test_a_database_from_a_newer_version_is_refused_and_left_as_it_was(empty_db_url):
    Store(empty_db_url).close()
    engine = create_engine(store_engine._normalize_url(empty_db_url))
    with engine.begin() as c:
        c.execute(text(f"UPDATE {migrations.VERSION_TABLE} SET version_num = '0099'"))
    with pytest.raises(VidcolorError) as err:
        Store(empty_db_url)
    assert (
        "is at schema revision '0099', which this version of vidcolor does not know (its newest is "
        f"'{HEAD}'): a newer version made it; upgrade vidcolor" in str(err.value)
    )
    assert str(err.value).startswith("cannot open the results database ")
    with engine.connect() as c:
        assert c.execute(text(f"SELECT version_num FROM {migrations.VERSION_TABLE}")).scalar_one() == "0099"
    engine.dispose()


def test_a_database_with_only_some_of_our_tables_is_refused(tmp_path):
    db = tmp_path / "part.db"
    con = sqlite3.connect(db)  # vc_ctt_items of the first release, alone
    con.execute(
        "CREATE TABLE vc_ctt_items (id INTEGER PRIMARY KEY, uid VARCHAR(64) UNIQUE, study_id INTEGER NOT NULL, "
        "kind VARCHAR(10) NOT NULL, created DATETIME NOT NULL)"
    )
    con.close()
    with pytest.raises(VidcolorError) as err:
        Store(f"sqlite:///{db}")
    assert str(err.value) == (
        f"cannot open the results database {db}: it holds vidcolor tables (vc_ctt_items) but not "
        "vc_studies, vc_trials, vc_epochs, vc_media, vc_raters, vc_ctt_votes, "
        "so no version of vidcolor made it"
    )
    con = sqlite3.connect(db)
    assert [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["vc_ctt_items"]
    con.close()


def test_the_revisions_build_todays_schema_from_nothing(empty_db_url, second_db_url):
    """Run from an empty database, the revisions make exactly the tables `schema.py` declares (so a
    change of one without the other fails here), and the first one exactly the first release's."""
    engine = create_engine(store_engine._normalize_url(empty_db_url))
    with engine.begin() as c:
        command.upgrade(migrations.config(c), "0001")
    first = create_engine(store_engine._normalize_url(second_db_url))
    schema_of("0001").create_all(first)
    try:
        assert schema_signature(engine) == schema_signature(first)
        with engine.begin() as c:
            command.upgrade(migrations.config(c), "head")
        with engine.connect() as c:
            assert migrations.recorded_revision(c) == HEAD
        for t in schema_of("0001").sorted_tables[::-1]:
            t.drop(first)
        Base.metadata.create_all(first)
        assert schema_signature(engine) == schema_signature(first)
    finally:
        engine.dispose()
        first.dispose()


def test_the_revisions_are_one_line_of_history_shipped_in_the_package():
    scripts = migrations.scripts()
    assert scripts.get_heads() == [HEAD] and scripts.get_bases() == ["0001"]
    line = list(scripts.walk_revisions())[::-1]  # oldest first
    assert [r.revision for r in line] == list(REVISIONS)  # one revision per schema version
    assert [r.down_revision for r in line] == [None, *REVISIONS[:-1]]  # each revising the one before
    files = sorted(p.name for p in (migrations.SCRIPTS / "versions").glob("*.py"))
    assert [f[:4] for f in files] == list(REVISIONS)
    assert migrations.SCRIPTS.parent.name == "store" and (migrations.SCRIPTS / "env.py").is_file()
    assert migrations.VERSION_TABLE != "alembic_version"  # Optuna's version table
