"""Awkward inputs for checking a backward rule, as small combinable generators.

Every generator takes a NumPy ``Generator`` (``numpy_rng(key)`` makes one from a JAX key)
and returns float64 NumPy arrays (labels: int32), so cases keep their precision whether
or not JAX's 64-bit mode is on where they are built. hw's own registry
(``hw.verification.registry``) draws its cases from these.

Values: ``normal`` (with ``scale``/``offset`` for large and tiny magnitudes),
``away_from`` (kept a gap away from a kink, safe for finite differences), ``at_kinks``
(some elements exactly at a kink: 0 for ReLU, the hinge margin), ``with_zeros`` (exact
zeros), ``distinct`` (no ties), ``integers`` (exact ties), ``labels`` and
``binary_labels`` (both conventions, {0,1} and {-1,+1}).

Shapes: ``BATCH_OF_ONE``, ``ODD_SIZES``, ``PRIME_SIZES`` and ``awkward_shapes(shape)``.

Cases: ``awkward(shape, ...)`` builds the standard list of ``Case``s for a function of
one array (plus whatever ``extra`` adds), each named after what makes it awkward, with
finite differences switched off (and the reason given) where the point is a kink or a
tie. Combine lists with ``+``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from hw.testing._core import Case

BATCH_OF_ONE = 1
ODD_SIZES = (1, 3, 5, 7, 9)
PRIME_SIZES = (2, 3, 5, 7, 11, 13)


def numpy_rng(key) -> np.random.Generator:
  """A NumPy generator seeded from a JAX PRNG key (typed or raw uint32) or an int."""
  if isinstance(key, (int, np.integer)):
    return np.random.default_rng(int(key))
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.key_data(key)
  return np.random.default_rng(np.asarray(key).ravel().tolist())


def normal(rng, *shape, scale=1.0, offset=0.0):
  """Standard normal values times ``scale`` plus ``offset`` (large: scale 1e3 or offset
  1e3; tiny: scale 1e-3)."""
  return offset + scale * rng.standard_normal(shape)


def away_from(rng, shape, kink=0.0, gap=0.05):
  """Random values whose distance to ``kink`` is at least ``gap`` (safe for finite
  differences)."""
  magnitude = gap + np.abs(rng.standard_normal(shape))
  return kink + np.where(rng.random(shape) < 0.5, -magnitude, magnitude)


def distinct(rng, *shape, gap=0.1):
  """Pairwise distinct values at least ``gap`` apart, in random order (no max ties)."""
  size = int(np.prod(shape))
  return (rng.permutation(size) - size / 2).reshape(shape) * gap


def integers(rng, *shape, high=3):
  """Small integer values stored as floats: exact ties (max pooling, sorting, argmax)."""
  return rng.integers(0, high, size=shape).astype(np.float64)


def with_zeros(rng, *shape, fraction=0.4):
  """Normal values with about ``fraction`` of them exactly 0."""
  values = normal(rng, *shape)
  values[rng.random(values.shape) < fraction] = 0.0
  return values


def at_kinks(rng, shape, kinks: Sequence[float], fraction=0.5, gap=0.05):
  """Values a gap away from every kink, except about ``fraction`` of them exactly at one
  of ``kinks`` (e.g. ``(0.0,)`` for ReLU)."""
  values = away_from(rng, shape, kink=float(kinks[0]), gap=gap)
  for kink in kinks[1:]:
    near = np.abs(values - kink) < gap
    values[near] = kink + np.where(values[near] >= kink, gap, -gap)
  hit = rng.random(shape) < fraction
  values[hit] = np.asarray(kinks, dtype=np.float64)[rng.integers(0, len(kinks), size=shape)][hit]
  return values


def labels(rng, n, classes):
  """Integer class labels in ``[0, classes)`` (int32)."""
  return rng.integers(0, classes, size=(n,)).astype(np.int32)


def binary_labels(rng, n, kind):
  """Binary labels, ``kind="01"`` for {0, 1} or ``"pm1"`` for {-1, +1} (int32)."""
  bits = rng.integers(0, 2, size=(n,))
  if kind == "01":
    return bits.astype(np.int32)
  if kind == "pm1":
    return (2 * bits - 1).astype(np.int32)
  raise ValueError(f"`kind` must be '01' or 'pm1', got {kind!r}")


def awkward_shapes(shape: Sequence[int]) -> dict[str, tuple[int, ...]]:
  """``shape`` itself, with a batch of one (first axis 1), and with odd prime sizes."""
  shape = tuple(int(s) for s in shape)
  primes = tuple(PRIME_SIZES[2 + i % (len(PRIME_SIZES) - 2)] for i in range(len(shape)))
  return {"random": shape, "batch-of-one": (BATCH_OF_ONE,) + shape[1:],
          "odd-prime-sizes": primes}


def awkward(shape: Sequence[int], *, seed=0, kinks: Sequence[float] = (),
            extra: Callable[[np.random.Generator, np.ndarray], tuple] | None = None,
            differentiable: tuple[int, ...] | None = None, zeros=True, ties=True,
            magnitudes: Sequence[float] = (1e-3, 1e3), kwargs=None) -> list[Case]:
  """The standard awkward cases of a function whose first argument is an array.

  Args:
    shape: the first argument's shape on the ordinary case.
    seed: seed of the values (an int or a JAX key).
    kinks: points where the function is not differentiable (0 for ReLU); ordinary values
      keep a gap from them, and an ``at-kinks`` case puts elements exactly on them
      (finite differences off there).
    extra: ``(rng, x) -> tuple`` of further arguments (weights, labels) for input ``x``.
    differentiable: indices of the differentiated arguments (default: every floating
      array among them).
    zeros, ties: add an ``exact-zeros`` / ``exact-ties`` case (finite differences off
      when a kink is 0, or for ties, since a max/sort is not differentiable at a tie).
    magnitudes: a ``scale-<m>`` case per value (large and tiny inputs).
    kwargs: keyword arguments of every case.
  """
  rng = numpy_rng(seed)
  kinks = tuple(float(k) for k in kinks)
  kwargs = dict(kwargs or {})

  def base(shape_):
    if kinks:
      return away_from(rng, shape_, kink=kinks[0], gap=0.05) if len(kinks) == 1 else \
          at_kinks(rng, shape_, kinks, fraction=0.0)
    return normal(rng, *shape_)

  def case(name, x, fd=True, why=""):
    args = (x,) + (tuple(extra(rng, x)) if extra is not None else ())
    diff = differentiable
    if diff is None:
      diff = tuple(i for i, a in enumerate(args)
                   if isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.floating))
    return Case(name, args, kwargs, differentiable=diff, finite_differences=fd,
                why_no_fd=why)

  cases = [case(name, base(s)) for name, s in awkward_shapes(shape).items()]
  shape = tuple(shape)
  for m in magnitudes:
    cases.append(case(f"scale-{m:g}", base(shape) * m if not kinks else
                      kinks[0] + (base(shape) - kinks[0]) * m))
  if zeros:
    at_kink = 0.0 in kinks
    cases.append(case("exact-zeros", with_zeros(rng, *shape), fd=not at_kink,
                      why="exact zeros sit on the kink at 0" if at_kink else ""))
  if ties:
    cases.append(case("exact-ties", integers(rng, *shape), fd=False,
                      why="exact ties: a max/sort is not differentiable there"))
  if kinks:
    cases.append(case("at-kinks", at_kinks(rng, shape, kinks), fd=False,
                      why=f"elements exactly at the kinks {list(kinks)}"))
  return cases
