"""A short colour-vision screen: generated pseudo-isochromatic plates with known answers.

Each plate is a disc of dots; the dots inside a digit take reddish hues, the others greenish ones,
at the same CIELAB lightness on average and with the same random lightness jitter, so the digit is
drawn by hue alone, along the red-green axis that protan and deutan observers confuse (the idea of
Ishihara's plates; these are generated, not his, and screen rather than diagnose). A rater who
cannot name most digits cannot judge colorizations either: `check` passes 3 of 4 plates.

Plates come from a session's seed (`digits`, `plate`), so the server re-makes them to check the
answers and nothing about them is stored.
"""

from __future__ import annotations

import hashlib
import random
import unicodedata

import cv2
import numpy as np

SIZE = 240
PLATES = 4
PASS = 3
# seven-segment digits: which of segments a..g are lit (a top, b top right, c bottom right,
# d bottom, e bottom left, f top left, g middle)
SEGMENTS = {
    0: "abcdef", 1: "bc", 2: "abged", 3: "abgcd", 4: "fgbc",
    5: "afgcd", 6: "afgedc", 7: "abc", 8: "abcdefg", 9: "abcdfg",
}  # fmt: skip
FIGURE_AB = (38.0, 28.0)  # CIELAB a*, b*: orange-red
GROUND_AB = (-28.0, 34.0)  # olive green


def digits(seed: str, n: int = PLATES) -> list[int]:
    """The digits of a session's plates: distinct, none of 1 and 7 (too thin to read in dots)."""
    rng = random.Random(hashlib.sha256(f"plates:{seed}".encode()).hexdigest())
    return rng.sample([0, 2, 3, 4, 5, 6, 8, 9], n)


def _mask(digit: int) -> np.ndarray:
    """A bool (SIZE, SIZE) mask of the digit as thick seven-segment strokes."""
    m = np.zeros((SIZE, SIZE), np.uint8)
    x0, x1, y0, y1, y2 = 80, 160, 50, 120, 190
    ends = {
        "a": ((x0, y0), (x1, y0)), "b": ((x1, y0), (x1, y1)), "c": ((x1, y1), (x1, y2)),
        "d": ((x0, y2), (x1, y2)), "e": ((x0, y1), (x0, y2)), "f": ((x0, y0), (x0, y1)),
        "g": ((x0, y1), (x1, y1)),
    }  # fmt: skip
    for seg in SEGMENTS[digit]:
        cv2.line(m, *ends[seg], color=1, thickness=24)
    return m.astype(bool)


def plate(seed: str, index: int) -> np.ndarray:
    """Plate `index` of a session as uint8 RGB (SIZE, SIZE, 3)."""
    digit = digits(seed)[index]
    rng = np.random.default_rng(int(hashlib.sha256(f"plate:{seed}:{index}".encode()).hexdigest()[:15], 16))
    mask = _mask(digit)
    lab = np.zeros((SIZE, SIZE, 3), np.float32)
    lab[..., 0] = 100.0  # white outside the disc
    c, r = SIZE / 2, SIZE / 2 - 4
    for _ in range(1400):
        x, y = rng.uniform(0, SIZE, 2)
        if (x - c) ** 2 + (y - c) ** 2 > (r - 4) ** 2:
            continue
        rad = int(rng.integers(3, 8))
        inside = mask[int(y), int(x)]
        a, b = FIGURE_AB if inside else GROUND_AB
        light = 58.0 + rng.normal(0, 8)
        jitter = rng.normal(0, 5, 2)
        cv2.circle(lab, (int(x), int(y)), rad, (float(light), a + jitter[0], b + jitter[1]), thickness=-1)
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def check(seed: str, answers: list) -> bool:
    """Whether the answers (one per plate, in order; anything) name at least `PASS` digits right."""
    right = 0
    for digit, answer in zip(digits(seed), answers):
        text = unicodedata.normalize("NFKC", str(answer)).strip() if answer is not None else ""  # "８" is 8
        right += text == str(digit)
    return right >= PASS
