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
  values = np.asarray(labels)  # numpy: jnp would be staged out inside an enclosing jit
  lo, hi = int(values.min()), int(values.max())
  if lo < low or hi >= high:
    raise ValueError(
        f"`{name}` values must lie in [{low}, {high - 1}], got min {lo} max {hi}")


REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: Any) -> None:
  check_choice("reduction", reduction, REDUCTIONS)


def check_positive_pair(name: str, value: Any) -> tuple[int, int]:
  """An int or a pair of ints, each >= 1, returned as a pair (e.g. a stride or a window)."""
  items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
  if len(items) != 2 or any(
      isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in items):
    raise ValueError(f"`{name}` must be a positive integer or a pair of them, got {value!r}")
  return int(items[0]), int(items[1])


def check_same_dtype(name: str, x: Any, other_name: str, other: Any) -> None:
  """Raise unless ``x`` has the same dtype as ``other`` (no silent promotion)."""
  if x.dtype != other.dtype:
    raise ValueError(
        f"`{name}` must have the dtype of `{other_name}` ({other.dtype}), got {describe(x)}")


def check_real_number(name: str, value: Any, *, low: float | None = None,
                      high: float | None = None, high_inclusive: bool = True) -> float:
  """Raise unless ``value`` is a concrete finite real number in ``[low, high]``.

  ``high_inclusive=False`` makes the upper end open, ``[low, high)``. Returns it as float.
  """
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                    np.floating)):
    raise ValueError(f"`{name}` must be a Python real number, got {type(value).__name__} "
                     f"{value!r}")
  number = float(value)
  too_high = high is not None and (number > high if high_inclusive else number >= high)
  if not np.isfinite(number) or (low is not None and number < low) or too_high:
    interval = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}"
    interval += "]" if high_inclusive and high is not None else ")"
    raise ValueError(f"`{name}` must be a finite number in {interval}, got {value!r}")
  return number


def check_bool(name: str, value: Any) -> None:
  """Raise unless ``value`` is a Python bool (a traced flag cannot pick a code path)."""
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"`{name}` must be a Python bool, got {type(value).__name__} {value!r}")


def check_prng_key(name: str, key: Any) -> None:
  """Raise unless ``key`` is a typed PRNG key or a raw ``uint32`` key of shape (2,)."""
  check_array(name, key)
  if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
    if key.ndim != 0:
      raise ValueError(f"`{name}` must be a single PRNG key, got {describe(key)}")
    return
  if key.dtype != jnp.uint32 or tuple(key.shape) != (2,):
    raise ValueError(
        f"`{name}` must be a PRNG key (jax.random.key or jax.random.PRNGKey), "
        f"got {describe(key)}")


def check_binary_labels(name: str, labels: Any) -> None:
  """Raise if concrete ``labels`` are neither all in {0, 1} nor all in {-1, +1}."""
  if not is_concrete(labels) or labels.size == 0:
    return
  values = set(np.unique(np.asarray(labels)).tolist())
  if not (values <= {0, 1} or values <= {-1, 1}):
    shown = sorted(values)[:6]
    raise ValueError(
        f"`{name}` values must all lie in {{0, 1}} or all in {{-1, +1}}, got values {shown}")
