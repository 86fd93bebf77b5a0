"""``hw verify --module`` and ``--mutate`` on a user's module in the current directory
(issue 19): a correct layer norm on inputs of spread 1e-3 passes, the same rule with
``eps`` dropped from its backward pass fails, and a mutation run on the wrong module stops
at its baseline. Each run is a subprocess in ``tmp_path`` with no ``PYTHONPATH``."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

USER_MODULE = textwrap.dedent('''
    import jax
    import jax.numpy as jnp
    import numpy as np

    import hw.testing
    from hw.testing import Case

    EPS = 1e-5


    def reference(x, gamma, beta):
      mean = jnp.mean(x, -1, keepdims=True)
      var = jnp.mean(jnp.square(x - mean), -1, keepdims=True)
      return gamma * (x - mean) / jnp.sqrt(var + EPS) + beta


    def _cases(key):
      rng = np.random.default_rng(0)
      x = 1e-3 * rng.standard_normal((4, 6))   # spread 1e-3: var ~1e-6 < eps
      return [Case("spread-1e-3", (x, rng.standard_normal(6), rng.standard_normal(6)),
                   differentiable=(0, 1, 2))]


    @hw.testing.register(reference=reference, cases=_cases)
    @jax.custom_vjp
    def layer_norm(x, gamma, beta):
      return reference(x, gamma, beta)


    def _fwd(x, gamma, beta):
      return reference(x, gamma, beta), (x, gamma)


    def _bwd(res, dy):
      x, gamma = res
      n = x.shape[-1]
      mean = jnp.mean(x, -1, keepdims=True)
      inv = 1.0 / jnp.sqrt(jnp.mean(jnp.square(x - mean), -1, keepdims=True) + EPS)
      xhat = (x - mean) * inv
      dxhat = dy * gamma
      dx = inv / n * (n * dxhat - jnp.sum(dxhat, -1, keepdims=True)
                      - xhat * jnp.sum(dxhat * xhat, -1, keepdims=True))
      return dx, jnp.sum(dy * xhat, 0), jnp.sum(dy, 0)


    layer_norm.defvjp(_fwd, _bwd)


    def _moments(x):
      return jnp.mean(x, -1), jnp.mean(jnp.square(x), -1)


    @hw.testing.register(reference=_moments,
                         cases=[np.random.default_rng(1).standard_normal((3, 5))])
    @jax.custom_vjp
    def moments(x):
      """Two outputs: the mean and the mean square over the last axis."""
      return _moments(x)


    def _moments_fwd(x):
      return _moments(x), x


    def _moments_bwd(x, cts):
      d_mean, d_square = cts
      n = x.shape[-1]
      return ((d_mean[..., None] + 2 * x * d_square[..., None]) / n,)


    moments.defvjp(_moments_fwd, _moments_bwd)
''')


def _hw_verify(tmp_path, *argv):
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  proc = subprocess.run([sys.executable, "-m", "experiments.cli", "verify", *argv],
                        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
  return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture
def user_module(tmp_path):
  def write(name, text):
    (tmp_path / f"{name}.py").write_text(text)
    return name
  return write


def test_a_correct_layer_norm_at_spread_1e_3_passes_hw_verify_module(tmp_path, user_module):
  name = user_module("my_norms", USER_MODULE)
  code, out = _hw_verify(tmp_path, "--module", name)
  assert code == 0, out
  assert "layer_norm" in out and "moments" in out and "all rows pass" in out
  assert "optimizer" not in out  # hw's optimizer table belongs to hw, not a user module


def test_eps_dropped_from_the_backward_rule_fails_and_mutate_stops_at_the_baseline(
    tmp_path, user_module):
  wrong = USER_MODULE.replace("keepdims=True) + EPS)", "keepdims=True))")
  assert wrong != USER_MODULE
  name = user_module("my_wrong_norms", wrong)
  code, out = _hw_verify(tmp_path, "--module", name)
  assert code == 1, out
  assert "FAIL layer_norm" in out
  code, out = _hw_verify(tmp_path, "--mutate", name)
  assert code == 1, out
  assert "baseline fails" in out and "layer_norm[spread-1e-3]" in out
  assert "mutants killed" not in out
