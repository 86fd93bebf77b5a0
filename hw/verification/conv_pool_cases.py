"""The test inputs of the registry's convolution and pooling rows (``hw.verification.registry``
ties each maker to its op): ``<op>_cases`` for an op's automatic row, ``<op>_path_cases`` or
``<op>_blocks_cases`` / ``<op>_windows_cases`` for the rows that pin one path. Inputs are
NumPy float64 arrays, drawn from ``hw.testing.cases``' generators."""
from __future__ import annotations

import numpy as np

from hw.testing import cases as generators
from hw.testing._core import Case
from hw.testing.cases import numpy_rng

_normal = generators.normal
_distinct = generators.distinct
_integers = generators.integers


def conv1d_cases(key):
  """The automatic choice (these layers, at most 4 channels in and 8 out, take "lax")."""
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
      _conv2d_case("picks-shift", rng, (2, 6, 5, 1), (3, 3, 1, 9)),
      _conv2d_case("picks-shift-three-channels-wide", rng, (1, 5, 5, 3), (3, 3, 3, 32),
                   padding="SAME"),
      _conv2d_case("picks-im2col", rng, (1, 6, 6, 4), (5, 5, 4, 11), padding="SAME"),
      _conv2d_case("picks-dense", rng, (2, 2, 2, 6), (3, 3, 6, 5), padding="SAME"),
      _conv2d_case("picks-im2col-tiny-output", rng, (1, 7, 6, 5), (5, 5, 5, 3), stride=2),
      _conv2d_case("picks-lax_im2col", rng, (1, 6, 6, 1), (5, 5, 1, 48), bias=False),
      _conv2d_case("picks-lax_matmul_dw", rng, (2, 5, 5, 5), (3, 3, 5, 2), padding=1),
      _conv2d_case("picks-lax", rng, (2, 6, 6, 5), (4, 4, 5, 2), stride=2, padding="SAME"),
      _conv2d_case("picks-shift_lax", rng, (4, 6, 5, 3), (3, 3, 3, 4), padding="SAME"),
      _conv2d_case("picks-winograd", rng, (2, 9, 10, 16), (3, 3, 16, 3), padding="SAME"),
  ]


# A row that pins one algorithm: every stride and padding kind, odd and even sizes, SAME
# with asymmetric padding, padding wider than the kernel, trailing rows/columns no window
# reaches, a kernel as large as the image, a 1×1 kernel, batches of 1 to 4, no bias.
def conv2d_path_cases(key):
  rng = numpy_rng(key)
  return [
      _conv2d_case("s1-same-nonsquare-kernel-batch4", rng, (4, 7, 9, 3), (3, 2, 3, 4),
                   padding="SAME"),
      _conv2d_case("s1-valid-kernel-is-image-batch1", rng, (1, 5, 6, 2), (5, 6, 2, 2)),
      _conv2d_case("s2-same-even", rng, (2, 8, 6, 2), (3, 3, 2, 3), stride=2, padding="SAME"),
      _conv2d_case("s2-pad-pair", rng, (2, 6, 7, 2), (3, 3, 2, 2), stride=2, padding=(1, 2)),
      _conv2d_case("s3-same-odd-rect-kernel", rng, (2, 9, 10, 2), (3, 4, 2, 2), stride=3,
                   padding="SAME"),
      _conv2d_case("s3-pad1-odd-batch3", rng, (3, 7, 5, 3), (3, 3, 3, 4), stride=3, padding=1),
      _conv2d_case("s2x1-pad4-wider-than-kernel", rng, (1, 5, 5, 1), (3, 3, 1, 1),
                   stride=(2, 1), padding=4),
      _conv2d_case("s3-valid-unused-nobias", rng, (2, 7, 5, 1), (2, 2, 1, 3), bias=False,
                   stride=3),
      _conv2d_case("batch1-k1-s2-nobias", rng, (1, 4, 3, 2), (1, 1, 2, 3), bias=False,
                   stride=2),
  ]


# The Winograd row (3×3 kernels at stride 1 only): odd and even output sizes (a last tile
# row/column half outside the output), SAME, VALID, asymmetric and wide padding, an image
# as small as the kernel (one output), a 2×2 map padded, batch of one, no bias.
def conv2d_winograd_cases(key):
  rng = numpy_rng(key)
  return [
      _conv2d_case("same-odd-rect", rng, (2, 7, 9, 3), (3, 3, 3, 4), padding="SAME"),
      _conv2d_case("same-even", rng, (2, 6, 8, 2), (3, 3, 2, 3), padding="SAME"),
      _conv2d_case("valid-odd-output", rng, (2, 7, 6, 2), (3, 3, 2, 2)),
      _conv2d_case("valid-one-output-batch1", rng, (1, 3, 3, 4), (3, 3, 4, 2)),
      _conv2d_case("pad-pair-asymmetric", rng, (2, 5, 6, 2), (3, 3, 2, 3), padding=(2, 0)),
      _conv2d_case("pad3-wider-than-kernel-nobias", rng, (1, 4, 5, 2), (3, 3, 2, 2),
                   bias=False, padding=3),
      _conv2d_case("tiny-map-same-c1", rng, (3, 2, 2, 1), (3, 3, 1, 5), padding="SAME"),
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
