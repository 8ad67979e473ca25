"""``vidcolor import-eccv16 FILE.pth --out DIR``: the official ECCV16 weights as a checkpoint, the
pretrained start of exp4/exp5.

The conversion is `models.eccv16`'s; this handler owns the output. ``--out`` is a checkpoint
folder, checked before the weights are read (`data_shards.outdir.check_folder`): one that is not
empty is refused unless ``--overwrite``, and even then unless it holds a checkpoint. It is replaced
whole: the new checkpoint is written beside it and swapped in once complete, so no folder mixes
the imported weights with files of an earlier checkpoint (a trained one's optimizer state, say).
"""

from __future__ import annotations

from data_shards import outdir
from models import eccv16
from models.checkpoint import CONFIG, WEIGHTS


def main(args) -> int:
    """Handler of ``vidcolor import-eccv16 FILE.pth --out DIR [--overwrite]``."""
    out = outdir.check_folder(
        args.out, "--out", getattr(args, "overwrite", False), holds=(CONFIG, WEIGHTS), what="checkpoint"
    )
    release = eccv16.read_release(args.weights)
    with outdir.replace_folder(out) as folder:
        eccv16.write_checkpoint(release, folder)
    model, gamut = release.model, release.gamut
    params = sum(p.numel() for p in model.parameters())
    rows = [
        ("checkpoint", str(out)),
        ("size", model.config.size),
        ("parameters", f"{params:,}"),
        ("grid", str(gamut.grid)),
        ("bins", str(gamut.num_bins)),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0
