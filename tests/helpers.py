"""Scaffolding shared by the test files (imported as ``helpers``: pytest puts tests/ on the
path): seeded inputs for the op tests."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def normal(seed: int, shape: tuple[int, ...], dtype=np.float32) -> jnp.ndarray:
  """Standard normal values of ``shape`` and ``dtype``, drawn from NumPy's generator ``seed``."""
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(dtype))


def random_labels(seed: int, shape: tuple[int, ...], classes: int) -> jnp.ndarray:
  """Integer class labels in ``[0, classes)`` (int32), drawn from NumPy's generator ``seed``."""
  return jnp.asarray(np.random.default_rng(seed).integers(0, classes, size=shape), jnp.int32)
