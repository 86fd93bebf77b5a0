"""Argument checks shared by the ops.

Every check runs at trace time (on shapes, dtypes and static arguments) and raises a
``ValueError`` that names the argument and what it got, so a mistake never surfaces as
an XLA error from deep inside a compiled computation. Checks on *values* (e.g. label
ranges) run only when the value is concrete, i.e. outside ``jit``.
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def describe(x: Any) -> str:
  """A short 'shape dtype' description of an array-like for error messages."""
  shape = getattr(x, "shape", None)
  dtype = getattr(x, "dtype", None)
  if shape is None:
    return f"{type(x).__name__} {x!r}"
  return f"shape {tuple(shape)} dtype {dtype}"


def check_array(name: str, x: Any) -> None:
  if not hasattr(x, "shape") or not hasattr(x, "dtype"):
    raise ValueError(f"`{name}` must be an array, got {type(x).__name__}")


def check_rank(name: str, x: Any, ranks: int | Sequence[int], meaning: str = "") -> None:
  """Raise unless ``x.ndim`` is one of ``ranks``."""
  check_array(name, x)
  allowed = (ranks,) if isinstance(ranks, int) else tuple(ranks)
  if x.ndim not in allowed:
    want = " or ".join(str(r) for r in allowed)
    extra = f" ({meaning})" if meaning else ""
    raise ValueError(f"`{name}` must have rank {want}{extra}, got {describe(x)}")


def check_min_rank(name: str, x: Any, rank: int, meaning: str = "") -> None:
  check_array(name, x)
  if x.ndim < rank:
    extra = f" ({meaning})" if meaning else ""
    raise ValueError(f"`{name}` must have rank >= {rank}{extra}, got {describe(x)}")


def check_floating(name: str, x: Any) -> None:
  check_array(name, x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"`{name}` must be a floating-point array, got {describe(x)}")


def check_integer(name: str, x: Any) -> None:
  check_array(name, x)
  if not jnp.issubdtype(x.dtype, jnp.integer):
    raise ValueError(f"`{name}` must be an integer array, got {describe(x)}")


def check_dim(name: str, x: Any, axis: int, size: int, what: str) -> None:
  """Raise unless ``x.shape[axis] == size``; ``what`` says where ``size`` came from."""
  if x.shape[axis] != size:
    raise ValueError(
        f"`{name}` axis {axis} must have size {size} ({what}), got {describe(x)}")


def check_shape(name: str, x: Any, shape: Sequence[int], what: str) -> None:
  if tuple(x.shape) != tuple(shape):
    raise ValueError(f"`{name}` must have shape {tuple(shape)} ({what}), got {describe(x)}")


def check_positive_int(name: str, value: Any) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
  return int(value)


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
  if value not in choices:
    raise ValueError(f"`{name}` must be one of {list(choices)}, got {value!r}")


def is_concrete(x: Any) -> bool:
  """True when ``x`` holds actual values (not a tracer under jit/vmap/grad)."""
  return not isinstance(x, jax.core.Tracer)


def check_labels_in_range(name: str, labels: Any, low: int, high: int) -> None:
  """Raise if concrete integer ``labels`` fall outside ``[low, high)``."""
  if not is_concrete(labels) or labels.size == 0:
    return
  lo, hi = int(jnp.min(labels)), int(jnp.max(labels))
  if lo < low or hi >= high:
    raise ValueError(
        f"`{name}` values must lie in [{low}, {high - 1}], got min {lo} max {hi}")


REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: Any) -> None:
  check_choice("reduction", reduction, REDUCTIONS)
