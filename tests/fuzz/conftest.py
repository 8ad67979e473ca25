"""The fuzzing suite's profiles, base inputs and harness (Hypothesis).

Profiles: ``ci`` (the default: few examples, derandomized, so a CI run is reproducible and the
folder stays under about 90 s on 2 busy cores) and ``nightly`` (many more examples, random
seeds): ``HYPOTHESIS_PROFILE=nightly .venv/bin/python -m pytest -q tests/fuzz``.

`fuzz_base` (session): tiny valid inputs every case starts from (read-only: a case copies what it
damages): 32 px demo videos, a gray mp4, PNG and JPEG frame folders, a shard set, a tiny
checkpoint, a small weights-only .pth, a results database with one study and a study spec.

`fz` (session): the harness. ``fz.case()`` gives a fresh folder per example; ``fz.damage(data,
raw)`` draws a damaged copy of some bytes (truncated, bit-flipped, re-headed, zeroed, garbage
appended); ``fz.check(argv, watch=[...], out=PATH, allowed=(0, 2))`` runs ``study.cli.main``
in-process and asserts the suite's invariants:

- the exit status is in ``allowed`` (0 or 2 unless the command documents another, like
  `evaluate`'s 1 for a split read in part); an exception other than SystemExit(0/2) fails the case;
- no ``Traceback`` in what it printed or logged;
- nothing under the ``watch`` folders changed (sha256, mtime, mode; no file added or removed),
  except ``out``;
- when ``out`` was written (status 0), the same command again, without ``--overwrite``, exits 2
  and leaves ``out`` byte-identical.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import stat
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

_COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    database=None,
    print_blob=True,
)
settings.register_profile("ci", max_examples=40, derandomize=True, **_COMMON)
settings.register_profile("nightly", max_examples=150, derandomize=False, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SIZE = 32  # px: every base input is tiny
CLIP_LEN = 4
FPS = 8

# the magic bytes a damaged file may be "re-headed" with: another format's header on this body
MAGICS = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
    b"\x1aE\xdf\xa3",  # Matroska
    b"PK\x03\x04",  # zip (torch.save)
    b"ustar\x0000",
    b"SQLite format 3\x00",
    b'{"',
    b"\x80\x02",  # pickle
    b"\xff\xff\xff\xff\xff\xff\xff\x7f",  # a huge little-endian length (safetensors header size)
    b"",
)


# -- the invariants --------------------------------------------------------------------------------


# SQLite's own files beside a database in WAL mode: a reader opens them, and they stay until its
# engine is collected (in-process); a `vidcolor` process removes them when it exits
SQLITE_TRANSIENT = ("-wal", "-shm")


def snapshot(*roots: Path, exclude: tuple[Path, ...] = ()) -> dict[str, tuple]:
    """Every entry under ``roots`` (not following links): files by sha256, mtime and mode, folders
    by mode, links by target; entries under ``exclude`` and SQLite's -wal/-shm files are left out."""
    skip = [Path(p).absolute() for p in exclude]
    out: dict[str, tuple] = {}
    for root in roots:
        root = Path(root).absolute()
        if not root.exists() and not root.is_symlink():
            continue
        stack = [root]
        while stack:
            p = stack.pop()
            if any(p == s or s in p.parents for s in skip):
                continue
            if p.name.endswith(SQLITE_TRANSIENT):
                continue
            st_ = p.lstat()
            if stat.S_ISLNK(st_.st_mode):
                out[str(p)] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st_.st_mode):
                out[str(p)] = ("dir", st_.st_mode)
                try:
                    stack.extend(p.iterdir())
                except PermissionError:
                    pass
            elif stat.S_ISREG(st_.st_mode):
                try:
                    digest = hashlib.sha256(p.read_bytes()).hexdigest()
                except PermissionError:
                    digest = "unreadable"
                out[str(p)] = ("file", digest, st_.st_mtime_ns, st_.st_mode)
            else:
                out[str(p)] = ("other", st_.st_mode)
    return out


def diff(before: dict, after: dict) -> list[str]:
    changes = [f"removed {k}" for k in before.keys() - after.keys()]
    changes += [f"added {k}" for k in after.keys() - before.keys()]
    changes += [f"changed {k}" for k in before.keys() & after.keys() if before[k] != after[k]]
    return sorted(changes)


class _Records(logging.Handler):
    """Log records of a run, formatted as the CLI's handler would (tracebacks included)."""

    def __init__(self, sink: io.StringIO):
        super().__init__(logging.INFO)
        self.sink = sink
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record):
        self.sink.write(self.format(record) + "\n")


