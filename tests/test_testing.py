"""hw.testing: check_vjp's checks, its failure table and its errors on bad use; the case
generators; register/discover and ``hw verify --module``; the mutation score."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hw.ops
import hw.testing
from hw.testing import Case, cases, check_vjp
from hw.verification import references as ref


def _lse(scale=1.0):
  @jax.custom_vjp
  def lse(x):
    return jax.nn.logsumexp(x, axis=-1)

  def fwd(x):
    y = lse(x)
    return y, (x, y)

  def bwd(res, dy):
    x, y = res
    return (dy[..., None] * jnp.exp(x - y[..., None]) * scale,)
  lse.defvjp(fwd, bwd)
  return lse


def _reference_lse(x):
  return jax.nn.logsumexp(x, axis=-1)


X = np.random.default_rng(0).standard_normal((3, 5))


def test_a_correct_rule_passes_every_check():
  report = check_vjp(_lse(), X, reference=_reference_lse, order=2)
  assert report.passed
  checks = {r.check for r in report.rows}
  assert {"shape/dtype", "zero cotangent", "jit", "nondeterminism", "value", "reference",
          "finite differences", "fd h vs h/2", "vmap", "second order", "float32"} <= checks
  assert report.cotangents == "all 3 basis vectors"
  assert report.worst()["reference"] <= 1e-10


def test_a_perturbed_rule_fails_with_a_table():
  with pytest.raises(AssertionError) as error:
    check_vjp(_lse(1 + 1e-7), X, reference=_reference_lse)
  message = str(error.value)
  for column in ("input", "check", "worst element", "value", "reference", "rel err",
                 "tolerance"):
    assert column in message.splitlines()[1]
  (failure,) = error.value.report.failures
  assert (failure.input, failure.check) == ("x", "reference")
  assert 0.5e-7 < failure.rel_err < 2e-7 and failure.tolerance == 1e-9
  assert "rtol 1e-9 (the default)" in failure.note  # the tolerance rule, in the failure
  assert failure.index.startswith("dout(")


def test_large_outputs_get_random_cotangents():
  report = check_vjp(_lse(), X, reference=_reference_lse, max_basis=2, vmap=False,
                     float32=False, random_cotangents=4)
  assert report.cotangents.startswith("4 random")


def test_kinks_skip_finite_differences_with_the_reason_and_are_detected_otherwise():
  x = np.array([[0.0, 1.0, -2.0], [0.0, 0.0, 3.0]])
  at_zero = lambda v: "relu has a kink at 0" if (np.asarray(v) == 0).any() else False
  report = check_vjp(hw.ops.relu, x, reference=ref.relu, kinks=at_zero)
  assert ("finite differences", "relu has a kink at 0") in report.skipped
  with pytest.raises(AssertionError, match="fd h vs h/2"):
    check_vjp(hw.ops.relu, x, reference=ref.relu)


def test_integer_labels_get_float0_and_a_case_carries_its_options():
  case = Case("sum", (np.random.default_rng(1).standard_normal((4, 3)),
                      np.array([0, 2, 1, 1], np.int32)), {"reduction": "sum"})
  report = check_vjp(hw.ops.softmax_cross_entropy, case, reference=ref.softmax_cross_entropy)
  (row,) = [r for r in report.rows if r.check == "float0"]
  assert row.input == "labels" and row.passed
  assert report.name == "softmax_cross_entropy[sum]"


def test_a_case_carries_its_finite_difference_step():
  # t-SNE's nearly-collapsed points spread over ~1e-3 while the cost varies on the unit
  # scale: the default step (1e-3 of the spread) leaves mostly rounding, the case's 0.1 not
  import hw.tsne
  from hw.tsne import reference as tsne_reference
  from hw.tsne import verification as tsne_verification
  (case,) = [c for c in tsne_verification.make_cases(jax.random.key(0))
             if c.name == "nearly-collapsed"]
  assert case.fd_step == 0.1
  check_vjp(hw.tsne.tsne_kl, case, reference=tsne_reference.tsne_kl, float32=False)
  with pytest.raises(AssertionError, match="finite"):
    check_vjp(hw.tsne.tsne_kl, case, reference=tsne_reference.tsne_kl, float32=False,
              fd_step=1e-3)


def test_a_wrong_gradient_dtype_is_named():
  @jax.custom_vjp
  def f(x):
    return 2 * x
  f.defvjp(lambda x: (2 * x, None), lambda _, g: ((2 * g).astype(jnp.float32),))
  with pytest.raises(AssertionError, match="dtype float32; the input has shape"):
    check_vjp(f, X, reference=lambda x: 2 * x, float32=False)


def test_a_rule_not_linear_in_the_cotangent_fails_the_zero_cotangent_check():
  @jax.custom_vjp
  def f(x):
    return 2 * x
  f.defvjp(lambda x: (2 * x, x), lambda x, g: (2 * g + 1e-12 * x,))
  with pytest.raises(AssertionError) as error:
    check_vjp(f, X, vmap=False, float32=False)
  assert "zero cotangent" in {r.check for r in error.value.report.failures}


def test_bad_use_is_named():
  with pytest.raises(ValueError, match="reference returns"):
    check_vjp(_lse(), X, reference=lambda x: x)
  with pytest.raises(ValueError, match="labels .*not differentiable"):
    check_vjp(hw.ops.softmax_cross_entropy, X, np.array([0, 1, 2], np.int32), argnums=(0, 1))
  bad = X.copy()
  bad[1, 2] = np.nan
  with pytest.raises(ValueError, match=r"non-finite value.*\(1, 2\)"):
    check_vjp(_lse(), bad)
  with pytest.raises(ValueError, match="not jittable"):
    check_vjp(lambda x: x * float(jnp.sum(x)), X)
  with pytest.raises(TypeError, match="tolerance"):  # options are keyword parameters
    check_vjp(_lse(), X, tolerance=1e-3)


def test_an_unjittable_function_can_still_be_checked_eagerly():
  @jax.custom_vjp
  def branchy(x):
    return 2 * x

  def bwd(_, g):  # Python control flow on the cotangent: fine eagerly, not under jit
    return (jnp.zeros_like(g) if float(jnp.max(jnp.abs(g))) == 0 else 2 * g,)
  branchy.defvjp(lambda x: (2 * x, None), bwd)
  with pytest.raises(ValueError, match="cannot run under jax.jit"):
    check_vjp(branchy, X)
  report = check_vjp(branchy, X, reference=lambda x: 2 * x, jit=False, float32=False)
  assert ("jit", "jit=False") in report.skipped


# -------------------------------------------------------------------------- cases

def test_awkward_cases_cover_the_awkward_inputs():
  made = {c.name: c for c in cases.awkward((4, 6), seed=1, kinks=(0.0,))}
  assert {"random", "batch-of-one", "odd-prime-sizes", "scale-0.001", "scale-1000",
          "exact-zeros", "exact-ties", "at-kinks"} <= set(made)
  assert made["batch-of-one"].args[0].shape == (1, 6)
  assert all(s % 2 for s in made["odd-prime-sizes"].args[0].shape)
  assert (made["at-kinks"].args[0] == 0).any() and not made["at-kinks"].finite_differences
  assert (made["exact-zeros"].args[0] == 0).any() and not made["exact-zeros"].finite_differences
  assert np.abs(made["random"].args[0]).min() >= 0.05  # a gap from the kink
  rng = cases.numpy_rng(0)
  assert set(cases.binary_labels(rng, 50, "pm1")) == {-1, 1}
  assert set(cases.binary_labels(rng, 50, "01")) == {0, 1}
  values = cases.at_kinks(rng, (200,), (1.0, -1.0))
  assert (values == 1.0).any() and (values == -1.0).any()
  near = values[(values != 1.0) & (values != -1.0)]
  assert np.abs(np.abs(near) - 1.0).min() >= 0.05 - 1e-12


def test_vjp_cases_parametrizes_with_case_names():
  mark = hw.testing.vjp_cases(cases.awkward((2, 3), magnitudes=()), Case("extra", (X,)))
  argname, values = mark.args[0], mark.args[1]
  assert argname == "case" and values[-1].name == "extra"
  assert mark.kwargs["ids"][0] == "random"


# ----------------------------------------------------------- register and --module

def test_register_and_hw_verify_module(capsys, monkeypatch):

  from pathlib import Path
  from hw.verification import verify
  monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "examples"))
  rows = hw.testing.discover("vjp_demo.ops")
  assert set(rows) == {"logsumexp", "layer_norm"}
  assert verify.main(["--module", "vjp_demo.ops", "--json"]) == 0
  data = json.loads(capsys.readouterr().out)
  assert data["passed"] and {op["op"] for op in data["ops"]} == {"logsumexp", "layer_norm"}
  assert verify.main(["--module", "vjp_demo.ops", "--ops", "logsumexp"]) == 0
  assert "logsumexp" in capsys.readouterr().out
  mutation = hw.testing.mutation_score("vjp_demo.ops", rows=["logsumexp"])
  assert mutation.killed == mutation.total == 2
  assert verify.main(["--module", "json"]) == 2
  assert "registers no function" in capsys.readouterr().err



# ------------------------------------------------------------------------ mutation

def test_mutation_score_of_one_row_per_backward_rule_of_hw_ops():
  """Every kind of mutant of every custom_vjp of hw.ops is killed (the full score, every
  path row included, is the slow test below and ``hw verify --mutate hw.ops``)."""
  from hw.testing.mutation import custom_vjps
  from hw.verification.registry import REGISTRY
  rows = ["linear", "relu", "sigmoid", "tanh", "softmax", "dropout", "batch_norm",
          "conv1d[shift]", "conv2d[lax]", "max_pool", "avg_pool", "softmax_cross_entropy",
          "logistic_loss", "hinge_loss", "squared_error"]
  report = hw.testing.mutation_score("hw.ops", REGISTRY, rows=rows, finite_differences=False)
  assert report.total >= 50 and not report.survivors, report.table()
  assert {r.rule for r in report.results} == set(custom_vjps("hw.ops"))
  assert {r.mutant.split("[")[0] for r in report.results} == {"scale", "zero", "swap",
                                                                "transpose"}


def test_weak_cases_let_mutants_survive():
  """A registry whose only relu case has no positive input cannot see relu's rule."""
  from hw.testing import OpSpec
  weak = {"relu": OpSpec("relu", hw.ops.relu, ref.relu,
                         lambda key: [Case("negative", (-1.0 - np.arange(6.0).reshape(2, 3),))])}
  report = hw.testing.mutation_score("hw.ops", weak, rows=["relu"])
  assert report.total == 2 and report.killed == 0
  assert "2 survived" in report.table()


