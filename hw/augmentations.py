"""Training-time augmentations by name, applied on the device inside the train step.

Each is ``fn(images, *, key) -> images``; its randomness comes from the step's key (a pure
function of (seed, epoch, step)), so resuming an interrupted run stays exact.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from hw.registry import Registry

SHIFT_PIXELS = 2  # "shift": translations of up to ± this many pixels

Augmentation = Callable[..., jax.Array]


def random_shift(images: jax.Array, *, key: jax.Array, pixels: int = SHIFT_PIXELS) -> jax.Array:
  """Translate each NHWC image by its own (dy, dx), uniform in {−pixels, …, pixels}².

  ``out[n, i, j] = P[n, i + pixels + dy_n, j + pixels + dx_n]`` where ``P`` is the image
  padded by ``pixels`` with its edge values (the background, for MNIST).
  """
  if images.ndim != 4:
    raise ValueError(f"augment='shift' needs NHWC images of rank 4, got shape {images.shape}")
  n, h, w, c = images.shape
  offsets = jax.random.randint(key, (n, 2), 0, 2 * pixels + 1)
  padded = jnp.pad(images, ((0, 0), (pixels, pixels), (pixels, pixels), (0, 0)), mode="edge")
  crop = lambda image, offset: jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))
  return jax.vmap(crop)(padded, offsets)


AUGMENTATIONS: Registry[Augmentation] = Registry("augmentation")
AUGMENTATIONS.register("shift", random_shift,
                       f"random ±{SHIFT_PIXELS} px translations, edge fill (MNIST)")