#: Crashes found in files this suite may not fix (another change owns them): (file, exception
#: type) -> the issue. A case that ends in one is recorded (listed at the end of the run) instead
#: of failing; every other exception fails. Remove an entry once its file is fixed.
KNOWN_CRASHES: dict[tuple[str, str], str] = {}
KNOWN = -1  # the exit status `run_cli` gives a known crash
known_seen: list[str] = []


REPO = Path(__file__).resolve().parents[2]


def _known(exc: BaseException) -> str | None:
    """The KNOWN_CRASHES entry of ``exc``: by its type and the deepest frame in the project's code."""
    tb, where = exc.__traceback__, ""
    while tb is not None:
        name = Path(tb.tb_frame.f_code.co_filename)
        if name.is_relative_to(REPO) and ".venv" not in name.parts:
            where = name.as_posix()
        tb = tb.tb_next
    for (file, kind), issue in KNOWN_CRASHES.items():
        if where.endswith(file) and type(exc).__name__ == kind:
            return f"{file}: {kind}: {exc} ({issue})"
    return None


#: Memory a case may take on top of what the process holds: a command that allocates without bound
#: (a padded batch of --batch-size 1000000000) raises MemoryError here instead of being killed by the
#: kernel with the whole test session (Linux: the soft address-space limit, restored after).
CASE_MEMORY = 4 << 30


