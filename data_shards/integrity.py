"""Damaged shards are never silent: the samples of each shard counted against the manifest.

`ShardTally`: the readers get their samples through it, shard by shard; it counts what each
shard yielded (and, in evaluation, which samples failed to decode) against the manifest's
``shard_stats[name]["clips"]``. A flipped byte in a tar header makes tarfile take the rest of
the archive for its end, so a shortfall is the only trace such damage leaves; each is logged
as a WARNING naming the shard. The damage that still decodes (a changed quantization table is
just other pixels; damaged entropy-coded data is refused by the strict decoder,
`data_shards.samples`) is what `ShardSet.verify` finds: the sha256 of every shard against the
manifest's (format 2 and later).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from data_shards.samples import CORRUPT
from data_shards.shardset import ShardSet
from data_shards.tarstream import tar_samples

log = logging.getLogger(__name__)


class ShardTally:
    """Samples read per shard in one pass over ``names`` (shard file names of ``shards``)."""

    def __init__(self, shards: ShardSet, names: Iterable[str]):
        stats = shards.manifest["shard_stats"]
        self.where = {shards.url(n): shards.where(n) for n in names}
        self.name = {shards.url(n): n for n in names}
        self.expected = {url: int(stats[n]["clips"]) for url, n in self.name.items()}
        self.read: Counter[str] = Counter()
        self.unreadable: Counter[str] = Counter()
        self.warned: set[str] = set()

    @property
    def urls(self) -> list[str]:
        return list(self.name)

    def samples(self, url: str, warn: bool = True) -> Iterator[dict[str, Any]]:
        """The samples of one shard (corrupt tar data counted, logged and skipped by `CORRUPT`);
        ``warn``: log a count other than the manifest's when the shard ends (once per shard)."""
        read = 0
        for sample in tar_samples([url], CORRUPT):
            read += 1
            self.read[url] += 1
            yield sample
        if warn and read != self.expected[url] and url not in self.warned:  # once per shard: training rereads them
            self.warned.add(url)
            log.warning("%s", self._message(url, read, 0))

    def stream(self, urls: Iterable[str], warn: bool = True) -> Iterator[dict[str, Any]]:
        """The samples of ``urls``, one shard after the other."""
        for url in urls:
            yield from self.samples(url, warn)

    def failed(self, sample: dict[str, Any]) -> None:
        """A sample of this pass that could not be decoded."""
        self.unreadable[sample.get("__url__", "")] += 1

    def _message(self, url: str, read: int, unreadable: int) -> str:
        expected, where = self.expected[url], self.where[url]
        if read > expected:
            return (
                f"{where}: read {read} samples, the manifest lists {expected} "
                "(shard replaced after the manifest was written?)"
            )
        text = f"{where}: read {read} of {expected} samples the manifest lists"
        if unreadable:
            text += f", {unreadable} of them unreadable"
        return text + " (damaged or truncated?)"

    def shortfalls(self) -> list[dict[str, Any]]:
        """Every shard of the pass that yielded other than its manifest count or unreadable samples:
        ``{shard, expected, read, unreadable, message}`` (``read`` counts the unreadable ones)."""
        out = []
        for url, name in self.name.items():
            read, bad = self.read[url], self.unreadable[url]
            if read != self.expected[url] or bad:
                out.append(
                    {
                        "shard": name,
                        "expected": self.expected[url],
                        "read": read,
                        "unreadable": bad,
                        "message": self._message(url, read, bad),
                    }
                )
        return out
