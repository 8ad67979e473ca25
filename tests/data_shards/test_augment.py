"""Training augmentation: one flip and crop for every frame of a window, exact geometry by hand."""

from __future__ import annotations

import random

import numpy as np
import pytest

from data_shards.augment import Augment
from models.errors import VidcolorError


def _window(t=3, h=8, w=8) -> np.ndarray:
    """Frames whose pixel (y, x) of frame f holds (f, y, x): every output pixel says where it came from."""
    f, y, x = np.meshgrid(np.arange(t), np.arange(h), np.arange(w), indexing="ij")
    return np.stack([f, y, x], axis=-1).astype(np.uint8)


def test_identity_and_flip_are_exact():
    frames = _window()
    assert Augment(flip=False).identity
    np.testing.assert_array_equal(Augment(flip=False)(frames, random.Random(0)), frames)
    flips = set()
    for seed in range(20):
        out = Augment(flip=True)(frames, random.Random(seed))
        flipped = bool(out[0, 0, 0, 2] == 7)
        flips.add(flipped)
        np.testing.assert_array_equal(out, frames[:, :, ::-1] if flipped else frames)  # all frames alike
    assert flips == {True, False}


def test_crop_is_one_square_for_the_whole_window():
    frames = _window(t=4, h=8, w=10)
    for seed in range(30):
        out = Augment(flip=False, min_scale=0.5, size=None)(frames, random.Random(seed))
        assert out.shape == (4, 8, 8, 3) and out.dtype == np.uint8
        # a crop of side c in [4, 8] resized to 8: rows/columns still increase, frames keep their index
        assert (out[:, :, :, 0] == np.arange(4)[:, None, None]).all()
        assert (np.diff(out[0, :, 0, 1].astype(int)) >= 0).all() and (np.diff(out[0, 0, :, 2].astype(int)) >= 0).all()
        np.testing.assert_array_equal(out[1:, :, :, 1:], np.broadcast_to(out[:1, :, :, 1:], (3, 8, 8, 2)))
    whole = Augment(flip=False, min_scale=1.0, size=8)(_window(h=8, w=8), random.Random(0))
    np.testing.assert_array_equal(whole, _window())  # side 8 of 8 at size 8: untouched


def test_crop_to_a_smaller_training_size():
    frames = np.full((2, 24, 24, 3), 200, np.uint8)
    out = Augment(flip=True, min_scale=0.5, size=8)(frames, random.Random(3))
    assert out.shape == (2, 8, 8, 3) and (out == 200).all()  # a flat frame stays flat through the resize


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_scale": 0.0}, "crop_scale: must be in (0, 1], got 0.0"),
        ({"min_scale": 1.5}, "crop_scale: must be in (0, 1], got 1.5"),
        ({"size": 4}, "train_size: must be at least 8 px, got 4"),
    ],
)
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(VidcolorError) as err:
        Augment(**kwargs)
    assert str(err.value) == message
