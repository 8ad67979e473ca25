"""A study whose shard set and Ray storage are both on an S3-compatible server (moto, localhost):
trials read their shards over S3, Ray Train writes checkpoints there, Tune its experiment state;
the results are read back from the bucket (a checkpoint evaluated straight from its s3:// URI)."""

from __future__ import annotations

import json
import textwrap

import pytest

from models.errors import VidcolorError
from study.config.spec import load_spec
from study.evaluation.evaluate import evaluate_checkpoint
from study.store import Store
from study.tune.runner import run_study

SPEC = """
name = "s3study"
preset = "exp1"
num_trials = 2
max_concurrent = 1
media_clips = 1
[search.lr]
type = "float"
low = 1e-3
high = 3e-3
[objective]
metric = "val_rmse_rgb"
mode = "min"
[asha]
enabled = false
[fixed]
size = "tiny"
transfer = false
epochs = 2
steps_per_epoch = 2
batch_size = 2
val_batches = 1
val_batch_size = 2
"""


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(480)
def test_study_on_s3_shards_and_s3_storage(ray_cluster, s3_server, demo_shards, tmp_path):
    from pyarrow import fs

    shards = "s3://vidcolor-data/sets/study"
    s3_server.upload(demo_shards, shards)
    s3_server.make_bucket("vidcolor-ray")
    path = tmp_path / "study.toml"
    path.write_text(textwrap.dedent(SPEC))
    db = f"sqlite:///{tmp_path}/results.db"
    result = run_study(
        load_spec(path),
        shards=shards,
        db=db,
        storage="s3://vidcolor-ray/studies",
        address=ray_cluster.address,
        progress_every_s=30,
    )

    store = Store(db)
    trials = store.trials("s3study")
    assert store.get_study("s3study")["status"] == "FINISHED"
    assert list(trials.status) == ["TERMINATED", "TERMINATED"] and (trials.epochs == 2).all()
    s3, _ = fs.FileSystem.from_uri("s3://vidcolor-ray")
    for ckpt in trials.checkpoint:  # Ray Train wrote every trial's checkpoint into the bucket
        assert ckpt.startswith("s3://vidcolor-ray/studies/s3study-train/"), ckpt
        info = s3.get_file_info(ckpt[len("s3://") :] + "/model.safetensors")
        assert info.type == fs.FileType.File and info.size > 0
    state = s3.get_file_info(fs.FileSelector("vidcolor-ray/studies/s3study"))
    assert any(f.base_name.startswith("experiment_state") for f in state), [f.path for f in state]
    media = store.media("s3study")  # rendered by the driver from checkpoints it fetched from S3
    assert {"pred_mp4", "gt_mp4"} <= set(media.media_type)

    best = result.best
    doc = evaluate_checkpoint(best["checkpoint"], shards, "val", device="cpu")
    assert doc["checkpoint"] == best["checkpoint"] and doc["num_frames"] > 0 and doc["incomplete"] == []
    assert doc["mean"]["rmse_rgb"] > 0 and json.dumps(doc)  # a real, serializable evaluation

    with pytest.raises(VidcolorError, match="already has results at s3://vidcolor-ray/studies/s3study"):
        run_study(
            load_spec(path), shards=shards, db=db, storage="s3://vidcolor-ray/studies", address=ray_cluster.address
        )
    with pytest.raises(VidcolorError, match="s3://vidcolor-ray/studies/nothing: no such checkpoint folder"):
        evaluate_checkpoint("s3://vidcolor-ray/studies/nothing", shards, "val", device="cpu")
    assert len(store.epochs("s3study")) == 4  # 2 trials x 2 epochs
