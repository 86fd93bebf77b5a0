"""The example package's rules checked with the hw.testing pytest plugin."""
import numpy as np

import hw.testing
from hw.testing import cases
from vjp_demo import references
from vjp_demo.ops import layer_norm, logsumexp


@hw.testing.vjp_cases(cases.awkward((3, 5), magnitudes=(1e3,), zeros=False, ties=True))
def test_logsumexp(case, check_vjp):
  # log-sum-exp is smooth: exact ties are not a kink, so keep finite differences on
  case = hw.testing.Case(case.name, case.args)
  check_vjp(logsumexp, case, reference=references.logsumexp)


def _gamma_beta(rng, x):
  return rng.standard_normal(x.shape[-1]), rng.standard_normal(x.shape[-1])


@hw.testing.vjp_cases(cases.awkward((4, 6), extra=_gamma_beta, magnitudes=(), ties=False))
def test_layer_norm(case, check_vjp):
  check_vjp(layer_norm, case, reference=references.layer_norm, order=2)


def test_logsumexp_without_reference(check_vjp):
  report = check_vjp(logsumexp, np.random.default_rng(1).standard_normal((2, 4)))
  assert "reference" in dict(report.skipped)
