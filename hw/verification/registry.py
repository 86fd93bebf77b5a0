"""The op registry: every public op of ``hw.ops`` with its reference and its test inputs.

One ``OpSpec`` per op ties together the hand-written op, an independent reference built
from JAX primitives (``hw.verification.references``) and ``make_cases(key)``, which
returns the inputs it is checked on. ``hw verify``, ``tests/test_gradients.py`` and
``tests/test_no_autodiff.py`` all iterate over ``REGISTRY``; adding an op means adding
one entry to ``_SPECS``.

Case inputs are NumPy float64 arrays (labels int32), so they keep their precision no
matter whether JAX's 64-bit mode is on where they are built; the checks run them under
``jax.enable_x64(True)``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import hw.ops
from hw.verification import references as ref


@dataclasses.dataclass(frozen=True)
class Case:
  """One input of an op.

  Attributes:
    name: short id, unique within the op (e.g. ``"stride2-same-odd"``).
    args: positional arguments (NumPy arrays, or None for an omitted bias).
    kwargs: keyword arguments passed unchanged (options, PRNG keys).
    differentiable: indices into ``args`` that are differentiated.
    finite_differences: False at points where the op is not differentiable (kinks,
      max-pool ties), where only the comparison with the reference applies.
    why_no_fd: the reason when ``finite_differences`` is False.
  """
  name: str
  args: tuple
  kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  differentiable: tuple[int, ...] = (0,)
  finite_differences: bool = True
  why_no_fd: str = ""


@dataclasses.dataclass(frozen=True)
class OpSpec:
  """An op, its independent reference and its input generator.

  Attributes:
    name: the public name in ``hw.ops``.
    op: the hand-written op (called as ``op(*case.args, **case.kwargs)``).
    reference: the autodiff reference with the same signature.
    make_cases: ``key -> sequence of Case``.
    tolerance: largest accepted relative error against the reference (float64).
    float32_case: index of the case also run in float32 under ``jit``.
  """
  name: str
  op: Callable
  reference: Callable
  make_cases: Callable[[jax.Array], Sequence[Case]]
  tolerance: float = 1e-10
  float32_case: int = 0


def numpy_rng(key) -> np.random.Generator:
  """A NumPy generator seeded from a JAX PRNG key (typed or raw uint32)."""
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.key_data(key)
  return np.random.default_rng(np.asarray(key).ravel().tolist())


def _normal(rng, *shape, scale=1.0, offset=0.0):
  return offset + scale * rng.standard_normal(shape)


def _away_from(rng, shape, kink=0.0, gap=0.05):
  """Random values whose distance to ``kink`` is at least ``gap`` (safe for finite differences)."""
  magnitude = gap + np.abs(rng.standard_normal(shape))
  return kink + np.where(rng.random(shape) < 0.5, -magnitude, magnitude)


def _distinct(rng, *shape, gap=0.1):
  """Pairwise distinct values at least ``gap`` apart, in random order (no max ties)."""
  size = int(np.prod(shape))
  return (rng.permutation(size) - size / 2).reshape(shape) * gap


def _integers(rng, *shape, high=3):
  """Small integer values stored as floats: max-pool windows with exact ties."""
  return rng.integers(0, high, size=shape).astype(np.float64)


def _labels(rng, n, classes):
  return rng.integers(0, classes, size=(n,)).astype(np.int32)


def _binary_labels(rng, n, kind):
  bits = rng.integers(0, 2, size=(n,))
  if kind == "01":
    return bits.astype(np.int32)
  return (2 * bits - 1).astype(np.int32)


def linear_cases(key):
  rng = numpy_rng(key)
  n = lambda *s: _normal(rng, *s)
  return [
      Case("batch3", (n(3, 4), n(4, 5), n(5)), differentiable=(0, 1, 2)),
      Case("batch1", (n(1, 4), n(4, 3), n(3)), differentiable=(0, 1, 2)),
      Case("nobias", (n(3, 4), n(4, 2), None), differentiable=(0, 1)),
      Case("rank3", (n(2, 3, 4), n(4, 5), n(5)), differentiable=(0, 1, 2)),
      Case("vector", (n(4), n(4, 3), n(3)), differentiable=(0, 1, 2)),
  ]


def relu_cases(key):
  rng = numpy_rng(key)
  with_zeros = _normal(rng, 4, 5)
  with_zeros[rng.random(with_zeros.shape) < 0.4] = 0.0
  return [
      Case("random", (_away_from(rng, (3, 5)),)),
      Case("rank4", (_away_from(rng, (2, 3, 3, 2)),)),
      Case("batch1", (_away_from(rng, (1, 7)),)),
      Case("exact-zeros", (with_zeros,), finite_differences=False,
           why_no_fd="relu has a kink at exactly 0 (gradient 0 there by contract)"),
  ]


def _smooth_elementwise_cases(large):
  def make(key):
    rng = numpy_rng(key)
    return [
        Case("random", (_normal(rng, 3, 5),)),
        Case("rank4", (_normal(rng, 2, 3, 3, 2, scale=2.0),)),
        Case("batch1", (_normal(rng, 1, 6),)),
        Case("large", (_normal(rng, 2, 6, scale=large),)),
    ]
  return make


def softmax_cases(key):
  rng = numpy_rng(key)
  n = lambda *s, **kw: _normal(rng, *s, **kw)
  return [
      Case("random", (n(3, 5),)),
      Case("beta0.5", (n(3, 5),), {"beta": 0.5}),
      Case("beta3", (n(2, 4),), {"beta": 3.0}),
      Case("rank3", (n(2, 3, 4),)),
      Case("batch1", (n(1, 6),)),
      Case("large-logits", (n(3, 4, offset=1000.0),)),
      Case("one-class", (n(3, 1),)),
  ]


def dropout_cases(key):
  rng = numpy_rng(key)
  keys = jax.random.split(jax.random.fold_in(key, 7), 4)
  return [
      Case("rate0.5-train", (_normal(rng, 4, 6),), {"key": keys[0], "rate": 0.5, "train": True}),
      Case("rate0.2-train-rank4", (_normal(rng, 2, 3, 3, 2),),
           {"key": keys[1], "rate": 0.2, "train": True}),
      Case("rate0-train", (_normal(rng, 3, 4),), {"key": keys[2], "rate": 0.0, "train": True}),
      Case("eval", (_normal(rng, 3, 4),), {"key": keys[3], "rate": 0.5, "train": False}),
  ]


def batch_norm_cases(key):
  rng = numpy_rng(key)
  n = lambda *s, **kw: _normal(rng, *s, **kw)
  return [
      Case("rank2", (n(6, 3), n(3), n(3)), differentiable=(0, 1, 2)),
      Case("rank4", (n(2, 3, 3, 4), n(4), n(4)), differentiable=(0, 1, 2)),
      Case("one-spatial-position", (n(5, 1, 1, 3), n(3), n(3)), differentiable=(0, 1, 2)),
      Case("batch1-spatial", (n(1, 3, 2, 2), n(2), n(2)), differentiable=(0, 1, 2)),
      Case("single-sample", (n(1, 3), n(3), n(3)), differentiable=(0, 1, 2)),
      Case("eps1e-3-offset", (n(4, 2, 2, 3, scale=3.0, offset=50.0), n(3), n(3)),
           {"eps": 1e-3}, differentiable=(0, 1, 2)),
  ]


def conv1d_cases(key):
  rng = numpy_rng(key)
  n = lambda *s: _normal(rng, *s)
  return [
      Case("k3", (n(2, 6, 3), n(3, 3, 4), n(4)), differentiable=(0, 1, 2)),
      Case("batch1-nobias", (n(1, 5, 2), n(2, 2, 3), None), differentiable=(0, 1)),
      Case("k1", (n(2, 4, 3), n(1, 3, 2), n(2)), differentiable=(0, 1, 2)),
      Case("k-equals-length", (n(2, 5, 1), n(5, 1, 2), n(2)), differentiable=(0, 1, 2)),
  ]


def conv2d_cases(key):
  rng = numpy_rng(key)
  n = lambda *s: _normal(rng, *s)
  cases = []
  for stride in (1, 2, 3):
    for padding, label in (("VALID", "valid"), ("SAME", "same"), (1, "pad1")):
      cases.append(Case(f"stride{stride}-{label}-odd", (n(2, 7, 5, 3), n(3, 3, 3, 4), n(4)),
                        {"stride": stride, "padding": padding}, differentiable=(0, 1, 2)))
  cases += [
      Case("stride2-same-even", (n(2, 8, 6, 2), n(3, 3, 2, 3), n(3)),
           {"stride": 2, "padding": "SAME"}, differentiable=(0, 1, 2)),
      Case("batch1-k1-nobias", (n(1, 4, 3, 2), n(1, 1, 2, 3), None), differentiable=(0, 1)),
      Case("nonsquare-kernel-pad2", (n(2, 5, 6, 2), n(3, 2, 2, 3), n(3)),
           {"stride": 2, "padding": 2}, differentiable=(0, 1, 2)),
      Case("kernel-equals-input", (n(2, 4, 4, 2), n(4, 4, 2, 3), n(3)), differentiable=(0, 1, 2)),
  ]
  return cases


_TIES = "exact ties inside pooling windows: max is not differentiable there"


def max_pool_cases(key):
  rng = numpy_rng(key)
  constant = np.zeros((1, 4, 4, 2))
  return [
      Case("w2", (_distinct(rng, 2, 6, 6, 3),)),
      Case("w3-s2-overlap-odd", (_distinct(rng, 2, 7, 5, 2),), {"window": 3, "stride": 2}),
      Case("w2-s1", (_distinct(rng, 1, 5, 5, 1),), {"window": 2, "stride": 1}),
      Case("odd-floor", (_distinct(rng, 1, 5, 7, 2),)),
      Case("ties-integers", (_integers(rng, 2, 6, 6, 2),), finite_differences=False,
           why_no_fd=_TIES),
      Case("ties-integers-overlap", (_integers(rng, 1, 5, 5, 2),), {"window": 3, "stride": 1},
           finite_differences=False, why_no_fd=_TIES),
      Case("ties-constant", (constant,), finite_differences=False, why_no_fd=_TIES),
  ]


def avg_pool_cases(key):
  rng = numpy_rng(key)
  n = lambda *s: _normal(rng, *s)
  return [
      Case("w2", (n(2, 6, 6, 3),)),
      Case("w3-s2-overlap-odd", (n(2, 7, 5, 2),), {"window": 3, "stride": 2}),
      Case("w2-s1", (n(1, 5, 5, 1),), {"window": 2, "stride": 1}),
      Case("odd-floor", (n(1, 5, 7, 2),)),
  ]


def adaptive_avg_pool_cases(key):
  rng = numpy_rng(key)
  n = lambda *s: _normal(rng, *s)
  return [
      Case("7x5-to-3", (n(2, 7, 5, 3), 3)),
      Case("6x6-to-3-divisible", (n(1, 6, 6, 2), 3)),
      Case("7x5-to-2x4-tuple", (n(2, 7, 5, 2), (2, 4))),
      Case("global", (n(2, 5, 3, 2), 1)),
      Case("identity", (n(1, 4, 3, 2), (4, 3))),
  ]


def adaptive_max_pool_cases(key):
  rng = numpy_rng(key)
  return [
      Case("7x5-to-3", (_distinct(rng, 2, 7, 5, 3), 3)),
      Case("6x6-to-3-divisible", (_distinct(rng, 1, 6, 6, 2), 3)),
      Case("7x5-to-2x4-tuple", (_distinct(rng, 2, 7, 5, 2), (2, 4))),
      Case("global", (_distinct(rng, 2, 5, 3, 2), 1)),
      Case("ties-integers", (_integers(rng, 2, 7, 5, 2), 3), finite_differences=False,
           why_no_fd=_TIES),
      Case("ties-constant", (np.ones((1, 5, 5, 1)), (2, 3)), finite_differences=False,
           why_no_fd=_TIES),
  ]


def softmax_cross_entropy_cases(key):
  rng = numpy_rng(key)
  n = lambda *s, **kw: _normal(rng, *s, **kw)
  return [
      Case("mean", (n(4, 5), _labels(rng, 4, 5))),
      Case("sum", (n(4, 5), _labels(rng, 4, 5)), {"reduction": "sum"}),
      Case("none", (n(4, 5), _labels(rng, 4, 5)), {"reduction": "none"}),
      Case("batch1", (n(1, 3), _labels(rng, 1, 3))),
      Case("two-classes", (n(5, 2), _labels(rng, 5, 2)), {"reduction": "sum"}),
      Case("large-logits", (n(3, 4, scale=30.0, offset=1000.0), _labels(rng, 3, 4))),
  ]


def _binary_loss_cases(kink):
  """Cases for a binary loss on scores (N,); ``kink`` adds hinge's margin-exactly-1 case."""
  def make(key):
    rng = numpy_rng(key)
    def case(name, n, kind, scale=1.0, **kwargs):
      labels = _binary_labels(rng, n, kind)
      signed = np.where(labels > 0, 1.0, -1.0)
      # The margin t*s stays >= 0.05*scale away from 1, so the hinge's kink never lies
      # within a finite-difference step.
      margin = 1.0 + scale * (_away_from(rng, (n,), kink=1.0, gap=0.05) - 1.0)
      return Case(name, (margin * signed, labels), kwargs)
    cases = [
        case("labels01-mean", 6, "01"),
        case("labelspm1-mean", 6, "pm1"),
        case("labels01-sum", 5, "01", reduction="sum"),
        case("labelspm1-none", 5, "pm1", reduction="none"),
        case("batch1", 1, "pm1"),
        case("large-scores", 6, "01", scale=40.0, reduction="sum"),
    ]
    if kink:
      labels = _binary_labels(rng, 6, "pm1")
      signed = labels.astype(np.float64)
      margin_one = np.where(np.arange(6) % 2 == 0, signed, 3.0 * signed)
      cases.append(Case("margin-exactly-1", (margin_one, labels), {"reduction": "sum"},
                        finite_differences=False,
                        why_no_fd="t*s == 1 is the hinge's kink (gradient 0 there by convention)"))
      cases.append(Case("margin-exactly-1-labels01", (margin_one, (labels > 0).astype(np.int32)),
                        finite_differences=False,
                        why_no_fd="t*s == 1 is the hinge's kink (gradient 0 there by convention)"))
    return cases
  return make


