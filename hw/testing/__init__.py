"""Prove your own ``jax.custom_vjp`` the way ``hw verify`` proves hw's ops.

* ``check_vjp(f, *args, reference=None, **options)``: every check on one input, in
  float64; a failure raises ``AssertionError`` with a table, a pass returns a
  ``VJPReport``.
* ``hw.testing.cases``: awkward-input generators (batch of one, odd and prime sizes,
  exact zeros and ties, values at kinks, large and tiny magnitudes, both label
  conventions); ``Case`` is one input.
* ``register(reference=..., cases=...)``: a decorator that lists a function for
  ``hw verify --module MODULE``; ``mutation_score(...)`` / ``hw verify --mutate MODULE``:
  how many perturbed backward rules the checks catch.
* The pytest plugin (``hw.testing.plugin``, registered as a ``pytest11`` entry point): a
  ``check_vjp`` fixture, ``vjp_cases(...)`` to parametrize over cases, and a per-op
  summary at the end of the session.
"""
from hw.testing import cases
from hw.testing._core import Case, OpSpec
from hw.testing.check import DEFAULT_OPTIONS, Row, VJPReport, check_vjp
from hw.testing.mutation import MutationReport, mutation_score
from hw.testing.register import discover, register


def vjp_cases(*cases_or_makers, seed=0, argname: str = "case"):
  """``pytest.mark.parametrize`` over ``Case``s, with their names as test ids.

  Each argument is a ``Case``, a list of them (``cases.awkward(...)``), or a
  ``seed -> list`` maker; lists are concatenated.
  """
  import pytest
  items: list = []
  for item in cases_or_makers:
    if isinstance(item, Case):
      items.append(item)
    elif callable(item):
      items.extend(item(seed))
    else:
      items.extend(item)
  return pytest.mark.parametrize(argname, items, ids=[c.name for c in items])


__all__ = ["Case", "DEFAULT_OPTIONS", "MutationReport", "OpSpec", "Row", "VJPReport",
           "cases", "check_vjp", "discover", "mutation_score", "register", "vjp_cases"]
