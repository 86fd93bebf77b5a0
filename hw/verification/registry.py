"""The op registry: every public op of ``hw.ops`` with its reference and its test inputs.

One ``OpSpec`` per row ties together the hand-written op, an independent reference built
from JAX primitives (``hw.verification.references``) and ``make_cases(key)``, which
returns the inputs it is checked on. ``hw verify``, ``tests/test_gradients.py`` and
``tests/test_no_autodiff.py`` all iterate over ``REGISTRY``; adding an op means adding
one entry to ``_SPECS``.

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


def conv1d_cases(key):
  """The automatic choice (these few-channel layers take the "shift" path)."""
  rng = numpy_rng(key)
  n = lambda *s: _normal(rng, *s)
  return [
      Case("k3", (n(2, 6, 3), n(3, 3, 4), n(4)), differentiable=(0, 1, 2)),
      Case("batch1-nobias", (n(1, 5, 2), n(2, 2, 3), None), differentiable=(0, 1)),
      Case("k1", (n(2, 4, 3), n(1, 3, 2), n(2)), differentiable=(0, 1, 2)),
      Case("k-equals-length", (n(2, 5, 1), n(5, 1, 2), n(2)), differentiable=(0, 1, 2)),
  ]


def conv1d_path_cases(key):
  """Cases for a row that pins one conv algorithm."""
  rng = numpy_rng(key)
  n = lambda *s: _normal(rng, *s)
  return [
      Case("k3", (n(2, 6, 3), n(3, 3, 4), n(4)), differentiable=(0, 1, 2)),
      Case("batch1-k1-nobias", (n(1, 5, 2), n(1, 2, 3), None), differentiable=(0, 1)),
      Case("k-equals-length", (n(2, 5, 1), n(5, 1, 2), n(2)), differentiable=(0, 1, 2)),
      Case("c5-k4", (n(3, 9, 5), n(4, 5, 2), n(2)), differentiable=(0, 1, 2)),
  ]


def _conv2d_case(name, rng, x_shape, w_shape, *, bias=True, stride=1, padding="VALID"):
  x, w = _normal(rng, *x_shape), _normal(rng, *w_shape)
  b = _normal(rng, w_shape[3]) if bias else None
  return Case(name, (x, w, b), {"stride": stride, "padding": padding},
              differentiable=(0, 1, 2) if bias else (0, 1))


# The automatic choice's row: one case per algorithm it picks (the name after "picks-"),
# with the channel counts and kernel sizes that send a layer there.
def conv2d_cases(key):
  rng = numpy_rng(key)
  return [
      _conv2d_case("picks-shift", rng, (2, 6, 5, 1), (3, 3, 1, 2)),
      _conv2d_case("picks-im2col", rng, (1, 6, 6, 4), (5, 5, 4, 8), padding="SAME"),
      _conv2d_case("picks-lax_im2col", rng, (1, 6, 6, 1), (5, 5, 1, 32), bias=False),
      _conv2d_case("picks-lax_matmul_dw", rng, (2, 5, 5, 5), (3, 3, 5, 2), padding=1),
      _conv2d_case("picks-lax", rng, (2, 6, 6, 5), (4, 4, 5, 2), stride=2, padding="SAME"),
  ]


# A row that pins one algorithm: every stride and padding kind, odd and even sizes, SAME
# with asymmetric padding, padding wider than the kernel, trailing rows/columns no window
# reaches, a kernel as large as the image, a 1×1 kernel, batch of one, no bias.
def conv2d_path_cases(key):
  rng = numpy_rng(key)
  return [
      _conv2d_case("s1-same-nonsquare-kernel", rng, (2, 7, 9, 3), (3, 2, 3, 4), padding="SAME"),
      _conv2d_case("s1-valid-kernel-is-image-batch1", rng, (1, 5, 6, 2), (5, 6, 2, 2)),
      _conv2d_case("s2-same-even", rng, (2, 8, 6, 2), (3, 3, 2, 3), stride=2, padding="SAME"),
      _conv2d_case("s2-pad-pair", rng, (2, 6, 7, 2), (3, 3, 2, 2), stride=2, padding=(1, 2)),
      _conv2d_case("s3-same-odd-rect-kernel", rng, (2, 9, 10, 2), (3, 4, 2, 2), stride=3,
                   padding="SAME"),
      _conv2d_case("s3-pad1-odd", rng, (2, 7, 5, 3), (3, 3, 3, 4), stride=3, padding=1),
      _conv2d_case("s2x1-pad4-wider-than-kernel", rng, (1, 5, 5, 1), (3, 3, 1, 1),
                   stride=(2, 1), padding=4),
      _conv2d_case("s3-valid-unused-nobias", rng, (2, 7, 5, 1), (2, 2, 1, 3), bias=False,
                   stride=3),
      _conv2d_case("batch1-k1-s2-nobias", rng, (1, 4, 3, 2), (1, 1, 2, 3), bias=False,
                   stride=2),
  ]


_TIES = "exact ties inside pooling windows: max is not differentiable there"


def _pool_case(name, x, window=2, stride=None, ties=False):
  kwargs = {"window": window} if stride is None else {"window": window, "stride": stride}
  if ties:
    return Case(name, (x,), kwargs, finite_differences=False, why_no_fd=_TIES)
  return Case(name, (x,), kwargs)


# Max pooling. The automatic row: one case per path it picks ("blocks" when stride ==
# window). The "blocks" row: windows that tile the input (trailing rows dropped, a
# rectangular window, one window over everything, ties). The "windows" row: overlaps,
# gaps between windows, a tiling taken through the general path, ties.
def max_pool_cases(key):
  rng = numpy_rng(key)
  return [
      _pool_case("picks-blocks-w2", _distinct(rng, 2, 6, 6, 3)),
      _pool_case("picks-windows-w3-s2", _distinct(rng, 2, 7, 5, 2), 3, 2),
  ]


def max_pool_blocks_cases(key):
  rng = numpy_rng(key)
  return [
      _pool_case("w2", _distinct(rng, 2, 6, 6, 3)),
      _pool_case("odd-floor", _distinct(rng, 1, 5, 7, 2)),
      _pool_case("rect-2x3", _distinct(rng, 1, 6, 9, 2), (2, 3)),
      _pool_case("global-w5", _distinct(rng, 1, 5, 5, 1), 5),
      _pool_case("ties-integers", _integers(rng, 2, 6, 6, 2), ties=True),
      _pool_case("ties-constant", np.zeros((1, 4, 4, 2)), ties=True),
  ]


def max_pool_windows_cases(key):
  rng = numpy_rng(key)
  return [
      _pool_case("w3-s2-overlap-odd", _distinct(rng, 2, 7, 5, 2), 3, 2),
      _pool_case("w2-s1", _distinct(rng, 1, 5, 5, 1), 2, 1),
      _pool_case("w2-s3-gaps", _distinct(rng, 1, 8, 8, 1), 2, 3),
      _pool_case("rect-2x3-s1", _distinct(rng, 1, 6, 9, 2), (2, 3), 1),
      _pool_case("w2-tiling", _distinct(rng, 2, 6, 6, 3)),
      _pool_case("ties-integers-overlap", _integers(rng, 1, 5, 5, 2), 3, 1, ties=True),
      _pool_case("ties-integers-gaps", _integers(rng, 1, 8, 8, 1), 2, 3, ties=True),
      _pool_case("ties-constant", np.zeros((1, 4, 4, 2)), ties=True),
  ]


def avg_pool_cases(key):
  rng = numpy_rng(key)
  n = lambda *s: _normal(rng, *s)
  return [
      _pool_case("picks-blocks-w2", n(2, 6, 6, 3)),
      _pool_case("picks-windows-w3-s2", n(2, 7, 5, 2), 3, 2),
  ]


def avg_pool_blocks_cases(key):
  rng = numpy_rng(key)
  n = lambda *s: _normal(rng, *s)
  return [
      _pool_case("w2", n(2, 6, 6, 3)),
      _pool_case("odd-floor", n(1, 5, 7, 2)),
      _pool_case("rect-2x3", n(1, 6, 9, 2), (2, 3)),
      _pool_case("global-w5", n(1, 5, 5, 1), 5),
  ]


def avg_pool_windows_cases(key):
  rng = numpy_rng(key)
  n = lambda *s: _normal(rng, *s)
  return [
      _pool_case("w3-s2-overlap-odd", n(2, 7, 5, 2), 3, 2),
      _pool_case("w2-s1", n(1, 5, 5, 1), 2, 1),
      _pool_case("w2-s3-gaps", n(1, 8, 8, 1), 2, 3),
      _pool_case("rect-2x3-s1", n(1, 6, 9, 2), (2, 3), 1),
      _pool_case("w2-tiling", n(2, 6, 6, 3)),
  ]


# Adaptive pooling: "blocks" applies when each output size divides the input size.
def adaptive_avg_pool_cases(key):
  rng = numpy_rng(key)
  n = lambda *s: _normal(rng, *s)
  return [
      Case("picks-blocks-6x6-to-3", (n(1, 6, 6, 2), 3)),
      Case("picks-windows-7x5-to-3", (n(2, 7, 5, 3), 3)),
  ]


def adaptive_avg_pool_blocks_cases(key):
  rng = numpy_rng(key)
  n = lambda *s: _normal(rng, *s)
  return [
      Case("6x6-to-3", (n(1, 6, 6, 2), 3)),
      Case("6x8-to-2x4-tuple", (n(2, 6, 8, 2), (2, 4))),
      Case("global", (n(2, 5, 3, 2), 1)),
      Case("identity", (n(1, 4, 3, 2), (4, 3))),
  ]


def adaptive_avg_pool_windows_cases(key):
  rng = numpy_rng(key)
  n = lambda *s: _normal(rng, *s)
  return [
      Case("7x5-to-3", (n(2, 7, 5, 3), 3)),
      Case("7x5-to-2x4-tuple", (n(2, 7, 5, 2), (2, 4))),
      Case("7x9-to-3x4", (n(2, 7, 9, 3), (3, 4))),
      Case("5x5-to-3-batch1", (n(1, 5, 5, 2), 3)),
      Case("10x7-to-4x7-identity-columns", (n(1, 10, 7, 1), (4, 7))),
      Case("6x6-to-3-divisible", (n(1, 6, 6, 2), 3)),
  ]


def _ties_case(name, x, output_size):
  return Case(name, (x, output_size), finite_differences=False, why_no_fd=_TIES)


def adaptive_max_pool_cases(key):
  rng = numpy_rng(key)
  return [
      Case("picks-blocks-6x6-to-3", (_distinct(rng, 1, 6, 6, 2), 3)),
      Case("picks-windows-7x5-to-3", (_distinct(rng, 2, 7, 5, 3), 3)),
  ]


def adaptive_max_pool_blocks_cases(key):
  rng = numpy_rng(key)
  return [
      Case("6x6-to-3", (_distinct(rng, 1, 6, 6, 2), 3)),
      Case("6x8-to-2x4-tuple", (_distinct(rng, 2, 6, 8, 2), (2, 4))),
      Case("global", (_distinct(rng, 2, 5, 3, 2), 1)),
      _ties_case("ties-integers-divisible", _integers(rng, 2, 6, 4, 2), (3, 2)),
      _ties_case("ties-constant-divisible", np.ones((1, 4, 6, 1)), (2, 3)),
  ]


def adaptive_max_pool_windows_cases(key):
  rng = numpy_rng(key)
  return [
      Case("7x5-to-3", (_distinct(rng, 2, 7, 5, 3), 3)),
      Case("7x5-to-2x4-tuple", (_distinct(rng, 2, 7, 5, 2), (2, 4))),
      Case("7x9-to-3x4", (_distinct(rng, 2, 7, 9, 3), (3, 4))),
      Case("10x7-to-4x7-identity-columns", (_distinct(rng, 1, 10, 7, 1), (4, 7))),
      Case("6x6-to-3-divisible", (_distinct(rng, 1, 6, 6, 2), 3)),
      _ties_case("ties-integers", _integers(rng, 2, 7, 5, 2), 3),
      _ties_case("ties-constant", np.ones((1, 5, 5, 1)), (2, 3)),
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


_CONV_PATHS = {algorithm: conv2d_path_cases for algorithm in hw.ops.ALGORITHMS["conv2d"]}
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
    # SPEC D's t-SNE costs KL(P‖Q), Student-t and Gaussian Q (hw.tsne, beyond hw.ops).
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
