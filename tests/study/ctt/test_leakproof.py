"""Nothing in a CTT item's files tells the real side, an attention check or the trial: both files
of every item have one size and the same metadata (container tags, codec, profile, pixel format,
size, frame rate, frame count, duration; PNG chunk layout), for every kind of item."""

from __future__ import annotations

import struct
from pathlib import Path

import av
import numpy as np
import pytest

from study.ctt import build
from study.ctt.clips import MP4_BUCKET, PNG_BUCKET, write_pair


def mp4_facts(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(v))
        return {
            "format": c.format.name,
            "tags": {k: len(val) for k, val in c.metadata.items()},
            "streams": len(c.streams),
            "codec": v.codec_context.name,
            "profile": v.profile,
            "pix_fmt": v.codec_context.pix_fmt,
            "size": (v.codec_context.width, v.codec_context.height),
            "rate": v.average_rate,
            "time_base": v.time_base,
            "duration": v.duration,
            "frames": frames,
            "stream_tags": {k: len(val) for k, val in v.metadata.items()},
        }


def png_chunks(path: Path) -> list[tuple[bytes, int | None]]:
    """(chunk type, length) for the fixed-size chunks; IDAT and the padding vary, so only their type."""
    data, pos, out = path.read_bytes(), 8, []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"tEXt":
            key = data[pos + 8 : pos + 8 + length].split(b"\0", 1)[0]
            out.append((kind + b":" + key, length if key != b"Padding" else None))
        else:
            out.append((kind, length if kind != b"IDAT" else None))
        pos += 12 + length
    return out


def assert_alike(real: Path, fake: Path) -> None:
    assert real.stat().st_size == fake.stat().st_size
    if real.suffix == ".mp4":
        assert real.stat().st_size % MP4_BUCKET == 0
        assert mp4_facts(real) == mp4_facts(fake)
    else:
        assert real.stat().st_size % PNG_BUCKET == 0
        assert png_chunks(real) == png_chunks(fake)


@pytest.mark.parametrize("medium", ["clip", "frame"])
def test_every_item_kind_has_sides_of_one_size_and_metadata(fx, tmp_path, medium):
    info = fx.build(tmp_path / "db", with_items=False)
    store = info["store"]
    build.build_items(store, "fixture", top=3, clips=2, attention_rate=0.4, medium=medium, out=tmp_path / "m", seed=1)
    items = store.ctt_items("fixture")
    assert items["is_attention"].sum() >= 2 and (~items["is_attention"]).sum() == 6
    for _, it in items.iterrows():
        assert_alike(Path(it["real_path"]), Path(it["fake_path"]))
    # across items: the same few sizes (buckets), not one size per clip content
    sizes = {Path(p).stat().st_size for p in list(items["real_path"]) + list(items["fake_path"])}
    assert len(sizes) <= 2


@pytest.mark.parametrize("recolor_real", [True, False], ids=["color original", "black-and-white original"])
def test_attention_checks_are_written_like_regular_items(fx, tmp_path, recolor_real):
    """A legacy check recolors the colorized side, a test-split one the real side; both alike."""
    from study.ctt.clips import wrong_recoloring

    info = fx.build(tmp_path / "db", with_items=False)
    media = info["store"].media("fixture")
    gt = Path(media[media["media_type"] == "gt_mp4"]["path"].iloc[0])
    pred = Path(media[media["media_type"] == "pred_mp4"]["path"].iloc[0])
    out = tmp_path / "out"
    out.mkdir()
    rng = np.random.default_rng(0)
    regular = write_pair(gt, pred, out, rng)
    check = write_pair(gt, pred, out, rng, recolor=wrong_recoloring, recolor_real=recolor_real)
    assert_alike(*regular)
    assert_alike(*check)
    assert mp4_facts(regular[0]) == mp4_facts(check[1])  # a check's fake looks like any fake
    assert regular[0].read_bytes() != check[0].read_bytes()  # the same real clip, other bytes
