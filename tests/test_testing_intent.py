"""check_vjp on the rules people write (issue 23): arguments in any position, pytrees in
and out, keyword arguments, stated intent (an intended VJP, outputs with no gradient),
the true second order, tolerances that fit float64 rounding, the Taylor test,
per-element finite-difference steps, non-finite values, a plugin that imports no JAX,
``register`` from another module and a mutation run whose baseline crashes."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import hw.testing
from hw.testing import check_vjp

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4))
FAST = dict(vmap=False, float32=False, nondeterminism=False)


# -- the JAX documentation's clip_gradient: (lo, hi, x), a rule no function's VJP equals --

@jax.custom_vjp
def clip_gradient(lo, hi, x):
  return x


def _clip_fwd(lo, hi, x):
  return x, (lo, hi)


def _clip_bwd(res, g):
  lo, hi = res
  return (None, None, jnp.clip(g, lo, hi))


clip_gradient.defvjp(_clip_fwd, _clip_bwd)


def _intended_clip(args, ct):
  lo, hi, _ = args
  return (jnp.clip(ct, lo, hi),)


def test_clip_gradient_with_its_first_arguments_not_differentiated():
  # was: IndexError (finite-difference steps indexed by argument position)
  with pytest.raises(AssertionError, match="state the intent"):
    check_vjp(clip_gradient, -0.3, 0.5, X, **FAST)
  report = check_vjp(clip_gradient, -0.3, 0.5, X, vjp=_intended_clip, argnums=(2,))
  skipped = dict(report.skipped)
  assert "need not be linear" in skipped["zero cotangent"]
  assert "vjp= states the intended VJP" in skipped["finite differences"]
  assert {r.check for r in report.rows} >= {"intended vjp", "vmap", "float32"}
  wrong = lambda args, ct: (jnp.clip(ct, -0.3, 0.4),)
  with pytest.raises(AssertionError, match="intended vjp"):
    check_vjp(clip_gradient, -0.3, 0.5, X, vjp=wrong, **FAST)


# -- pytrees in, pytrees out, keyword arguments -------------------------------------------

def _dense(params, x):
  return jnp.tanh(x @ params["w"] + params["b"])


def _dense_rule(bias_scale):
  @jax.custom_vjp
  def dense(params, x):
    return _dense(params, x)

  def fwd(params, x):
    y = _dense(params, x)
    return y, (params, x, y)

  def bwd(res, dy):
    params, x, y = res
    dz = dy * (1 - y * y)
    return {"w": x.T @ dz, "b": bias_scale * dz.sum(0)}, dz @ params["w"].T
  dense.defvjp(fwd, bwd)
  return dense


PARAMS = {"w": RNG.standard_normal((4, 2)), "b": RNG.standard_normal(2)}


def test_dict_parameters_are_differentiated_leaf_by_leaf():
  # was: "no floating-point array argument"
  report = check_vjp(_dense_rule(1.0), PARAMS, X, reference=_dense, **FAST)
  assert {r.input for r in report.rows} >= {"params['w']", "params['b']", "x"}
  with pytest.raises(AssertionError) as error:
    check_vjp(_dense_rule(1.0 + 1e-6), PARAMS, X, reference=_dense, argnums=0, **FAST)
  assert {r.input for r in error.value.report.failures} == {"params['b']"}


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Affine:
  scale: jax.Array
  shift: jax.Array


def test_dataclass_and_flax_parameters():
  affine = Affine(RNG.standard_normal(4), RNG.standard_normal(4))
  check_vjp(lambda p, x: jnp.sin(p.scale * x + p.shift), affine, X,
            reference=lambda p, x: jnp.sin(p.scale * x + p.shift), **FAST)
  import flax.linen as nn
  model = nn.Dense(3)
  with jax.enable_x64(True):
    params = jax.tree.map(np.asarray, model.init(jax.random.key(0), jnp.zeros((1, 4))))
  report = check_vjp(lambda p, x: model.apply(p, x), params, X, argnums=0, **FAST)
  assert "p['params']['kernel']" in {r.input for r in report.rows}


def test_keyword_arguments_and_argnums_by_name():
  f = lambda x, *, scale: jnp.sin(scale * x)
  scale = RNG.standard_normal(4)
  report = check_vjp(f, X, kwargs={"scale": scale}, argnums=(0, "scale"), reference=f,
                     **FAST)
  assert {"x", "scale"} <= {r.input for r in report.rows}
  with pytest.raises(ValueError, match="argnums names keyword 'shift'"):
    check_vjp(f, X, kwargs={"scale": scale}, argnums=("shift",))


def _loss_and_metric(x):
  return jnp.sum(jnp.square(x)), jnp.max(jnp.abs(x))


def _loss_rule(leak):
  @jax.custom_vjp
  def f(x):
    return _loss_and_metric(x)

  def bwd(x, cts):
    d_loss, d_metric = cts
    return (2 * x * d_loss + leak * d_metric * x,)
  f.defvjp(lambda x: (_loss_and_metric(x), x), bwd)
  return f


def test_several_outputs_and_an_output_with_no_gradient_by_design():
  with pytest.raises(AssertionError, match="reference"):
    check_vjp(_loss_rule(0.0), X, reference=_loss_and_metric, **FAST)
  report = check_vjp(_loss_rule(0.0), X, reference=_loss_and_metric,
                     no_gradient=(False, True), **FAST)
  assert {"output[0]", "output[1]"} <= {r.input for r in report.rows}
  with pytest.raises(AssertionError, match="declared no_gradient"):
    check_vjp(_loss_rule(1e-3), X, reference=_loss_and_metric, no_gradient=(False, True),
              **FAST)


# -- the true second order --------------------------------------------------------------

@jax.custom_jvp
def weighted_cube(x, weights):
  return jnp.sum(weights * x ** 3)


@weighted_cube.defjvp
def _weighted_cube_jvp(primals, tangents):
  x, weights = primals
  dx, _ = tangents
  # The output recomputed through jnp.where(weights != 0, ...) from a stopped x: its
  # first derivative (the tangent) is right, its own derivative is lost.
  y = jnp.sum(jnp.where(weights != 0, weights * lax.stop_gradient(x) ** 3, 0.0))
  return y, jnp.sum(3 * weights * x ** 2 * dx)


def test_second_order_differentiates_through_the_rules_output():
  x = np.array([1.2, -0.7, 2.0])
  weights = np.array([1.0, 0.0, 0.5])
  reference = lambda x, w: jnp.sum(w * x ** 3)
  check_vjp(weighted_cube, x, weights, argnums=0, reference=reference, **FAST)  # order 1
  for intent in ({"reference": reference}, {}):
    with pytest.raises(AssertionError) as error:
      check_vjp(weighted_cube, x, weights, argnums=0, order=2, **intent, **FAST)
    assert {r.check for r in error.value.report.failures} == {"second order"}


# -- tolerances, Taylor, finite-difference steps, non-finite values -------------------------

def _scaled_exp(factor):
  @jax.custom_vjp
  def f(x):
    return jnp.exp(x)
  f.defvjp(lambda x: (jnp.exp(x), x), lambda x, g: (g * jnp.exp(x) * factor,))
  return f


def test_default_tolerance_passes_rounding_and_catches_a_1e_7_bug():
  check_vjp(_scaled_exp(1 + 1.3e-10), X, reference=jnp.exp, **FAST)  # long-sum rounding
  with pytest.raises(AssertionError) as error:
    check_vjp(_scaled_exp(1 + 1e-7), X, reference=jnp.exp, **FAST)
  (failure,) = error.value.report.failures
  assert "rtol 1e-9 (the default)" in failure.note and "iterative solver" in failure.note


def test_taylor_remainder_rate_tells_a_right_gradient_from_a_wrong_one():
  report = check_vjp(_scaled_exp(1.0), X, fd=False, **FAST)
  (row,) = [r for r in report.rows if r.check == "taylor"]
  assert abs(row.value - 2.0) < 0.2
  with pytest.raises(AssertionError, match="falls as h") as error:
    check_vjp(_scaled_exp(1.5), X, fd=False, **FAST)
  (row,) = [r for r in error.value.report.failures if r.check == "taylor"]
  assert abs(row.value - 1.0) < 0.2


@jax.custom_vjp
def root_sum(x):
  return jnp.sum(jnp.sqrt(x))


root_sum.defvjp(lambda x: (root_sum(x), x), lambda x, g: (g / (2 * jnp.sqrt(x)),))


def test_finite_difference_steps_never_cross_zero_for_positive_inputs():
  x = np.array([1e-9, 1.0, 2.0, 3.0, 0.5])  # a step of 1e-3 x spread would go below 0
  check_vjp(root_sum, x, **FAST)


def test_non_finite_outputs_are_rejected_up_front_and_non_finite_gradients_named():
  x = np.array([0.0, 1.0, 2.0])
  with pytest.raises(ValueError, match=r"f returns -inf at output\(0,\)"):
    check_vjp(jnp.log, x)

  @jax.custom_vjp
  def f(x):
    return 2 * x
  f.defvjp(lambda x: (2 * x, x), lambda x, g: (2 * g * x / x,))  # 0/0 at x = 0
  with pytest.raises(AssertionError) as error:
    check_vjp(f, x, reference=lambda x: 2 * x, **FAST)
  message = str(error.value)
  assert "nan" in message and "non-finite" in message
  assert "nondeterminism" not in {r.check for r in error.value.report.failures}


# -- the plugin, register, mutation ------------------------------------------------------

def test_the_plugin_imports_no_jax():
  code = ("import sys, hw.testing.plugin, hw.testing; "
          "assert 'jax' not in sys.modules, 'jax imported'")
  subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_register_files_a_function_under_the_registering_module(tmp_path, monkeypatch):
  (tmp_path / "lib_ops.py").write_text("import jax.numpy as jnp\n\ndef cube(x):\n"
                                       "  return x ** 3\n")
  (tmp_path / "my_checks.py").write_text(
      "import numpy as np\nimport hw.testing\nimport lib_ops\n\n"
      "hw.testing.register(reference=lambda x: x * x * x,\n"
      "                    cases=[np.arange(1.0, 4.0)])(lib_ops.cube)\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  assert set(hw.testing.discover("my_checks")) == {"cube"}
  assert hw.testing.discover("lib_ops") == {}


def test_a_mutation_run_whose_baseline_crashes_scores_nothing():
  import hw.ops
  from hw.testing import Case, OpSpec

  def crashing_reference(x):
    raise RuntimeError("reference crashed")
  registry = {"relu": OpSpec("relu", hw.ops.relu, crashing_reference,
                             lambda key: [Case("positive", (np.arange(1.0, 7.0),))])}
  report = hw.testing.mutation_score("hw.ops", registry, rows=["relu"])
  assert report.total == 0 and report.killed == 0
  assert report.baseline_failures and "relu[positive]" in report.baseline_failures[0]
  assert "baseline fails" in report.table()


def test_a_failure_inside_pytest_shows_the_table_not_the_library(tmp_path):
  (tmp_path / "test_rule.py").write_text(
      "import jax, jax.numpy as jnp, numpy as np\nfrom hw.testing import check_vjp\n\n"
      "@jax.custom_vjp\ndef f(x):\n  return jnp.sin(x)\n"
      "f.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (1.01 * g * jnp.cos(x),))\n\n"
      "def test_rule():\n  check_vjp(f, np.linspace(0.1, 1.0, 4), reference=jnp.sin,\n"
      "            vmap=False, float32=False)\n")
  proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                         "-p", "no:xdist", "-p", "no:randomly", "test_rule.py"],
                        cwd=tmp_path, capture_output=True, text=True, timeout=300)
  out = proc.stdout + proc.stderr
  assert proc.returncode == 1, out
  assert "check(s) failed" in out and "reference" in out
  assert "hw/testing/" not in out.replace("\\", "/"), out  # no frame of the library