@contextlib.contextmanager
def _memory_cap():
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        held = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (ImportError, OSError, ValueError):
        yield
        return
    cap = held + CASE_MEMORY
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``study.cli.main(argv)`` in-process: (exit status, everything printed or logged). An
    exception other than VidcolorError (which the CLI turns into 2) escapes, failing the case,
    unless it is one of KNOWN_CRASHES (status KNOWN); SystemExit (argparse) gives its code."""
    from study.cli import main

    buf = io.StringIO()
    handler = _Records(buf)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf), _memory_cap():
            try:
                rc = main([str(a) for a in argv])
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
            except Exception as exc:
                known = _known(exc)
                if known is None:
                    raise
                known_seen.append(f"{known}; e.g. vidcolor {' '.join(map(str, argv))}")
                rc = KNOWN
    finally:
        root.removeHandler(handler)
    return rc, buf.getvalue()


def _describe(argv, rc, text) -> str:
    return f"vidcolor {' '.join(map(str, argv))} -> exit {rc}\n--- output ---\n{text[-4000:]}"


def check(
    argv: list,
    watch: list[Path] = (),
    out: Path | None = None,
    allowed: tuple[int, ...] = (0, 2),
    again: bool = True,
    beside: tuple = (),
) -> tuple[int, str]:
    """Run ``argv`` once (and again when it wrote ``out``) and assert the suite's invariants.
    ``beside``: files the command writes next to ``out`` (``ctt export``'s FILE-agreement.csv ...)."""
    watch = [Path(w) for w in watch]
    exclude = ((Path(out),) if out is not None else ()) + tuple(Path(b) for b in beside)
    before = snapshot(*watch, exclude=exclude)
    rc, text = run_cli(argv)
    if rc == KNOWN:
        return rc, text
    where = _describe(argv, rc, text)
    assert rc in allowed, f"exit status {rc} not in {allowed}: {where}"
    assert "Traceback" not in text, f"a traceback: {where}"
    if rc == 2:
        assert "error:" in text or "usage:" in text, f"exit 2 without an error line: {where}"
    changed = diff(before, snapshot(*watch, exclude=exclude))
    assert not changed, f"files outside the output changed: {changed[:10]}: {where}"
    if again and out is not None and rc == 0 and "--overwrite" not in map(str, argv):
        out = Path(out)
        assert out.exists(), f"exit 0 but no output at {out}: {where}"
        first = snapshot(out)
        rc2, text2 = run_cli(argv)
        where2 = _describe(argv, rc2, text2)
        assert rc2 == 2, f"a second run over an existing output did not refuse it: {where2}"
        assert "Traceback" not in text2, f"a traceback: {where2}"
        assert "overwrite" in text2, f"the refusal does not mention --overwrite: {where2}"
        assert diff(first, snapshot(out)) == [], f"the second run changed the output {out}: {where2}"
        assert diff(before, snapshot(*watch, exclude=exclude)) == [], f"the second run changed inputs: {where2}"
    return rc, text


# -- damage ---------------------------------------------------------------------------------------


def damage(data: st.DataObject, raw: bytes, label: str = "damage") -> bytes:
    """A damaged copy of ``raw``, drawn from ``data``: truncated, bit-flipped, re-headed (another
    format's magic on this body), a zeroed run, a header cut, or garbage appended; sometimes two."""
    n = len(raw)
    kind = data.draw(st.sampled_from(["truncate", "flip", "rehead", "zero", "cut_head", "append", "twice"]), label)
    if kind == "twice":
        return damage(data, damage(data, raw, label + ".1"), label + ".2")
    if kind == "truncate":
        at = data.draw(st.one_of(st.integers(0, min(n, 64)), st.integers(0, max(n - 1, 0))), label + ".at")
        return raw[:at]
    if kind == "flip":
        out = bytearray(raw)
        if not out:
            return b"\x00"
        flips = data.draw(
            st.lists(
                st.tuples(st.one_of(st.integers(0, min(n - 1, 255)), st.integers(0, n - 1)), st.integers(1, 255)),
                min_size=1,
                max_size=16,
            ),
            label + ".flips",
        )
        for at, mask in flips:
            out[at] ^= mask
        return bytes(out)
    if kind == "rehead":
        magic = data.draw(st.sampled_from(MAGICS), label + ".magic")
        keep = data.draw(st.booleans(), label + ".keep_length")
        return magic + raw[len(magic) :] if keep else magic + raw
    if kind == "zero":
        if not n:
            return raw
        start = data.draw(st.integers(0, n - 1), label + ".start")
        length = data.draw(st.integers(1, max(1, min(n - start, 4096))), label + ".length")
        return raw[:start] + bytes(length) + raw[start + length :]
    if kind == "cut_head":
        return raw[data.draw(st.integers(1, max(1, min(n, 512))), label + ".cut") :]
    garbage = data.draw(st.binary(min_size=1, max_size=256), label + ".garbage")
    return raw + garbage


def damage_safetensors(data: st.DataObject, raw: bytes, label: str = "safetensors") -> bytes:
    """A safetensors file whose JSON header has fields replaced, deleted or added (the tensor bytes
    and the 8-byte header length kept consistent), or whose bytes are damaged."""
    n = int.from_bytes(raw[:8], "little")
    if data.draw(st.booleans(), label + ".bytes"):
        return damage(data, raw, label)
    header = mutate_json(data, json.loads(raw[8 : 8 + n]), label + ".header")
    encoded = json.dumps(header).encode()
    return len(encoded).to_bytes(8, "little") + encoded + raw[8 + n :]


# JSON values a damaged field may hold
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64)
    | st.sampled_from([0, -1, 1, 2**31, 10**30, 0.5, -0.0])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "..", "/", "nan", "train", "test", "val", "legacy", "exp1", "tiny", "../../etc"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(doc, prefix=()):
    """Every path into a JSON document, containers too (of a list: its first three items and its
    last, so a long list, like a checkpoint's gamut centers, does not take every draw)."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i in sorted({*range(min(3, len(doc))), len(doc) - 1} - {-1}):
            yield from _paths(doc[i], (*prefix, i))


def mutate_json(data: st.DataObject, doc, label: str = "json"):
    """A copy of ``doc`` with 1-3 fields replaced by other JSON values, deleted, or given an extra key."""
    doc = json.loads(json.dumps(doc))
    for i in range(data.draw(st.integers(1, 3), label + ".count")):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            return data.draw(JSON_VALUES, label + ".root")
        path = data.draw(st.sampled_from(paths), f"{label}.{i}.path")
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        how = data.draw(st.sampled_from(["replace", "delete", "add"]), f"{label}.{i}.how")
        if how == "replace":
            parent[path[-1]] = data.draw(JSON_VALUES, f"{label}.{i}.value")
        elif how == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[data.draw(st.text(max_size=10), f"{label}.{i}.key")] = data.draw(JSON_VALUES, f"{label}.{i}.v")
        else:
            parent.append(data.draw(JSON_VALUES, f"{label}.{i}.v"))
    return doc


# -- the base inputs --------------------------------------------------------------------------------


def gray_frames(n: int, width: int, height: int) -> list[np.ndarray]:
    """``n`` gray RGB frames of a moving ramp (uint8, height x width x 3)."""
    x = np.linspace(20, 230, max(width, 1), dtype=np.float32)[None, :]
    y = np.linspace(0, 40, max(height, 1), dtype=np.float32)[:, None]
    return [np.repeat(np.clip(x + y + 7 * i, 0, 255).astype(np.uint8)[..., None], 3, -1) for i in range(n)]


def write_mjpeg(path: Path, frames: list[np.ndarray], fps: int = FPS) -> Path:
    """An intra-only MJPEG video (4:4:4, so any size, odd ones too) in Matroska or AVI."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mjpeg", rate=fps)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuvj444p"
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        c.mux(s.encode(None))
    return path


def write_frame_folder(folder: Path, frames: list[np.ndarray], ext: str = "png") -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:05d}.{ext}")
    return folder