def test_hw_verify_mutate_prints_the_score(capsys):
  from hw.verification import verify
  assert verify.main(["--mutate", "hw.ops", "--ops", "relu,squared_error"]) == 0
  out = capsys.readouterr().out
  assert "activations._relu" in out and "7/7 mutants killed" in out
  assert verify.main(["--mutate", "hw.ops", "--ops", "relu", "--json"]) == 0
  data = json.loads(capsys.readouterr().out)
  assert data["killed"] == data["total"] == 2


@pytest.mark.slow
def test_every_mutant_of_hw_ops_is_killed():
  report = hw.testing.mutation_score("hw.ops")
  assert not report.survivors and not report.unused_rules, report.table()
  rows = {r.row for r in report.results}
  assert {f"conv2d[{a}]" for a in hw.ops.ALGORITHMS["conv2d"]} <= rows


# ------------------------------------------- check_vjp on hw's own registry cases

def _registry_cases(rows=None):
  from hw.verification.registry import REGISTRY, case_key
  return [(spec, case) for name, spec in REGISTRY.items() if rows is None or name in rows
          for case in spec.make_cases(case_key(0, name))]


@pytest.mark.parametrize(("spec", "case"), _registry_cases(["conv2d[shift]"])[-1:]
                         + _registry_cases(["max_pool[windows]"])[-3:-2],
                         ids=lambda v: getattr(v, "name", None))
def test_check_vjp_passes_hw_registry_cases(spec, case):
  report = check_vjp(spec.bind(), case, reference=spec.reference)
  if not case.finite_differences:
    assert ("finite differences", case.why_no_fd) in report.skipped


@pytest.mark.slow
@pytest.mark.parametrize(("spec", "case"), _registry_cases(),
                         ids=lambda v: getattr(v, "name", None))
def test_check_vjp_passes_every_hw_registry_case(spec, case):
  # float32 only on the row's float32 case, as hw verify runs it: elsewhere a case may sit
  # where float32 cannot be accurate (t-SNE's nearly-collapsed KL is ~3e-4, a difference of
  # O(1) terms, so float32 rounding alone is ~1e-3 of it)
  # (a case's own finite-difference step, Case.fd_step, applies: t-SNE's nearly-collapsed)
  from hw.verification.registry import case_key
  f32_case = spec.make_cases(case_key(0, spec.name))[spec.float32_case]
  check_vjp(spec.bind(), case, reference=spec.reference, rtol=spec.tolerance,
            float32=case.name == f32_case.name)
