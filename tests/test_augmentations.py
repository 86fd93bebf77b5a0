"""hw.engine.augmentations."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from hw.engine import augmentations
from hw.engine.randomness import init_key


def test_random_shift_translates_each_image_by_at_most_two_pixels():
  images = np.zeros((64, 9, 9, 1), np.float32)
  images[:, 4, 4, 0] = 1.0  # one bright pixel in the middle of a dark image
  shift = augmentations.AUGMENTATIONS["shift"]
  shifted = np.asarray(shift(jnp.asarray(images), key=init_key(0)))
  assert shifted.shape == images.shape
  assert np.all(shifted.sum(axis=(1, 2, 3)) == 1.0)  # the pixel moved, nothing was smeared
  rows, cols = np.nonzero(shifted[..., 0])[1:]
  assert set(rows - 4) == set(cols - 4) == {-2, -1, 0, 1, 2}  # every offset occurs
  again = np.asarray(shift(jnp.asarray(images), key=init_key(0)))
  np.testing.assert_array_equal(shifted, again)
  with pytest.raises(ValueError, match="rank 4"):
    augmentations.random_shift(jnp.zeros((4, 81)), key=init_key(0))


def test_crop_flip_crops_within_four_pixels_of_zero_padding_and_mirrors_about_half():
  images = np.zeros((256, 12, 12, 1), np.float32)
  images[:, 5, 5, 0], images[:, 5, 6, 0] = 1.0, 2.0  # an asymmetric pair in the middle
  crop_flip = augmentations.AUGMENTATIONS["crop_flip"]
  out = np.asarray(crop_flip(jnp.asarray(images), key=init_key(0)))
  assert out.shape == images.shape
  assert np.all(out.sum(axis=(1, 2, 3)) == 3.0)  # moved (and maybe mirrored), not smeared
  _, rows, cols = np.nonzero(out[..., 0] == 1.0)
  _, _, twos = np.nonzero(out[..., 0] == 2.0)
  assert set(rows - 5) == set(range(-4, 5))  # every vertical offset of the 4-px padding
  flipped = twos < cols
  assert np.all(np.abs(twos - cols) == 1) and 0.3 < flipped.mean() < 0.7
  shift = np.where(flipped, 11 - cols, cols) - 5  # undo the mirror: the horizontal offset
  assert set(shift) == set(range(-4, 5))
  np.testing.assert_array_equal(out, np.asarray(crop_flip(jnp.asarray(images), key=init_key(0))))
  # zero fill: a pixel at the border can leave the frame
  corner = np.zeros((64, 12, 12, 1), np.float32)
  corner[:, 0, 0, 0] = 1.0
  assert np.any(np.asarray(crop_flip(jnp.asarray(corner), key=init_key(2))).sum((1, 2, 3)) == 0)
  # with no padding an image is either itself or its mirror
  picture = np.random.default_rng(0).random((64, 5, 5, 3), np.float32)
  mirrored = np.asarray(augmentations.random_crop_flip(jnp.asarray(picture), key=init_key(1),
                                                       padding=0))
  same = np.all(mirrored == picture, axis=(1, 2, 3))
  flipped = np.all(mirrored == picture[:, :, ::-1], axis=(1, 2, 3))
  assert np.all(same | flipped) and 10 < flipped.sum() < 54
  with pytest.raises(ValueError, match="rank 4"):
    augmentations.random_crop_flip(jnp.zeros((4, 81)), key=init_key(0))
