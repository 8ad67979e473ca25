"""Which video goes to which split: ``--split`` percentages, a ``--split-file``, and the seeded draw.

Splits are drawn by whole video (never by clip), so no scene is seen in training and evaluation
alike; black-and-white sources are not drawn at all (the writer puts them in ``legacy``).

Percentages may be 0: ``--split 0,0,100`` makes an evaluation-only set (every color video in
test), ``--split 90,10,0`` one without a test split; a 0% split never gets a video.

A split file (``--split-file FILE``) assigns sources explicitly, for benchmark splits. Each line
is ``source,split`` (CSV, so a source with a comma in it is quoted; a first line ``source,split``
is a header); lines whose first non-blank character is ``#`` and blank lines are ignored; split
is ``train``, ``val`` or ``test``. ``source`` names one found source by

- its video id, the one the manifest uses (``scene_000``);
- its path as `vidcolor shard` found it (``videos/scene_000.mp4`` for ``vidcolor shard videos/``),
  or relative to one of the folders given on the command line (``scene_000.mp4``);
- or any path, absolute or relative to the working directory, that resolves to the same file or
  frame folder.

An entry naming several sources, or none, is an error; so is a source given two different splits.
Every color source must be listed, unless ``--split`` is given too: then the unlisted color
sources are drawn among themselves by those percentages (seeded by ``--seed``; the listed ones
do not count towards them). A black-and-white source listed in the file stays in ``legacy``
(with a warning). Every error names the file, the line and the value.

Copies of one video (the writer finds them by a perceptual hash of their frames,
`data_shards.fingerprint`) get one split between them, so no copy leaks from train into test: a
split file's entry for any of them, else the draw of the first found; only that one is drawn (the
percentages count distinct videos). A split file putting two copies in different splits is an
error naming both sources, their lines and splits.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_shards.manifest import SPLITS
from models.errors import VidcolorError

log = logging.getLogger(__name__)

DEFAULT_SPLIT = "80,10,10"
SHOWN = 5  # sources named in an error before "and N more"


def parse_split(text: str) -> dict[str, float]:
    """``"80,10,10"`` -> {"train": 80, "val": 10, "test": 10}; errors name the value."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 3:
        raise VidcolorError(f"--split {text!r}: expected three percentages train,val,test such as 80,10,10")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise VidcolorError(
            f"--split {text!r}: {next(p for p in parts if not _is_number(p))!r} is not a number"
        ) from None
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise VidcolorError(f"--split {text!r}: percentages must be finite and non-negative")
    if abs(sum(values) - 100.0) > 1e-6:
        raise VidcolorError(f"--split {text!r}: percentages add up to {sum(values):g}, not 100")
    return dict(zip(SPLITS, values))


def _is_number(p: str) -> bool:
    try:
        float(p)
        return True
    except ValueError:
        return False


