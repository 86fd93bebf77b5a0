"""Registry cases for ``tsne_kl`` and ``sne_kl``, in the format of ``hw.verification``.

``make_cases(key)`` returns ``hw.verification.registry.Case`` objects (imported when
called, so that the registry may import this module without a cycle), and
:func:`op_specs` the two ``OpSpec`` entries for ``hw verify``. Awkward inputs: the
smallest non-degenerate N (3; with N = 2, q₁₂ = ½ whatever Y is and the gradient is
identically 0), a 1-D and a 3-D embedding, coincident points (distance exactly 0),
far-apart and nearly collapsed embeddings, an exaggerated P (summing to 12, which
exercises the S = Σp factor), an asymmetric unnormalised P with a non-zero diagonal,
and P with exact zeros (where ∂C/∂p is one-sided, so no finite differences in P).
"""
from __future__ import annotations

import numpy as np


def _joint_p(rng, n, *, floor=5.0, zero_fraction=0.0):
  """A symmetric P with zero diagonal summing to one, off-diagonal entries at least
  ``2 floor / ((2 floor + 2) N²)`` unless zeroed: for N ≤ 6 that keeps every pᵢⱼ
  above 0.023. Central differences in P (step 1e-4) err by about 1e-8/(6p²) per entry
  through p log p, so only cases with large entries (N = 3, P × 12, the asymmetric
  one) and one N = 6 case differentiate P; the rest differentiate Y only."""
  raw = rng.random((n, n)) + floor
  raw = raw + raw.T
  if zero_fraction:
    upper = np.triu(rng.random((n, n)) < zero_fraction, 1)
    raw[upper | upper.T] = 0.0
  np.fill_diagonal(raw, 0.0)
  return raw / raw.sum()


def make_cases(key):
  """The cases of both costs (the same inputs suit the Student-t and Gaussian kernels)."""
  from hw.verification.registry import Case, numpy_rng
  rng = numpy_rng(key)
  normal = lambda *shape, scale=1.0: scale * rng.standard_normal(shape)
  both = (0, 1)
  coincident = normal(6, 2)
  coincident[3] = coincident[1]
  asymmetric = 3.0 * rng.random((5, 5)) + 0.05
  sparse = _joint_p(rng, 6, zero_fraction=0.4)
  sparse_y = normal(6, 2)
  one_sided = "p_ij = 0 is the edge of p log p's domain (infinite one-sided slope)"
  return [
      Case("n8-2d", (normal(8, 2), _joint_p(rng, 8))),
      Case("n3-1d", (normal(3, 1), _joint_p(rng, 3)), differentiable=both),
      Case("n6-3d", (normal(6, 3), _joint_p(rng, 6))),
      Case("n40-2d", (normal(40, 2), _joint_p(rng, 40))),
      Case("n6-2d-grad-p", (normal(6, 2), _joint_p(rng, 6)), differentiable=both),
      Case("coincident-points", (coincident, _joint_p(rng, 6))),
      Case("far-apart", (normal(6, 2, scale=4.0), _joint_p(rng, 6))),
      # the points spread over ~1e-3 but the cost varies on the kernel's unit scale, so
      # check_vjp's default step (1e-3 of the spread, ~1e-6) leaves mostly rounding
      Case("nearly-collapsed", (normal(6, 2, scale=1e-3), _joint_p(rng, 6)), fd_step=0.1),
      Case("exaggerated-p-x12", (normal(6, 2), 12.0 * _joint_p(rng, 6)), differentiable=both),
      Case("asymmetric-unnormalised-p", (normal(5, 2), asymmetric), differentiable=both),
      Case("p-exact-zeros", (sparse_y, sparse)),
      Case("p-exact-zeros-grad-p", (sparse_y, sparse), differentiable=both,
           finite_differences=False, why_no_fd=one_sided),
  ]


def op_specs():
  """``OpSpec("tsne_kl", …)`` and ``OpSpec("sne_kl", …)`` for the op registry."""
  from hw.tsne import cost, reference
  from hw.verification.registry import OpSpec
  return [OpSpec("tsne_kl", cost.tsne_kl, reference.tsne_kl, make_cases),
          OpSpec("sne_kl", cost.sne_kl, reference.sne_kl, make_cases)]
