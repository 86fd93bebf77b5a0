"""An independent lasso solver: cyclic coordinate descent in NumPy (float64).

It shares no code with ``hw.optim.prox`` and takes a different route to the same
minimiser, so agreement between the two is evidence for both. Minimising
``F(x) = ½‖Ax − b‖² + λ‖x‖₁`` over the single coordinate ``x_j`` with the others
fixed: writing ``r = b − Ax + a_j x_j`` (the residual without coordinate j), the
one-dimensional problem is ``½‖r − a_j x_j‖² + λ|x_j|``, whose minimiser is

    x_j = sign(ρ) max(|ρ| − λ, 0) / ‖a_j‖²,   ρ = a_jᵀ r.

Sweeping j = 1 … n repeatedly decreases F monotonically and converges to a minimiser
(Tseng 2001: the non-smooth part is separable).
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class CoordinateDescentResult:
  """Result of :func:`lasso_coordinate_descent`.

  Attributes:
    x: the solution.
    objective: ``F(x)``.
    sweeps: full passes over the coordinates.
    max_change: the largest change of a coordinate in the last sweep.
  """
  x: np.ndarray
  objective: float
  sweeps: int
  max_change: float


def lasso_coordinate_descent(a, b, lam: float, *, tolerance: float = 1e-14,
                             max_sweeps: int = 100_000) -> CoordinateDescentResult:
  """Solve ``min_x ½‖Ax − b‖² + λ‖x‖₁`` by cyclic coordinate descent.

  Keeps the residual ``r = b − Ax`` up to date (O(m) per coordinate). Stops when no
  coordinate moved by more than ``tolerance`` times ``max(1, max|x|)`` in a sweep.

  Args:
    a: (m, n) matrix with no all-zero column.
    b: (m,) vector.
    lam: λ ≥ 0.
    tolerance: stopping threshold on the largest coordinate change of a sweep.
    max_sweeps: the most sweeps.

  Returns:
    A :class:`CoordinateDescentResult`.
  """
  a = np.asarray(a, dtype=np.float64)
  b = np.asarray(b, dtype=np.float64)
  m, n = a.shape
  column_norms = np.einsum("ij,ij->j", a, a)
  if np.any(column_norms == 0):
    raise ValueError("`a` has an all-zero column; its coordinate is undetermined")
  columns = np.ascontiguousarray(a.T)
  x = np.zeros(n)
  residual = b.copy()
  sweeps, max_change = 0, np.inf
  while sweeps < max_sweeps:
    sweeps += 1
    max_change = 0.0
    for j in range(n):
      column = columns[j]
      rho = column @ residual + column_norms[j] * x[j]
      new = np.sign(rho) * max(abs(rho) - lam, 0.0) / column_norms[j]
      change = new - x[j]
      if change != 0.0:
        residual -= change * column
        x[j] = new
        max_change = max(max_change, abs(change))
    if max_change <= tolerance * max(1.0, float(np.max(np.abs(x)))):
      break
  objective = 0.5 * float(residual @ residual) + lam * float(np.sum(np.abs(x)))
  return CoordinateDescentResult(x=x, objective=objective, sweeps=sweeps, max_change=max_change)
