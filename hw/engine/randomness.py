"""Where every random number of a training run comes from: a pure function of the seed.

The initial parameters come from a key drawn by ``numpy.random.default_rng([seed, 0])``;
epoch ``e``'s shuffling and per-step keys (dropout, augmentation) from
``default_rng([seed, e])``. Drawing on the host costs no XLA compilation, and makes a
resumed run draw exactly what an uninterrupted one would.
"""
from __future__ import annotations

import functools

import jax
import numpy as np

# XLA's RngBitGenerator keys: on CPU they compile several times faster than threefry's
# unrolled hash (seconds per jitted function), and are equally deterministic.
PRNG_IMPL = "rbg"


@functools.cache
def _key_shape() -> tuple[int, ...]:
  return jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0, impl=PRNG_IMPL))).shape


def key_data(rng: np.random.Generator, count: int | None = None) -> np.ndarray:
  """Raw uint32 key data for one key, or for ``count`` keys, drawn from ``rng``."""
  shape = _key_shape()
  return rng.integers(0, 2**32, size=shape if count is None else (count,) + shape, dtype=np.uint32)


def wrap(data: jax.Array) -> jax.Array:
  """A typed PRNG key from :func:`key_data` output."""
  return jax.random.wrap_key_data(data, impl=PRNG_IMPL)


def init_key(seed: int) -> jax.Array:
  """The parameter-initialisation key: a pure function of the seed."""
  return wrap(key_data(np.random.default_rng([seed, 0])))


def epoch_plan(seed: int, epoch: int, size: int, steps: int,
               batch: int) -> tuple[np.ndarray, np.ndarray]:
  """Epoch ``epoch``'s (1-based) mini-batch indices (steps, batch) and per-step key data.

  The last ``size - steps * batch`` examples of the shuffled order sit the epoch out.
  """
  rng = np.random.default_rng([seed, epoch])
  order = rng.permutation(size)[:steps * batch].astype(np.int32).reshape(steps, batch)
  return order, key_data(rng, steps)
