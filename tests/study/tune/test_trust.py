"""`tune --resume` unpickles Ray's state under --storage: a folder that someone else could have
written is refused before Ray starts; a remote storage gets a warning."""

from __future__ import annotations

import logging
import os
import textwrap
import tomllib

import pytest

from models.errors import VidcolorError
from study.config.spec import parse_spec
from study.store import Store
from study.tune.trust import check_resumable

OTHER_UID = 54321
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")


def experiment(tmp_path):
    exp = tmp_path / "ray" / "s"
    (exp / "trial_0").mkdir(parents=True)
    (exp / "tuner.pkl").write_bytes(b"state")
    (exp / "trial_0" / "result.json").write_text("{}")
    for path in (exp, exp / "trial_0"):
        path.chmod(0o755)
    return exp


def test_own_folders_and_group_write_are_trusted(tmp_path):
    exp = experiment(tmp_path)
    (exp / "tuner.pkl").chmod(0o664)  # a lab's shared group may write
    check_resumable(str(exp), str(tmp_path / "ray" / "s-train"))  # the second does not exist: fine


def test_a_file_every_user_can_write_is_refused_by_name(tmp_path):
    exp = experiment(tmp_path)
    (exp / "trial_0" / "result.json").chmod(0o666)
    with pytest.raises(VidcolorError) as err:
        check_resumable(str(exp))
    assert str(err.value).startswith(
        f"--resume: {exp / 'trial_0' / 'result.json'} is writable by every user (mode -rw-rw-rw-). "
        f"Resuming unpickles Ray's saved state from {exp}, which runs code as you"
    )
    assert "chmod o-w" in str(err.value)


def test_a_folder_every_user_can_write_is_refused(tmp_path):
    exp = experiment(tmp_path)
    (exp / "trial_0").chmod(0o777)
    with pytest.raises(VidcolorError, match=r"trial_0 is writable by every user \(mode drwxrwxrwx\)"):
        check_resumable(str(exp))


@as_root
def test_a_file_of_another_user_is_refused(tmp_path):
    exp = experiment(tmp_path)
    os.chown(exp / "tuner.pkl", OTHER_UID, OTHER_UID)
    with pytest.raises(VidcolorError, match=rf"tuner.pkl is owned by uid {OTHER_UID}, not by you \(uid 0\)"):
        check_resumable(str(exp))


def test_a_link_is_refused_even_to_an_own_file(tmp_path):
    exp = experiment(tmp_path)
    planted = tmp_path / "planted.pkl"
    planted.write_bytes(b"x")
    (exp / "searcher-state.pkl").symlink_to(planted)
    with pytest.raises(VidcolorError, match=rf"searcher-state.pkl is a symbolic link \(to {planted}\)"):
        check_resumable(str(exp))


def test_a_file_url_is_checked_like_a_folder(tmp_path):
    exp = experiment(tmp_path)
    (exp / "tuner.pkl").chmod(0o666)
    with pytest.raises(VidcolorError, match=r"tuner.pkl is writable by every user"):
        check_resumable(f"file://{exp}")


def test_a_remote_storage_is_resumed_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="study.tune.trust"):
        check_resumable("s3://bucket/ray/s")
    assert "unpickles Ray's saved state from s3://bucket/ray/s: anyone who can write there can run code" in caplog.text


def test_tune_resume_refuses_before_ray_starts(tmp_path, demo_shards, monkeypatch):
    from study import ray_runtime
    from study.tune.runner import run_study

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray started before the storage was checked")

    monkeypatch.setattr(ray_runtime, "init_ray", no_ray)
    spec = parse_spec(
        tomllib.loads(
            textwrap.dedent(
                """
            name = "s"
            preset = "exp1"
            num_trials = 2
            [search.lam]
            type = "float"
            low = 0.2
            high = 0.9
            [fixed]
            size = "tiny"
            transfer = false
            """
            )
        ),
        source="s.toml",
    )
    exp = experiment(tmp_path)
    (exp / "tuner.pkl").chmod(0o666)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    Store(url).create_study(
        "s", objective=spec.objective.metric, mode="min", spec=spec.to_record(), storage_path=str(exp)
    )
    with pytest.raises(VidcolorError, match=r"tuner.pkl is writable by every user"):
        run_study(spec, shards=str(demo_shards), db=url, storage=str(tmp_path / "ray"), resume=True)
