"""Every op of the registry against its autodiff reference, case by case (float64)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hw.verification import references as ref
from hw.verification.checks import check_case, fast_compilation
from hw.verification.registry import REGISTRY, case_key

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
  if case.finite_differences:
    assert result.fd == "pass", result.fd_note
  assert result.passed


def test_check_grads_mode_agrees_on_one_case():
  """The fused finite-difference check and jax.test_util.check_grads give the same verdict."""
  spec = REGISTRY["batch_norm"]
  case = spec.make_cases(case_key(0, "batch_norm"))[0]
  with jax.enable_x64(True):
    assert check_case(spec, case, fd="check_grads").fd == "pass"
  assert check_case(spec, case, fd="fused").fd == "pass"


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
