"""Scaffolding shared by the test files (imported as ``helpers``: pytest puts tests/ on the
path): seeded inputs for the op tests, and a registry case as a function of its
differentiable inputs."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax.numpy as jnp
import numpy as np


def normal(seed: int, shape: tuple[int, ...], dtype=np.float32) -> jnp.ndarray:
  """Standard normal values of ``shape`` and ``dtype``, drawn from NumPy's generator ``seed``."""
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(dtype))


def random_labels(seed: int, shape: tuple[int, ...], classes: int) -> jnp.ndarray:
  """Integer class labels in ``[0, classes)`` (int32), drawn from NumPy's generator ``seed``."""
  return jnp.asarray(np.random.default_rng(seed).integers(0, classes, size=shape), jnp.int32)


def case_function(op: Callable, case: Any, args: Sequence[Any]) -> tuple[Callable, tuple]:
  """``(call, inputs)``: ``call(*inputs)`` is ``op(*args, **case.kwargs)`` with the case's
  differentiable positions taken from ``inputs`` (the other ``args`` stay as given)."""
  def call(*inputs):
    full = list(args)
    for position, value in zip(case.differentiable, inputs):
      full[position] = value
    return op(*full, **case.kwargs)
  return call, tuple(args[i] for i in case.differentiable)