def squared_error_cases(key):
  rng = numpy_rng(key)
  n = lambda *s: _normal(rng, *s)
  return [
      Case("vector", (n(5), n(5)), differentiable=(0, 1)),
      Case("rank3", (n(2, 3, 4), n(2, 3, 4)), differentiable=(0, 1)),
      Case("batch1", (n(1), n(1)), differentiable=(0, 1)),
  ]


_SPECS = (
    OpSpec("linear", hw.ops.linear, ref.linear, linear_cases),
    OpSpec("relu", hw.ops.relu, ref.relu, relu_cases),
    OpSpec("sigmoid", hw.ops.sigmoid, ref.sigmoid, _smooth_elementwise_cases(large=20.0)),
    OpSpec("tanh", hw.ops.tanh, ref.tanh, _smooth_elementwise_cases(large=8.0)),
    OpSpec("softmax", hw.ops.softmax, ref.softmax, softmax_cases),
    OpSpec("dropout", hw.ops.dropout, ref.dropout, dropout_cases),
    OpSpec("batch_norm", hw.ops.batch_norm, ref.batch_norm, batch_norm_cases),
    OpSpec("conv1d", hw.ops.conv1d, ref.conv1d, conv1d_cases),
    OpSpec("conv2d", hw.ops.conv2d, ref.conv2d, conv2d_cases),
    OpSpec("max_pool", hw.ops.max_pool, ref.max_pool, max_pool_cases),
    OpSpec("avg_pool", hw.ops.avg_pool, ref.avg_pool, avg_pool_cases),
    OpSpec("adaptive_avg_pool", hw.ops.adaptive_avg_pool, ref.adaptive_avg_pool,
           adaptive_avg_pool_cases),
    OpSpec("adaptive_max_pool", hw.ops.adaptive_max_pool, ref.adaptive_max_pool,
           adaptive_max_pool_cases),
    OpSpec("softmax_cross_entropy", hw.ops.softmax_cross_entropy, ref.softmax_cross_entropy,
           softmax_cross_entropy_cases),
    OpSpec("logistic_loss", hw.ops.logistic_loss, ref.logistic_loss,
           _binary_loss_cases(kink=False)),
    OpSpec("hinge_loss", hw.ops.hinge_loss, ref.hinge_loss, _binary_loss_cases(kink=True)),
    OpSpec("squared_error", hw.ops.squared_error, ref.squared_error, squared_error_cases),
)

REGISTRY: dict[str, OpSpec] = {spec.name: spec for spec in _SPECS}


def case_key(seed: int, op_name: str) -> jax.Array:
  """The PRNG key an op's cases are drawn from: fixed per (seed, op name)."""
  digest = sum((i + 1) * ord(ch) for i, ch in enumerate(op_name))
  return jax.random.fold_in(jax.random.key(seed), digest)
