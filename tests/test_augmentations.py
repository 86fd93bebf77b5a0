"""hw.augmentations."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from hw import augmentations
from hw.randomness import init_key


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
