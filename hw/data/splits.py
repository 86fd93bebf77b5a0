"""Holding out a validation set from a training split."""
from __future__ import annotations

import numbers

import numpy as np

from hw.data.containers import ArraySplit, frozen


def split_validation(split: ArraySplit, *, fraction: float = 0.1,
                     seed: int = 0) -> tuple[ArraySplit, ArraySplit]:
  """Split off a random ``fraction`` of ``split`` as validation data.

  The examples are permuted with ``np.random.default_rng(seed)``; the first
  round(fraction * N) indices of the permutation form the validation set, the rest the
  training set, each kept in the original order. Same seed, same split.

  Args:
    split: the training split to divide.
    fraction: share of examples for validation, in (0, 1).
    seed: seed of the permutation.

  Returns:
    (train, validation), read-only copies.
  """
  if not isinstance(split, ArraySplit):
    raise ValueError(f"`split` must be an ArraySplit, got {type(split).__name__}")
  if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not (
      0.0 < fraction < 1.0):
    raise ValueError(f"`fraction` must be a number in (0, 1), got {fraction!r}")
  if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
    raise ValueError(f"`seed` must be an integer, got {seed!r}")
  count = len(split)
  num_validation = int(round(fraction * count))
  if not 0 < num_validation < count:
    raise ValueError(
        f"`fraction`={fraction} of {count} examples leaves {num_validation} for validation "
        f"and {count - num_validation} for training; both must be at least 1")
  order = np.random.default_rng(seed).permutation(count)
  validation_idx, train_idx = np.sort(order[:num_validation]), np.sort(order[num_validation:])

  def take(indices):
    return ArraySplit(images=frozen(split.images[indices]),
                      labels=frozen(split.labels[indices]))

  return take(train_idx), take(validation_idx)
