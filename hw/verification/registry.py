"""The op registry: every public op of ``hw.ops`` with its reference and its test inputs.

One ``OpSpec`` per row ties together the hand-written op, an independent reference built
from JAX primitives (``hw.verification.references``) and ``make_cases(key)``, which
returns the inputs it is checked on. ``hw verify``, ``tests/test_gradients.py`` and
``tests/test_no_autodiff.py`` all iterate over ``REGISTRY``; adding an op means adding
one entry to ``_SPECS``. The case makers of the convolution and pooling rows live in
``hw.verification.conv_pool_cases`` (imported here under the same names).

An op with several implementation paths (``hw.ops.ALGORITHMS``: the conv algorithms, the
pooling "blocks"/"windows" paths) has one row for its automatic choice, named after the
op (cases that make the choice land on each path it can take), and one row per path,
``"<op>[<algorithm>]"``, whose cases all run with ``algorithm=<algorithm>`` pinned. So
every path is checked by ``hw verify`` itself on the awkward cases, whatever shapes the
automatic choice would send to it.

Case inputs are NumPy float64 arrays (labels int32), so they keep their precision no
matter whether JAX's 64-bit mode is on where they are built; the checks run them under
``jax.enable_x64(True)``.
"""
from __future__ import annotations

import zlib
from typing import Callable, Mapping

import jax
import numpy as np

import hw.ops
import hw.tsne
from hw.testing import cases as generators
from hw.testing._core import Case, OpSpec
from hw.testing.cases import numpy_rng
from hw.tsne import reference as tsne_reference
from hw.tsne import verification as tsne_verification
from hw.verification import references as ref
from hw.verification.conv_pool_cases import (  # the conv and pooling rows' inputs
    adaptive_avg_pool_blocks_cases, adaptive_avg_pool_cases, adaptive_avg_pool_windows_cases,
    adaptive_max_pool_blocks_cases, adaptive_max_pool_cases, adaptive_max_pool_windows_cases,
    avg_pool_blocks_cases, avg_pool_cases, avg_pool_windows_cases, conv1d_cases,
    conv1d_path_cases, conv2d_cases, conv2d_path_cases, conv2d_winograd_cases,
    max_pool_blocks_cases, max_pool_cases, max_pool_windows_cases)


# The case generators live in hw.testing.cases (users combine the same ones).
_normal = generators.normal
_away_from = generators.away_from
_distinct = generators.distinct
_integers = generators.integers
_labels = generators.labels
_binary_labels = generators.binary_labels


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
  with_zeros = generators.with_zeros(rng, 4, 5, fraction=0.4)
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


def _with_paths(name: str, reference: Callable, make_cases, path_cases: Mapping[str, Callable],
                **options) -> tuple[OpSpec, ...]:
  """The automatic row of ``hw.ops.<name>`` and one row per implementation path."""
  op = getattr(hw.ops, name)
  return (OpSpec(name, op, reference, make_cases, **options),) + tuple(
      OpSpec(f"{name}[{algorithm}]", op, reference, path_cases[algorithm],
             algorithm=algorithm, **options)
      for algorithm in hw.ops.ALGORITHMS[name])


def _pool_paths(blocks, windows):
  return {"blocks": blocks, "windows": windows}


_CONV_PATHS = {algorithm: (conv2d_winograd_cases if algorithm == "winograd"
                           else conv2d_path_cases)
               for algorithm in hw.ops.ALGORITHMS["conv2d"]}
_CONV1D_PATHS = {algorithm: conv1d_path_cases for algorithm in hw.ops.ALGORITHMS["conv1d"]}

_SPECS = (
    OpSpec("linear", hw.ops.linear, ref.linear, linear_cases),
    OpSpec("relu", hw.ops.relu, ref.relu, relu_cases),
    OpSpec("sigmoid", hw.ops.sigmoid, ref.sigmoid, _smooth_elementwise_cases(large=20.0)),
    OpSpec("tanh", hw.ops.tanh, ref.tanh, _smooth_elementwise_cases(large=8.0)),
    OpSpec("softmax", hw.ops.softmax, ref.softmax, softmax_cases),
    OpSpec("dropout", hw.ops.dropout, ref.dropout, dropout_cases),
    OpSpec("batch_norm", hw.ops.batch_norm, ref.batch_norm, batch_norm_cases),
    *_with_paths("conv1d", ref.conv1d, conv1d_cases, _CONV1D_PATHS),
    *_with_paths("conv2d", ref.conv2d, conv2d_cases, _CONV_PATHS),
    *_with_paths("max_pool", ref.max_pool, max_pool_cases,
                 _pool_paths(max_pool_blocks_cases, max_pool_windows_cases)),
    *_with_paths("avg_pool", ref.avg_pool, avg_pool_cases,
                 _pool_paths(avg_pool_blocks_cases, avg_pool_windows_cases)),
    *_with_paths("adaptive_avg_pool", ref.adaptive_avg_pool, adaptive_avg_pool_cases,
                 _pool_paths(adaptive_avg_pool_blocks_cases, adaptive_avg_pool_windows_cases)),
    *_with_paths("adaptive_max_pool", ref.adaptive_max_pool, adaptive_max_pool_cases,
                 _pool_paths(adaptive_max_pool_blocks_cases, adaptive_max_pool_windows_cases)),
    OpSpec("softmax_cross_entropy", hw.ops.softmax_cross_entropy, ref.softmax_cross_entropy,
           softmax_cross_entropy_cases),
    OpSpec("logistic_loss", hw.ops.logistic_loss, ref.logistic_loss,
           _binary_loss_cases(kink=False)),
    OpSpec("hinge_loss", hw.ops.hinge_loss, ref.hinge_loss, _binary_loss_cases(kink=True)),
    OpSpec("squared_error", hw.ops.squared_error, ref.squared_error, squared_error_cases),
    # Assignment D's t-SNE costs KL(P‖Q), Student-t and Gaussian Q (hw.tsne, beyond hw.ops).
    OpSpec("tsne_kl", hw.tsne.tsne_kl, tsne_reference.tsne_kl, tsne_verification.make_cases),
    OpSpec("sne_kl", hw.tsne.sne_kl, tsne_reference.sne_kl, tsne_verification.make_cases),
)

REGISTRY: dict[str, OpSpec] = {spec.name: spec for spec in _SPECS}


def rows_of(name: str, registry: Mapping[str, OpSpec] = REGISTRY) -> list[str]:
  """The names of the rows of op ``name``: its automatic row and its ``[algorithm]`` rows."""
  return [row for row, spec in registry.items() if row == name or spec.function == name]


def case_key(seed: int, row_name: str) -> jax.Array:
  """The PRNG key a row's cases are drawn from: fixed per (seed, row name).

  The row name enters through its CRC-32 (stable across runs, platforms and Python
  versions, unlike ``hash``), folded into the seed's key.
  """
  return jax.random.fold_in(jax.random.key(seed), zlib.crc32(row_name.encode("utf-8")))
