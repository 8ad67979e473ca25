"""The shard tar reader gives what `tarfile` and WebDataset give, and fails where they fail."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import webdataset as wds

from data_shards.tarstream import TarReadError, tar_members, tar_samples


def _tar(members: list[tuple[str, bytes]], fmt: int = tarfile.PAX_FORMAT, extra=()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return buf.getvalue()


def _by_tarfile(data: bytes) -> list[tuple[str, bytes]]:
    """What WebDataset's expander reads: tarfile's stream mode, regular members only."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|*") as tar:
        for info in tar:
            if info.isreg():
                out.append((info.name, tar.extractfile(info).read()))
    return out


MEMBERS = [
    ("a_clip00000.000.jpg", b"\xff\xd8jpeg bytes" * 50),
    ("a_clip00000.json", b'{"start": 0}'),
    ("empty_clip00000.000.jpg", b""),
    ("exactly_one_block.bin", b"x" * 512),
    ("v" * 150 + "_clip00000.000.jpg", b"long name"),  # PAX path record
    ("caf\u00e9_\u8996\u983b_clip00000.json", b"non-ASCII name"),  # PAX path record
]


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT], ids=["pax", "gnu"])
def test_members_equal_tarfile(fmt):
    directory = tarfile.TarInfo("somedir")
    directory.type = tarfile.DIRTYPE
    data = _tar(MEMBERS, fmt, extra=[directory])
    got = list(tar_members(io.BytesIO(data)))
    assert got == _by_tarfile(data) == MEMBERS


def test_ustar_prefix_names():
    name = "d" * 90 + "/" + "f" * 90 + ".jpg"  # > 100 characters, split into ustar prefix + name
    data = _tar([(name, b"1")], tarfile.USTAR_FORMAT)
    assert data[345:350] == b"ddddd"  # the prefix field is used
    assert list(tar_members(io.BytesIO(data))) == [(name, b"1")]


def test_damaged_header_ends_the_archive_as_tarfile_does():
    data = bytearray(_tar(MEMBERS[:4], tarfile.USTAR_FORMAT))
    third = 512 + 2 * 512 + 512 + 512  # member 1: header + 2 data blocks; member 2: header + 1 block
    assert data[third : third + 5] == b"empty"
    data[third + 3] ^= 0x01  # the name changes, the checksum no longer matches
    assert list(tar_members(io.BytesIO(bytes(data)))) == _by_tarfile(bytes(data)) == MEMBERS[:2]


def test_cut_member_data_is_an_error():
    data = _tar(MEMBERS[:2])
    cut = data[: 512 + 300]  # inside the first member's data
    with pytest.raises(TarReadError, match="unexpected end of data"):
        list(tar_members(io.BytesIO(cut)))
    with pytest.raises(tarfile.ReadError, match="unexpected end of data"):
        _by_tarfile(cut)


@pytest.mark.parametrize(
    "data, message", [(b"", "empty file"), (b"<html>not a tar</html>" * 40, "not a tar"), (bytes(1024), "not a tar")]
)
def test_not_a_tar_is_an_error(data, message):
    with pytest.raises(TarReadError, match=message):
        list(tar_members(io.BytesIO(data)))


def test_samples_equal_webdataset_on_a_shard_set(demo_shards):
    urls = [str(p) for p in sorted(Path(demo_shards).glob("*.tar"))]
    assert len(urls) >= 3

    def raise_(exn):
        raise exn

    ours = list(tar_samples(urls, raise_))
    theirs = list(wds.tarfile_to_samples(handler=raise_)(iter([{"url": u} for u in urls])))
    assert len(ours) == len(theirs) > 0
    assert [s["__key__"] for s in ours] == [s["__key__"] for s in theirs]
    for a, b in zip(ours, theirs):
        assert a == {k: v for k, v in b.items() if k != "__local_path__"}


def test_samples_hand_errors_to_the_handler(tmp_path):
    good, bad = tmp_path / "good.tar", tmp_path / "bad.tar"
    good.write_bytes(_tar(MEMBERS[:2]))
    bad.write_bytes(_tar(MEMBERS[:2])[:700])
    seen = []
    samples = list(tar_samples([str(bad), str(good)], lambda exn: seen.append(str(exn)) or True))
    assert [s["__key__"] for s in samples] == ["a_clip00000"]  # the good shard is still read
    assert samples[0]["__url__"] == str(good)
    assert seen == [f"unexpected end of data @ {bad}"]