def _make_db(path: Path) -> str:
    """A results database with one study ("fuzz") of three trials (no media, no votes)."""
    from study.store import Store

    url = f"sqlite:///{path}"
    store = Store(url)
    spec = {"name": "fuzz", "preset": "exp2", "objective": {"metric": "val_rmse_rgb", "mode": "min"}}
    store.create_study("fuzz", objective="val_rmse_rgb", mode="min", spec=spec)
    for k, status in enumerate(("TERMINATED", "STOPPED", "ERROR")):
        store.upsert_trial("fuzz", f"t_{k}", experiment="exp2", params={"lam": 0.5 + 0.1 * k})
        store.log_epoch("fuzz", f"t_{k}", 1, {"epoch": 1, "val_rmse_rgb": 10.0 - k})
        store.finish_trial("fuzz", f"t_{k}", status, error="boom" if status == "ERROR" else None)
    store.engine.dispose()
    return url


@pytest.fixture(scope="session")
def fuzz_base(tmp_path_factory):
    """The tiny valid inputs (see the module docstring); read-only for the cases."""
    import torch

    from data_shards.synthetic import make_demo_videos
    from data_shards.writer import write_shard_set
    from models.checkpoint import save_checkpoint
    from models.gamut import ABGamut
    from models.model import create_model
    from models.presets import get_preset
    from study.media.video_out import write_video

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("fuzz_base")
    videos = root / "videos"
    make_demo_videos(videos, videos=2, seconds=1.0, size=SIZE, fps=FPS, seed=0)
    gray = write_video(root / "gray.mp4", gray_frames(6, SIZE, SIZE), fps=FPS)
    png = write_frame_folder(root / "frames_png", gray_frames(5, SIZE, SIZE), "png")
    jpg = write_frame_folder(root / "frames_jpg", gray_frames(5, SIZE, SIZE), "jpg")
    shards = root / "shards"
    write_shard_set([videos], shards, size=SIZE, clip_len=CLIP_LEN, seed=0, split="50,0,50", show_progress=False)
    torch.manual_seed(0)
    gamut = ABGamut(10)
    model = create_model(get_preset("exp1").replace(size="tiny"), gamut).eval()
    ckpt = save_checkpoint(root / "ckpt", model, model.config, gamut, frame_size=SIZE)
    pth = root / "weights.pth"
    torch.save({"model1.0.weight": torch.zeros(4, 1, 3, 3), "model1.0.bias": torch.zeros(4)}, pth)
    db = root / "results.db"
    _make_db(db)
    spec = Path(__file__).resolve().parents[2] / "study" / "configs" / "demo.toml"
    (root / "spec.toml").write_bytes(spec.read_bytes())
    for p in root.rglob("*"):  # read-only: a case that writes into the base fails loudly
        if p.is_file():
            p.chmod(0o444)
    return types.SimpleNamespace(
        root=root,
        videos=videos,
        gray=gray,
        png=png,
        jpg=jpg,
        shards=shards,
        ckpt=ckpt,
        pth=pth,
        db=db,
        spec=root / "spec.toml",
    )


@pytest.fixture(scope="session")
def fz(tmp_path_factory, fuzz_base):
    """The harness: ``case()``, ``check(...)``, ``run_cli``, ``damage``, ``mutate_json``, ``snapshot``,
    ``copy(src, dst)`` (writable copy of a base input), writers of tiny videos and frame folders."""
    cases = tmp_path_factory.mktemp("fuzz_cases")

    @contextlib.contextmanager
    def case():
        folder = Path(tempfile.mkdtemp(dir=cases))
        try:
            yield folder
        finally:
            for p in [folder, *folder.rglob("*")]:  # a case may have taken permissions away
                with contextlib.suppress(OSError):
                    if p.is_dir() and not p.is_symlink():
                        p.chmod(0o755)
            shutil.rmtree(folder, ignore_errors=True)

    def copy(src: Path, dst: Path) -> Path:
        if Path(src).is_dir():
            shutil.copytree(src, dst)
            for p in Path(dst).rglob("*"):
                if p.is_file():
                    p.chmod(0o644)
        else:
            shutil.copyfile(src, dst)
        return Path(dst)

    return types.SimpleNamespace(
        base=fuzz_base,
        case=case,
        check=check,
        run_cli=run_cli,
        damage=damage,
        damage_safetensors=damage_safetensors,
        mutate_json=mutate_json,
        json_values=JSON_VALUES,
        snapshot=snapshot,
        diff=diff,
        copy=copy,
        gray_frames=gray_frames,
        write_mjpeg=write_mjpeg,
        write_frame_folder=write_frame_folder,
        root_user=os.geteuid() == 0,
        python=sys.executable,
    )


def pytest_terminal_summary(terminalreporter):
    if known_seen:
        terminalreporter.section("fuzz: known crashes (KNOWN_CRASHES in tests/fuzz/conftest.py)")
        first: dict[str, str] = {}
        for line in known_seen:
            first.setdefault(line.split("; e.g. ")[0], line)
        for line in first.values():
            terminalreporter.write_line(line[:600])
