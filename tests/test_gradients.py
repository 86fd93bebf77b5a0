"""Every row of the registry against its autodiff reference, case by case (float64).

This is the one gradient suite of ``hw.ops``: the registry's rows cover every op and
every implementation path (``conv2d[shift]``, ``max_pool[windows]``, ...), and ``hw
verify`` runs the same cases through the same checker (``hw.testing.check_vjp`` in its
fast setting, ``hw.verification.verify.check_case``). Below, the conventions the references carry (tie rules,
kinks, adaptive windows, the dropout mask) are checked against independent computations.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hw.verification import references as ref
from hw.testing._core import fast_compilation
from hw.verification.registry import REGISTRY, case_key
from hw.verification.verify import check_case

CASES = [(spec, case) for spec in REGISTRY.values()
         for case in spec.make_cases(case_key(0, spec.name))]


@pytest.fixture(scope="module", autouse=True)
def _fast_compilation():
  with fast_compilation():
    yield


def test_case_ids_are_unique():
  ids = [f"{spec.name}-{case.name}" for spec, case in CASES]
  assert len(ids) == len(set(ids))


@pytest.mark.parametrize(("spec", "case"), CASES,
                         ids=[f"{spec.name}-{case.name}" for spec, case in CASES])
def test_vjp_matches_reference_and_finite_differences(spec, case):
  result = check_case(spec, case)
  assert not result.error, result.error
  assert result.forward_rel_err <= spec.tolerance, result
  assert result.grad_rel_err <= spec.tolerance, result
  assert result.fd == ("pass" if case.finite_differences else "n.a."), result.fd_note
  assert result.passed, result.failures


# The references carry the tie and window conventions; check those directly.

def test_reference_max_pool_routes_ties_to_first_argmax():
  x = jnp.array([[3.0, 3.0], [1.0, 3.0]]).reshape(1, 2, 2, 1)
  grad = jax.grad(lambda v: ref.max_pool(v).sum())(x)
  np.testing.assert_array_equal(grad.reshape(2, 2), [[1.0, 0.0], [0.0, 0.0]])


def test_reference_adaptive_max_pool_routes_ties_to_first_argmax():
  x = jnp.ones((1, 3, 3, 1))
  grad = jax.grad(lambda v: ref.adaptive_max_pool(v, 1).sum())(x)
  expected = np.zeros((3, 3))
  expected[0, 0] = 1.0
  np.testing.assert_array_equal(grad.reshape(3, 3), expected)


def test_reference_kinks_have_zero_gradient():
  assert float(jax.grad(lambda v: ref.relu(v))(0.0)) == 0.0
  hinge_at_kink = jax.grad(lambda s: ref.hinge_loss(s, jnp.array([1]), reduction="sum"))
  assert float(hinge_at_kink(jnp.array([1.0]))[0]) == 0.0


def test_adaptive_bounds_follow_pytorch():
  assert ref.adaptive_bounds(7, 3) == [(0, 3), (2, 5), (4, 7)]
  assert ref.adaptive_bounds(5, 2) == [(0, 3), (2, 5)]
  assert ref.adaptive_bounds(6, 3) == [(0, 2), (2, 4), (4, 6)]


def test_reference_dropout_is_inverted_dropout():
  key = jax.random.key(3)
  x = jnp.ones((1000,))
  y = ref.dropout(x, key=key, rate=0.25, train=True)
  kept = np.asarray(y) != 0
  np.testing.assert_allclose(np.asarray(y)[kept], 1 / 0.75)
  assert 0.65 < kept.mean() < 0.85
  np.testing.assert_array_equal(ref.dropout(x, key=key, rate=0.25, train=False), x)


def _adaptive_windows(size, out):
  return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def _adaptive_loop(x, output_size, kind, dy):
  """Loop over windows in NumPy: output, and dX (first arg-max in row-major order / mean)."""
  x, dy = np.asarray(x), np.asarray(dy)
  oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
  y, dx = np.zeros(dy.shape), np.zeros(x.shape)
  for i, (top, bottom) in enumerate(_adaptive_windows(x.shape[1], oh)):
    for j, (left, right) in enumerate(_adaptive_windows(x.shape[2], ow)):
      patch = x[:, top:bottom, left:right, :]
      if kind == "avg":
        y[:, i, j] = patch.mean(axis=(1, 2))
        dx[:, top:bottom, left:right] += dy[:, i:i + 1, j:j + 1] / (patch.shape[1] * patch.shape[2])
        continue
      flat = patch.reshape(patch.shape[0], -1, patch.shape[3])
      first = np.argmax(flat, axis=1)  # numpy returns the first maximal index
      y[:, i, j] = flat.max(axis=1)
      for n in range(x.shape[0]):
        for c in range(x.shape[3]):
          r, q = divmod(int(first[n, c]), patch.shape[2])
          dx[n, top + r, left + q, c] += dy[n, i, j, c]
  return y, dx


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("x_shape, output_size", [
    ((2, 7, 9, 3), (3, 4)),   # overlapping windows of different sizes
    ((1, 5, 5, 2), 3),
    ((1, 10, 7, 1), (4, 7)),  # identity along one axis
    ((2, 6, 8, 2), (2, 4)),   # divisible
    ((1, 4, 4, 1), 1),        # global pooling
])
def test_reference_adaptive_pools_match_a_windowwise_numpy_loop(x_shape, output_size, kind):
  """The references of the adaptive pools (which the registry holds hw.ops to) against a
  loop over PyTorch's windows, with ties (small integers) for the max."""
  reference = ref.adaptive_max_pool if kind == "max" else ref.adaptive_avg_pool
  rng = np.random.default_rng(7)
  with jax.enable_x64(True):
    if kind == "max":
      x = jnp.asarray(rng.integers(-2, 3, size=x_shape).astype(np.float64))
    else:
      x = jnp.asarray(rng.standard_normal(x_shape))
    forward = lambda v: reference(v, output_size)
    dy = jnp.asarray(rng.standard_normal(jax.eval_shape(forward, x).shape))

    @jax.jit
    def output_and_cotangent(x, dy):
      y, pullback = jax.vjp(forward, x)
      return y, pullback(dy)[0]
    y, dx = output_and_cotangent(x, dy)
  y_loop, dx_loop = _adaptive_loop(x, output_size, kind, dy)
  np.testing.assert_allclose(y, y_loop, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(dx, dx_loop, rtol=1e-12, atol=1e-12)
