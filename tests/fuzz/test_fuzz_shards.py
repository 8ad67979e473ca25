"""Damaged shard sets into `vidcolor evaluate`: tars (bytes, or one member's image or json inside a
sound tar), manifest.json (bytes or fields) and ab_hist.npy.

`evaluate` exits 0, 1 (a split read in part: documented, with a warning per shard) or 2 (an error
naming the file); its --json output is never replaced without --overwrite.
"""

from __future__ import annotations

import io
import json
import tarfile

from hypothesis import given
from hypothesis import strategies as st


def _damage_member(fz, data, tar_path):
    """Rewrite ``tar_path`` as a sound tar with one member's bytes damaged."""
    with tarfile.open(tar_path) as tar:
        members = [(info, tar.extractfile(info).read()) for info in tar]
    i = data.draw(st.integers(0, len(members) - 1), "member")
    info, payload = members[i]
    if info.name.endswith(".json") and data.draw(st.booleans(), "json fields"):
        try:
            payload = json.dumps(fz.mutate_json(data, json.loads(payload), "sample")).encode()
        except ValueError:
            payload = fz.damage(data, payload, "member bytes")
    else:
        payload = fz.damage(data, payload, "member bytes")
    if data.draw(st.booleans(), "rename"):
        info.name = data.draw(st.sampled_from(["x", "a.b.c", ".json", "k.000.png", "k.json", "", "k.999.jpg"]), "name")
    members[i] = (info, payload)
    with tarfile.open(tar_path, "w") as tar:
        for info, payload in members:
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


@given(data=st.data())
def test_damaged_shard_set_into_evaluate(fz, data):
    with fz.case() as case:
        shards = fz.copy(fz.base.shards, case / "shards")
        target = data.draw(st.sampled_from(["tar bytes", "tar member", "manifest bytes", "manifest fields", "ab_hist"]))
        split = data.draw(st.sampled_from(["test", "train", "legacy"]), "split")
        if target.startswith("tar"):
            tar = shards / f"{split}-000000.tar"
            if target == "tar bytes":
                tar.write_bytes(fz.damage(data, tar.read_bytes()))
            else:
                _damage_member(fz, data, tar)
        elif target == "manifest bytes":
            (shards / "manifest.json").write_bytes(fz.damage(data, (shards / "manifest.json").read_bytes()))
        elif target == "manifest fields":
            doc = json.loads((shards / "manifest.json").read_text())
            (shards / "manifest.json").write_text(json.dumps(fz.mutate_json(data, doc, "manifest")))
        else:
            (shards / "ab_hist.npy").write_bytes(fz.damage(data, (shards / "ab_hist.npy").read_bytes()))
        argv = ["evaluate", fz.base.ckpt, "--shards", shards, "--split", split, "--device", "cpu"]
        argv += ["--batch-size", "2", "--json", case / "out.json"]
        if data.draw(st.booleans(), "--verify"):
            argv.append("--verify")
        fz.check(argv, watch=[case, fz.base.root], out=case / "out.json", allowed=(0, 1, 2))
