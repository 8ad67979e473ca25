"""The command line's arguments: out-of-range, non-finite, negative, huge and malformed values for
the commands that start no Ray and no server (`demo-data`, `shard`, `colorize`, `evaluate`,
`report`, `ctt build`, `ctt export`).

Values are bounded where a valid value would only mean long work (a 4000 px demo video): the cases
are about refusals and crashes, not load. `tune`, `train`, `experiments`, `dashboard`, `ctt serve`
and `demo` are not run (they start Ray or a server).
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

FLOATS = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, 1e-9, 0.25, 0.5, 1.0, 1.5, 10.0, 11.0, 1e308])
TEXT = st.one_of(
    st.sampled_from(["", " ", ",", "a,b,c", "test", "train", "val", "legacy", "nan", "-", "0", "..", "x" * 300]),
    st.text(max_size=12).filter(lambda s: not s.startswith("-")),
)


def _num(strategy):
    return strategy.map(lambda v: repr(v) if isinstance(v, float) else str(v))


@given(
    videos=_num(st.sampled_from([-2, 0, 1, 2])),
    seconds=_num(st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 0.0, 1e-9, 0.1, 0.5, 1e12])),
    size=_num(st.sampled_from([-1, 0, 1, 15, 16, 17, 33, 10**7])),
    fps=_num(st.sampled_from([-1, 0, 1, 3, 10**9])),
    seed=_num(st.sampled_from([0, -1, 2**31, 2**32, 2**64])),
)
def test_demo_data_arguments(fz, videos, seconds, size, fps, seed):
    with fz.case() as case:
        argv = ["demo-data", "--out", case / "demo", "--videos", videos, "--seconds", seconds]
        argv += ["--size", size, "--fps", fps, "--seed", seed]
        fz.check(argv, watch=[case, fz.base.root], out=case / "demo")


SPLITS = st.one_of(
    st.sampled_from(["50,0,50", "100,0,0", "0,0,100", "0,0,0", "50,50", "a,b,c", "-1,50,51", "nan,0,100"]),
    st.sampled_from(["1e309,0,0", "33.3,33.3,33.4", " 80 , 10 , 10 ", "80,10,10,0", "", ",,"]),
    st.lists(st.integers(-5, 200), min_size=3, max_size=3).map(lambda v: ",".join(map(str, v))),
)
SPLIT_FILES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "scene_000,test\n",
            "scene_000,nosplit\n",
            "source,split\nscene_000,train\nscene_000,test\n",
            "bw_000,train\n",
            "\ufeffscene_001,test\n",
            ",,,\n",
            "missing_video,test\n",
            '"scene_000,test\n',
        ]
    ),
    st.text(max_size=40),
    st.binary(max_size=40),
)


@given(
    size=_num(st.sampled_from([-1, 0, 7, 8, 9, 16, 4097, 2**40])),
    clip_len=_num(st.sampled_from([-1, 0, 1, 2, 999, 1000, 10**6])),
    fps=st.one_of(st.none(), _num(FLOATS)),
    split=st.one_of(st.none(), SPLITS),
    split_file=SPLIT_FILES,
    seed=_num(st.sampled_from([0, -1, 2**32, 2**64])),
    shard_size=_num(FLOATS),
    jobs=_num(st.sampled_from([-1, 0, 1, 2, 64])),
    lossless=st.booleans(),
)
def test_shard_arguments(fz, size, clip_len, fps, split, split_file, seed, shard_size, jobs, lossless):
    with fz.case() as case:
        argv = ["shard", fz.base.videos, "--out", case / "shards", "--size", size, "--clip-len", clip_len]
        argv += ["--seed", seed, "--shard-size", shard_size, "--jobs", jobs]
        if fps is not None:
            argv += ["--fps", fps]
        if split is not None:
            argv += [f"--split={split}"]
        if split_file is not None:
            path = case / "splits.csv"
            path.write_bytes(split_file if isinstance(split_file, bytes) else split_file.encode())
            argv += ["--split-file", path]
        if lossless:
            argv.append("--lossless")
        fz.check(argv, watch=[case, fz.base.root], out=case / "shards")


DEVICES = st.sampled_from(["cpu", "cpu:0", "cuda", "cuda:7", "mps", "meta", "tpu", "", "cpu:x", "auto"])


@given(
    size=st.one_of(st.none(), _num(st.sampled_from([-1, 0, 4, 7, 8, 16, 33, 4097]))),
    batch=st.one_of(st.none(), _num(st.sampled_from([-1, 0, 1, 3, 10**9]))),
    crf=_num(st.sampled_from([-1, 0, 18, 51, 52])),
    temperature=st.one_of(st.none(), _num(FLOATS)),
    stabilize=st.one_of(st.none(), st.just(""), _num(FLOATS)),
    device=st.one_of(st.none(), DEVICES),
    preset=st.sampled_from([None, "ultrafast", "placebo", "bogus"]),
)
def test_colorize_arguments(fz, size, batch, crf, temperature, stabilize, device, preset):
    with fz.case() as case:
        src = fz.copy(fz.base.gray, case / "film.mp4")
        argv = ["colorize", fz.base.ckpt, src, case / "out.mp4", "--crf", crf]
        for flag, value in (("--size", size), ("--batch-size", batch), ("--temperature", temperature)):
            if value is not None:
                argv += [flag, value]
        if device is not None:
            argv += [f"--device={device}"]
        if preset is not None:
            argv += ["--encoder-preset", preset]
        if stabilize == "":
            argv.append("--stabilize")
        elif stabilize is not None:
            argv += ["--stabilize", stabilize]
        fz.check(argv, watch=[case, fz.base.root], out=case / "out.mp4")


@given(
    split=st.one_of(st.sampled_from(["test", "train", "legacy", "val"]), TEXT),
    batch=_num(st.sampled_from([-1, 0, 1, 2, 10**9])),
    temperature=st.one_of(st.none(), _num(FLOATS)),
    stabilize=st.one_of(st.none(), st.just(""), _num(FLOATS)),
    device=st.one_of(st.none(), DEVICES),
    verify=st.booleans(),
)
def test_evaluate_arguments(fz, split, batch, temperature, stabilize, device, verify):
    with fz.case() as case:
        argv = ["evaluate", fz.base.ckpt, "--shards", fz.base.shards, f"--split={split}", "--batch-size", batch]
        argv += ["--json", case / "m.json"]
        if temperature is not None:
            argv += ["--temperature", temperature]
        if device is not None:
            argv += [f"--device={device}"]
        if stabilize == "":
            argv.append("--stabilize")
        elif stabilize is not None:
            argv += ["--stabilize", stabilize]
        if verify:
            argv.append("--verify")
        fz.check(argv, watch=[case, fz.base.root], out=case / "m.json", allowed=(0, 1, 2))


@given(
    command=st.sampled_from(["report", "export", "build", "campaign list"]),
    study=st.one_of(st.none(), st.sampled_from(["fuzz", "nope", "%", "' OR 1=1 --"]), TEXT),
    trials=st.one_of(st.none(), st.sampled_from(["t_0", "t_0,t_0", "t_9", ",", "t_0,,t_1"]), TEXT),
    top=st.one_of(st.none(), _num(st.sampled_from([-1, 0, 1, 10**9]))),
    clips=_num(st.sampled_from([-1, 0, 1, 3])),
    rate=_num(FLOATS),
    split=st.sampled_from(["test", "legacy", "val", "nope"]),
    medium=st.sampled_from(["clip", "frame"]),
    exclude=st.booleans(),
)
def test_results_database_arguments(fz, command, study, trials, top, clips, rate, split, medium, exclude):
    """`report`, `ctt export`, `ctt build` and `ctt campaign list` on a copy of a small results database."""
    with fz.case() as case:
        db = fz.copy(fz.base.db, case / "results.db")
        url = f"sqlite:///{db}"
        out = None
        if command == "report":
            argv = ["report", study or "fuzz", "--db", url]
        elif command == "campaign list":
            argv = ["ctt", "campaign", "list", "--db", url] + ([f"--study={study}"] if study is not None else [])
        elif command == "export":
            out = case / "votes.csv"
            argv = ["ctt", "export", "--db", url, "--out", out] + ([f"--study={study}"] if study is not None else [])
            if exclude:
                argv.append("--exclude-failed")
        else:
            argv = ["ctt", "build", "--db", url, "--clips", clips, "--attention-rate", rate, "--out", case / "media"]
            argv += [f"--split={split}", "--medium", medium, "--shards", fz.base.shards]
            if study is not None:
                argv += [f"--study={study}"]
            if trials is not None:
                argv += [f"--trials={trials}"]
            if top is not None:
                argv += ["--top", top]
        # the database may gain rows (ctt build) but no other file outside the case may change
        fz.check(argv, watch=[fz.base.root], out=out)
