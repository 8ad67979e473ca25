"""Colorizing black-and-white films with a trained checkpoint: `inference` (the model on a film's
frames), `pipeline` (decode, colorize, encode, overlapped), `command` (`vidcolor colorize`).

Importing this package does not import torch, so that `share_cores_with_codecs` can still act."""

from __future__ import annotations

import os
import sys

#: What `share_cores_with_codecs` sets: OpenMP threads that wait for work sleep instead of spinning.
THREAD_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def share_cores_with_codecs() -> bool:
    """Let the model's OpenMP threads yield their cores to the decoder and encoder threads.

    `vidcolor colorize` runs FFmpeg's decoder, libx264 and the model at once on the same cores. By
    default torch's OpenMP threads spin for a while at the end of every parallel region; beside
    libx264's threads that spinning took a quarter more CPU time than the three stages need apart
    (720p on 2 cores, bench/colorize.py: end to end 12-14 frames/s spinning, 15-17 sleeping).
    OpenMP reads the policy once, when torch loads, so this only acts before torch is imported; a
    value the user set is kept. Returns whether the policy in force is the one set here."""
    if "torch" in sys.modules:
        return all(os.environ.get(k) == v for k, v in THREAD_ENV.items())
    for key, value in THREAD_ENV.items():
        os.environ.setdefault(key, value)
    return all(os.environ[k] == v for k, v in THREAD_ENV.items())
