"""`vidcolor ctt export` (study.ctt.export): results per trial and experiment, CSV and table."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.exc import SAWarning

from study.cli import main as cli
from study.ctt import export

ROOT = Path(__file__).resolve().parents[3]


def test_results_table_by_hand():
    row = {
        "fooled": 2,
        "fooling_rate": 2 / 3,
        "fool_lo": 0.2077,
        "fool_hi": 0.9384,
        "raters": 3,
        "attention_failures": 1,
        "rating_lo": math.nan,
        "rating_hi": math.nan,
        "excluded_raters": 0,
    }
    res = pd.DataFrame(
        [
            {"level": "trial", "name": "t_002", "votes": 3, "ratings": 0, "mean_rating": math.nan, **row},
            {"level": "experiment", "name": "exp2", "votes": 3, "ratings": 4, "mean_rating": 4.25, **row},
        ]
    )
    assert export.results_table(res).splitlines() == [
        "level       name   votes  fooling_rate  fool_lo  fool_hi  ratings  mean_rating  raters  attention_failures",
        "----------  -----  -----  ------------  -------  -------  -------  -----------  ------  ------------------",
        "trial       t_002      3         0.667    0.208    0.938        0            -       3                   1",
        "experiment  exp2       3         0.667    0.208    0.938        4        4.250       3                   1",
    ]


def test_cli_build_and_export(fixture_study, fx, tmp_path, capsys):
    info = fx.build(tmp_path / "db", with_items=False)
    url = info["url"]
    assert (
        cli(
            [
                "ctt",
                "build",
                "--db",
                url,
                "--top",
                "1",
                "--clips",
                "1",
                "--attention-rate",
                "0.5",
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "study fixture: 2 CTT clip items (which-is-real pairs and ratings)",
        "trials: t_002 (--top 1: the best 1 by val_rmse_rgb (min))",
        "trial_id           split  items",
        "-----------------  -----  -----",
        "(attention check)  val        1",
        "t_002              val        1",
        f"shard set: {tmp_path / 'db' / 'shards'} (the study's; --shards to choose another)",
        "split val: trials without a checkpoint and shard set to render the test split from use their stored "
        "sample media, rendered on the validation split",
    ]
    store = info["store"]
    items = store.ctt_items("fixture").set_index("is_attention")
    r1, r2, r3 = (store.add_rater(n) for n in ("r1", "r2", "r3"))
    uid, att = items.loc[False, "uid"], items.loc[True, "uid"]
    store.record_vote(r1, uid, choice="left", picked_real=False)  # fooled
    store.record_vote(r2, uid, choice="left", picked_real=True)
    store.record_vote(r3, uid, choice="right", picked_real=False)  # fooled, but fails the check
    store.record_vote(r3, att, choice="right", picked_real=False)
    assert cli(["ctt", "export", "--db", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "study fixture: Color Turing Test"
    # 2 of 3 fooled: Wilson 95% [0.208, 0.939]; one attention check failed by the three raters
    assert out[3].split() == ["trial", "t_002", "3", "0.667", "0.208", "0.939", "0", "-", "3", "1"]
    assert out[4].split() == ["experiment", "exp2", "3", "0.667", "0.208", "0.939", "0", "-", "3", "1"]
    # one item, three values (F, T, F): o_FF = 1, o_FT = o_TF = 1, n = 3: alpha = 1 - 2 * 2 / (2 * 2) = 0;
    # (one item: no bootstrap interval); left 2 of 3 on the item (the check's 'right' not counted):
    # two-sided exact p = 1; only r2 has two others with a majority (F, F), and disagrees with it
    assert out[5:] == [
        "",
        "agreement, 2afc: Krippendorff's alpha (nominal) 0.000 over 1 items with 2+ votes (3 votes)",
        "position bias, 2afc: 67% of 3 answers on the left (95% 21% to 94%), exact binomial p = 1 against 50%",
        "raters, 2afc: 3; attention checks passed 0 of 1; consensus agreement mean 0%, lowest 0%",
    ]
    assert cli(["ctt", "export", "--db", url, "--exclude-failed"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "study fixture: Color Turing Test (raters who failed attention checks excluded)"
    assert out[3].split()[:4] == ["trial", "t_002", "2", "0.500"]
    # without r3: (F, T): o_FT = o_TF = 1, n = 2: alpha = 1 - (n - 1) * 2 / (2 * 1 * 1) = 0; both on the left
    assert out[6] == "agreement, 2afc: Krippendorff's alpha (nominal) 0.000 over 1 items with 2+ votes (2 votes)"
    assert out[7].startswith("position bias, 2afc: 100% of 2 answers on the left") and out[8] == "raters, 2afc: 2"
    csv = tmp_path / "res.csv"
    assert cli(["ctt", "export", "--db", url, "--exclude-failed", "--out", str(csv)]) == 0
    side = {k: tmp_path / f"res-{k}.csv" for k in ("agreement", "raters", "ranking")}
    assert capsys.readouterr().out.splitlines() == [
        f"wrote 2 rows to {csv}",
        f"wrote agreement and position bias (tasks: 1) to {side['agreement']}, raters (rows: 2) to {side['raters']}, "
        f"the pairwise ranking (trials: 0) to {side['ranking']}",
    ]
    agreement = pd.read_csv(side["agreement"])
    assert agreement[["alpha_low", "alpha_high"]].isna().all(axis=None)  # one item: no bootstrap interval
    assert agreement.drop(columns=["alpha_low", "alpha_high"]).to_dict("records") == [
        {
            "task": "2afc",
            "votes": 2,
            "metric": "nominal",
            "alpha": 0.0,
            "items": 1,
            "values": 2,
            "answers": 2,
            "left": 2,
            "left_share": 1.0,
            "left_low": pytest.approx(0.3424, abs=1e-4),  # Wilson 2 of 2
            "left_high": 1.0,
            "left_p": 0.5,
        }
    ]
    raters = pd.read_csv(side["raters"]).set_index("rater")
    assert list(raters.columns) == [
        "rater_id",
        "task",
        "votes",
        "attention_checks",
        "attention_passed",
        "attention_pass_rate",
        "consensus_items",
        "consensus_agreement",
        "reliability",
    ]
    assert sorted(raters.index) == ["r1", "r2"] and raters["votes"].tolist() == [1, 1]
    assert pd.read_csv(side["ranking"]).empty
    res = pd.read_csv(csv).set_index(["level", "name"])
    assert list(res.columns) == [
        "votes",
        "fooled",
        "fooling_rate",
        "fool_lo",
        "fool_hi",
        "ratings",
        "mean_rating",
        "rating_lo",
        "rating_hi",
        "raters",
        "attention_failures",
        "excluded_raters",
    ]
    assert res.loc[("trial", "t_002"), "votes"] == 2 and res.loc[("trial", "t_002"), "fooled"] == 1
    assert res.loc[("experiment", "exp2"), "excluded_raters"] == 1
    assert cli(["ctt", "build", "--db", url, "--split", "train"]) == 2
    assert "--split must be test or legacy" in capsys.readouterr().err
    assert cli(["ctt", "export", "--db", url, "--study", "nope"]) == 2
    assert "no study named 'nope'" in capsys.readouterr().err


def test_no_votes_yet(tmp_path, capsys):
    from study.store import Store

    url = f"sqlite:///{tmp_path / 'r.db'}"
    Store(url).create_study("s", objective="val_rmse_rgb")
    assert cli(["ctt", "export", "--db", url]) == 0  # the latest study
    assert capsys.readouterr().out == "study s: no CTT votes yet\n"


@pytest.mark.filterwarnings("ignore:Query string argument")  # pysqlite ignores ?password=
def test_export_never_shows_a_query_string_password(tmp_path, capsys):
    from study.store import Store

    url = f"sqlite:///{tmp_path / 'r.db'}"
    Store(url).create_study("s", objective="val_rmse_rgb")
    secret = f"{url}?sslmode=disable&PassWord=s3cret"
    assert cli(["ctt", "export", "--db", secret, "--study", "nope"]) == 2
    err = capsys.readouterr().err
    assert "s3cret" not in err and f"no study named 'nope' in {url}?PassWord=***&sslmode=disable" in err  # sorted
    csv = tmp_path / "res.csv"
    assert cli(["ctt", "export", "--db", secret, "--out", str(csv)]) == 0
    out = capsys.readouterr()
    assert "s3cret" not in out.out + out.err + csv.read_text()


def test_results_modules_import_neither_torch_nor_ray():
    code = (
        "import sys, study.ctt.stats, study.ctt.export; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'ray', 'av', 'streamlit'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_export_out_on_a_bad_path_fails_before_the_store_is_opened(tmp_path, capsys):
    from study.store import Store

    blocker = tmp_path / "notes.txt"
    blocker.write_bytes(b"my notes")
    before = (blocker.read_bytes(), blocker.stat().st_mtime_ns)
    db = tmp_path / "new.db"
    assert cli(["ctt", "export", "--db", f"sqlite:///{db}", "--out", str(blocker / "res.csv")]) == 2
    err = capsys.readouterr().err
    assert f"error: --out {blocker / 'res.csv'}: {blocker} is a file, not a folder" in err and "Traceback" not in err
    assert cli(["ctt", "export", "--db", f"sqlite:///{db}", "--out", str(tmp_path)]) == 2
    assert f"error: --out {tmp_path}: is a folder, expected a CSV file name" in capsys.readouterr().err
    assert (blocker.read_bytes(), blocker.stat().st_mtime_ns) == before
    assert not db.exists()  # refused before any store was opened (or created)
    # a good path: the CSV is written whole, and no temporary file stays
    url = f"sqlite:///{tmp_path / 'r.db'}"
    Store(url).create_study("s", objective="val_rmse_rgb")
    csv = tmp_path / "out" / "res.csv"
    assert cli(["ctt", "export", "--db", url, "--out", str(csv)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"wrote 0 rows to {csv}"
    written = ["res-agreement.csv", "res-ranking.csv", "res-raters.csv", "res.csv"]
    assert pd.read_csv(csv).empty and sorted(p.name for p in csv.parent.iterdir()) == written
    # an existing file is refused by flag and path, untouched; --overwrite replaces it whole
    csv.write_bytes(b"level,name\nmy,edits\n")
    before = (csv.read_bytes(), csv.stat().st_mtime_ns)
    assert cli(["ctt", "export", "--db", url, "--out", str(csv)]) == 2
    assert f"error: --out {csv}: exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert (csv.read_bytes(), csv.stat().st_mtime_ns) == before
    # so is a side file alone, before anything is written
    for name in ("res.csv", "res-agreement.csv", "res-ranking.csv"):
        (csv.parent / name).unlink()
    side = csv.parent / "res-raters.csv"
    before = (side.read_bytes(), side.stat().st_mtime_ns)
    assert cli(["ctt", "export", "--db", url, "--out", str(csv)]) == 2
    assert f"error: --out {side}: exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert (side.read_bytes(), side.stat().st_mtime_ns) == before and not csv.exists()
    assert cli(["ctt", "export", "--db", url, "--out", str(csv), "--overwrite"]) == 0
    assert pd.read_csv(csv).empty and sorted(p.name for p in csv.parent.iterdir()) == written


def test_campaign_cli_create_invite_list(fx, tmp_path, capsys):
    info = fx.build(tmp_path / "db")
    url = info["url"]
    assert (
        cli(
            [
                "ctt",
                "campaign",
                "create",
                "--db",
                url,
                "--name",
                "pilot",
                "--pairs",
                "4",
                "--practice",
                "2",
                "--attention-share",
                "0.25",
                "--links",
                "2",
                "--base-url",
                "https://ctt.example.org/",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "campaign 'pilot' of study fixture: task 2afc, 2 practice + 4 counted items per session, each shown "
        "1 s, 25% attention checks" in out
    )
    links = [line.strip() for line in out.splitlines() if line.strip().startswith("https://")]
    assert len(links) == 2 and all(link.startswith("https://ctt.example.org/i/") for link in links)
    token = links[0].split("/i/", 1)[1]
    info["store"].open_session(token)  # the printed link lets a rater in
    assert cli(["ctt", "campaign", "invite", "--db", url, "--name", "pilot", "--uses", "0"]) == 0
    assert "1 invite link(s), each good for any number of sessions" in capsys.readouterr().out
    assert cli(["ctt", "campaign", "list", "--db", url]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["campaign", "task", "display"] and table[2].split()[:2] == ["pilot", "2afc"]
    assert table[2].split()[-4:] == ["3", "1", "0", "0"]  # links, sessions, finished, votes
    # refused before anything is written: bad link counts, too few items
    assert cli(["ctt", "campaign", "create", "--db", url, "--name", "x", "--links", "0"]) == 2
    assert "--links must be >= 1, got 0" in capsys.readouterr().err
    assert cli(["ctt", "campaign", "create", "--db", url, "--name", "big", "--pairs", "40"]) == 2
    assert (
        "error: campaign 'big': a session needs 46 regular items (10 practice + 36 counted) and 4 attention checks; "
        "study 'fixture' has 6 regular items and 2 attention checks for task 2afc"
    ) in capsys.readouterr().err
    assert list(info["store"].campaigns("fixture")["name"]) == ["pilot"]
    # a password in the URL's query string is not printed (SQLite ignores it: it stands for a server's)
    create = ["ctt", "campaign", "create", "--name", "pw", "--pairs", "4", "--practice", "2"]
    with pytest.warns(SAWarning, match="Query string argument"):
        assert cli([*create, "--db", f"{url}?password=s3cret"]) == 0
    out = capsys.readouterr()
    assert "s3cret" not in out.out + out.err and f"vidcolor ctt serve --db {url}?password=***\n" in out.out


def test_readme_campaign_command_runs_on_a_study_with_few_items(fx, tmp_path, capsys):
    """The README's `ctt build` and `ctt campaign create`, as written, on a study as small as `make
    demo`'s (which has 12 regular items): the default protocol (10 practice + 40 counted) needed 46
    and the command failed; without --pairs / --practice it now fits the study and says so, and a
    protocol asked for explicitly is still refused, naming what it needs and what there is."""
    import shlex

    info = fx.build(tmp_path / "db", with_items=False)
    url, store = info["url"], info["store"]
    lines = [
        line.split("#")[0].split()
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith(("vidcolor ctt build", "vidcolor ctt campaign create"))
    ]
    assert [w[:4] for w in lines] == [["vidcolor", "ctt", "build", "--db"], ["vidcolor", "ctt", "campaign", "create"]]
    for words in lines:
        argv = [url if w == "sqlite:///study.db" else w for w in shlex.split(" ".join(words))][1:]
        if argv[1] == "build":
            argv += ["--out", str(tmp_path / "media"), "--medium", "frame"]  # PNG stills: quicker
        assert cli(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    items = store.ctt_items("fixture")  # the best of each of 3 experiments, 2 clips each, 1 check
    assert len(items) == 7 and int(items["is_attention"].sum()) == 1
    assert (
        "study fixture has 6 regular items and 1 attention check for task 2afc, too few for sessions of 10 "
        "practice + 40 counted items: sessions of 1 practice + 6 counted items instead (build more items with "
        "`vidcolor ctt build`, or set --pairs / --practice)"
    ) in out
    assert "campaign 'pilot' of study fixture: task 2afc, 1 practice + 6 counted items per session" in out
    assert out.count("http://HOST:8502/i/") == 20
    camp = store.campaigns("fixture").iloc[0]
    assert (camp["practice_items"], camp["session_items"], camp["display_s"]) == (1, 6, 1.0)
    (token,) = store.add_invites("fixture", "pilot", 1)
    sid = store.open_session(token)  # a session of it can be filled
    assert store.session_state(sid)["counted"] == 6  # 5 regular items and the check
    # explicit numbers are the researcher's: not fitted, refused with what is needed and what there is
    create = ["ctt", "campaign", "create", "--db", url, "--name", "big"]
    assert cli([*create, "--practice", "10"]) == 2
    assert (
        "error: campaign 'big': a session needs 46 regular items (10 practice + 36 counted) and 4 attention checks; "
        "study 'fixture' has 6 regular items and 1 attention check for task 2afc"
    ) in capsys.readouterr().err


@pytest.mark.parametrize(
    "bad", ["javascript:alert(1)", "http://host name:8502", "http:///path", "ftp://h", " http://h"]
)
def test_campaign_base_url_must_be_http_with_a_host(fx, tmp_path, capsys, bad):
    """`--base-url` of create and invite: only an http(s) URL with a host and no whitespace; the
    refusal names the value, and create writes nothing."""
    info = fx.build(tmp_path / "db")
    url, small = info["url"], ["--pairs", "4", "--practice", "2"]
    assert cli(["ctt", "campaign", "create", "--db", url, "--name", "c", *small, "--base-url", bad]) == 2
    err = capsys.readouterr().err
    assert f"error: --base-url must be an http:// or https:// URL with a host and no spaces, got {bad!r}" in err
    assert "Traceback" not in err and info["store"].campaigns("fixture").empty
    good = "https://ctt.example.org/x"
    assert cli(["ctt", "campaign", "create", "--db", url, "--name", "c", *small, "--base-url", good]) == 0
    assert "https://ctt.example.org/x/i/" in capsys.readouterr().out
    assert cli(["ctt", "campaign", "invite", "--db", url, "--name", "c", "--base-url", bad]) == 2
    assert f"got {bad!r}" in capsys.readouterr().err
