"""Training-time augmentations by name, applied on the device inside the train step.

Each is ``fn(images, *, key) -> images``; its randomness comes from the step's key (a pure
function of (seed, epoch, step)), so resuming an interrupted run stays exact.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from hw.named import Registry

SHIFT_PIXELS = 2  # "shift": translations of up to ± this many pixels
CROP_PADDING = 4  # "crop_flip": zero padding before the random crop (the CIFAR recipe)

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


def random_crop_flip(images: jax.Array, *, key: jax.Array,
                     padding: int = CROP_PADDING) -> jax.Array:
  """The standard CIFAR augmentation: pad each NHWC image with ``padding`` zeros on every
  side, take a random crop of the original size, and mirror it left–right with
  probability 1/2.

  ``out[n, i, j] = P[n, i + dy_n, j' + dx_n]`` with ``(dy, dx)`` uniform in
  {0, …, 2·padding}², ``j' = W − 1 − j`` for flipped images, ``P`` the zero-padded image
  (zero is the mean pixel after the usual normalisation).
  """
  if images.ndim != 4:
    raise ValueError(f"augment='crop_flip' needs NHWC images of rank 4, got shape {images.shape}")
  n, h, w, c = images.shape
  crop_key, flip_key = jax.random.split(key)
  offsets = jax.random.randint(crop_key, (n, 2), 0, 2 * padding + 1)
  flips = jax.random.bernoulli(flip_key, 0.5, (n,))
  padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  crop = lambda image, offset: jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))
  cropped = jax.vmap(crop)(padded, offsets)
  return jnp.where(flips[:, None, None, None], cropped[:, :, ::-1, :], cropped)


AUGMENTATIONS: Registry[Augmentation] = Registry("augmentation")
AUGMENTATIONS.register("shift", random_shift,
                       f"random ±{SHIFT_PIXELS} px translations, edge fill (MNIST)")
AUGMENTATIONS.register("crop_flip", random_crop_flip,
                       f"random crop after {CROP_PADDING}-px zero padding + horizontal flip "
                       f"(CIFAR)")