def split_counts(n: int, percents: dict[str, float]) -> dict[str, int]:
    """Videos per split: largest-remainder rounding among the splits above 0%, then one video for
    every such split while there are enough (train first), so 6 videos at 80/10/10 give 4/1/1.
    A 0% split always gets 0."""
    names = list(percents)
    raw = [n * percents[s] / 100.0 for s in names]
    counts = [math.floor(r) for r in raw]
    open_ = [i for i, s in enumerate(names) if percents[s] > 0]
    by_remainder = sorted(open_, key=lambda i: (-(raw[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    for i in open_:
        if counts[i] == 0:
            donor = max(range(len(names)), key=lambda j: counts[j])
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[i] += 1
    return dict(zip(names, counts))


def assign_splits(video_ids: list[str], percents: dict[str, float], seed: int) -> dict[str, str]:
    """Seeded split by video: shuffle the sorted ids, then cut by `split_counts`."""
    ids = sorted(video_ids)
    random.Random(seed).shuffle(ids)
    out: dict[str, str] = {}
    start = 0
    for split, count in split_counts(len(ids), percents).items():
        for vid in ids[start : start + count]:
            out[vid] = split
        start += count
    return out


# ----------------------------------------------------------------------------- split files


@dataclass(frozen=True)
class SplitEntry:
    """One ``source,split`` line of a split file."""

    line: int
    source: str
    split: str


@dataclass(frozen=True)
class SplitFile:
    """A parsed ``--split-file``: where it is, its sha256 (the manifest records both) and its entries."""

    path: Path
    sha256: str
    entries: tuple[SplitEntry, ...]

    def where(self, line: int | None = None) -> str:
        return f"--split-file {self.path}" + (f" line {line}" if line is not None else "")


def read_split_file(path: str | Path) -> SplitFile:
    """Parse a split file (see the module docstring); errors name the file, the line and the value."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise VidcolorError(f"--split-file {path}: no such file") from None
    except OSError as exc:
        raise VidcolorError(f"--split-file {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise VidcolorError(f"--split-file {path}: not UTF-8 text (byte {exc.start})") from None
    out = SplitFile(path, hashlib.sha256(data).hexdigest(), ())
    entries: list[SplitEntry] = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = _fields(line, out.where(number))
        if fields is None:
            continue
        source, split = fields
        if not entries and source.lower() == "source" and split.lower() == "split":
            continue  # the header
        if split.lower() not in SPLITS:
            hint = "; black-and-white sources go to legacy by themselves" if split.lower() == "legacy" else ""
            raise VidcolorError(
                f"{out.where(number)}: unknown split {split!r} for {source!r} (use train, val or test{hint})"
            )
        entries.append(SplitEntry(number, source, split.lower()))
    if not entries:
        raise VidcolorError(f"{out.where()}: no 'source,split' entries in it")
    return SplitFile(out.path, out.sha256, tuple(entries))


def _fields(line: str, where: str) -> tuple[str, str] | None:
    """(source, split) of one line, None for a blank or comment line; a malformed line is an error."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    try:
        fields = [f.strip() for f in next(csv.reader([stripped], skipinitialspace=True))]
    except csv.Error as exc:
        raise VidcolorError(f"{where}: {stripped!r} is not a CSV line ({exc})") from None
    if len(fields) != 2:
        raise VidcolorError(
            f"{where}: {stripped!r} has {len(fields)} field(s), expected 'source,split' "
            "(quote a source that has a comma in it)"
        )
    if not fields[0]:
        raise VidcolorError(f"{where}: {stripped!r} has an empty source")
    return fields[0], fields[1]


def _source_keys(
    paths: list[Path], ids: list[str], roots: list[Path]
) -> tuple[dict[str, set[int]], dict[str, set[int]]]:
    """({id, path as found, path relative to a folder given: source indices}, {resolved path: indices})."""
    names: dict[str, set[int]] = {}
    resolved: dict[str, set[int]] = {}
    for i, (p, vid) in enumerate(zip(paths, ids)):
        keys = {vid, p.as_posix()}
        keys.update(p.relative_to(r).as_posix() for r in roots if p != r and p.is_relative_to(r))
        for key in keys:
            names.setdefault(key, set()).add(i)
        resolved.setdefault(str(p.resolve()), set()).add(i)
    return names, resolved


def _lookup(keys: tuple[dict[str, set[int]], dict[str, set[int]]], text: str) -> set[int]:
    """Indices of the sources an entry's ``source`` names (by any of the rules)."""
    names, resolved = keys
    hits = names.get(text, set()) | names.get(Path(text).as_posix(), set())
    try:
        hits = hits | resolved.get(str(Path(text).expanduser().resolve()), set())
    except (OSError, ValueError, RuntimeError):  # not a usable path: only ids and names match
        pass
    return hits


def match_split_file(
    split_file: SplitFile, paths: list[Path], ids: list[str], roots: list[str | Path]
) -> dict[str, SplitEntry]:
    """Video id -> the entry that assigns it, for the sources found (``paths``, with their ``ids``)
    under the command line's ``roots``. Raises for an entry naming no source or several, and for a
    source given two different splits."""
    keys = _source_keys(paths, ids, [Path(r) for r in roots if Path(r).is_dir()])
    chosen: dict[int, SplitEntry] = {}
    for entry in split_file.entries:
        hits = _lookup(keys, entry.source)
        if not hits:
            known = ", ".join(ids[:SHOWN]) + (f" ... ({len(ids)} in all)" if len(ids) > SHOWN else "")
            raise VidcolorError(
                f"{split_file.where(entry.line)}: {entry.source!r} matches no source (a source is "
                f"named by its video id, its path, or its path inside a folder given; "
                f"video ids: {known or 'none'})"
            )
        if len(hits) > 1:
            named = ", ".join(str(paths[i]) for i in sorted(hits))
            raise VidcolorError(
                f"{split_file.where(entry.line)}: {entry.source!r} matches {len(hits)} sources "
                f"({named}); name one by its video id or its full path"
            )
        i = hits.pop()
        first = chosen.setdefault(i, entry)
        if first.split != entry.split:
            raise VidcolorError(
                f"{split_file.where(entry.line)}: {entry.source!r} puts {paths[i]} in "
                f"{entry.split!r}, but line {first.line} ({first.source!r}) puts it in {first.split!r}"
            )
    return {ids[i]: e for i, e in chosen.items()}


@dataclass(frozen=True)
class SplitPlan:
    """How the color videos get their split: a split file's entries (by video id) first, then the
    percentages for the rest. ``percents`` None: every color video must be listed."""

    percents: dict[str, float] | None
    seed: int = 0
    split_file: SplitFile | None = None
    listed: dict[str, SplitEntry] = field(default_factory=dict)

    def assign(
        self, color: dict[str, str], gray: dict[str, str], copies: Sequence[Sequence[str]] = ()
    ) -> dict[str, str]:
        """Video id -> split for the ``color`` videos (id -> source); ``gray`` ones (legacy) that
        the file lists are warned about. ``copies``: groups of color video ids holding one video,
        each in the order found; every member gets its group's split (see the module docstring)."""
        for group in copies:
            self._check_copies(group, color)
        follows = self._follows(copies)
        out = self._assign({vid: src for vid, src in color.items() if vid not in follows}, gray)
        out.update((vid, out[leader]) for vid, leader in follows.items())
        return out

    def _follows(self, copies: Sequence[Sequence[str]]) -> dict[str, str]:
        """Video id -> the copy whose split it takes: in each group, the first the split file
        lists, else the first."""
        follows = {}
        for group in copies:
            leader = next((vid for vid in group if vid in self.listed), group[0])
            follows.update((vid, leader) for vid in group if vid != leader)
        return follows

    def _check_copies(self, group: Sequence[str], color: dict[str, str]) -> None:
        """Two copies of one video that the split file puts in different splits are an error."""
        listed = sorted((vid for vid in group if vid in self.listed), key=lambda vid: self.listed[vid].line)
        for vid in listed[1:]:
            first, entry = self.listed[listed[0]], self.listed[vid]
            if entry.split != first.split:
                raise VidcolorError(
                    f"{self.split_file.where()}: {color[listed[0]]} (line {first.line}, {first.split}) and "
                    f"{color[vid]} (line {entry.line}, {entry.split}) are copies of one video (their "
                    "frames' perceptual hashes match), so one split would hold the other's frames; "
                    "put them in the same split, or leave one out"
                )

    def _assign(self, color: dict[str, str], gray: dict[str, str]) -> dict[str, str]:
        if self.split_file is None:
            return assign_splits(list(color), self.percents or parse_split(DEFAULT_SPLIT), self.seed)
        for vid, source in gray.items():
            if vid in self.listed:
                entry = self.listed[vid]
                log.warning(
                    "%s: %s is black-and-white: it stays in legacy, not %s",
                    self.split_file.where(entry.line),
                    source,
                    entry.split,
                )
        unlisted = [vid for vid in color if vid not in self.listed]
        if unlisted and self.percents is None:
            shown = ", ".join(color[v] for v in unlisted[:SHOWN])
            more = f" and {len(unlisted) - SHOWN} more" if len(unlisted) > SHOWN else ""
            raise VidcolorError(
                f"{self.split_file.where()}: {len(unlisted)} color source(s) not listed: "
                f"{shown}{more}; list them, or give --split too to draw the unlisted ones by "
                "those percentages (among themselves)"
            )
        if not unlisted and self.percents is not None:
            log.info("%s lists every color source: the --split percentages are not used", self.split_file.where())
        out = {vid: self.listed[vid].split for vid in color if vid in self.listed}
        if unlisted:
            out.update(assign_splits(unlisted, self.percents, self.seed))
        return out

    def record(self, split_of: Sequence[str], copies: Sequence[Sequence[str]] = ()) -> dict[str, Any] | None:
        """The manifest's ``split_file``: path (resolved), sha256, and the videos drawn by ``--split``
        (of the color videos ``split_of``; a copy that took another's split was not drawn)."""
        if self.split_file is None:
            return None
        follows = self._follows(copies)
        return {
            "path": str(self.split_file.path.resolve()),
            "sha256": self.split_file.sha256,
            "drawn": sorted(v for v in split_of if v not in self.listed and v not in follows),
        }
