"""Prove your own ``jax.custom_vjp`` the way ``hw verify`` proves hw's ops.

* ``check_vjp(f, *args, reference=..., ...)``: every check on one input, in float64; a
  failure raises ``AssertionError`` with a table, a pass returns a ``VJPReport``.
* ``hw.testing.cases``: awkward-input generators (batch of one, odd and prime sizes,
  exact zeros and ties, values at kinks, large and tiny magnitudes, both label
  conventions); ``Case`` is one input.
* ``register(reference=..., cases=...)``: a decorator that lists a function for
  ``hw verify --module MODULE``; ``mutation_score(...)`` / ``hw verify --mutate MODULE``:
  how many perturbed backward rules the checks catch.
* The pytest plugin (``hw.testing.plugin``, registered as a ``pytest11`` entry point): a
  ``check_vjp`` fixture, ``vjp_cases(...)`` to parametrize over cases, and a per-op
  summary at the end of the session.

Names load on first use (PEP 562), so importing the package (as the pytest plugin does
in every session) imports neither JAX nor the checker. Modules whose name a public
function would shadow are private (``_register``).
"""
from __future__ import annotations

import importlib

# public name -> the module that defines it
_LAZY = {
    "Case": "hw.testing._core", "OpSpec": "hw.testing._core",
    "VJPReport": "hw.testing.report", "check_vjp": "hw.testing.check",
    "MutationReport": "hw.testing.mutation", "mutation_score": "hw.testing.mutation",
    "discover": "hw.testing._register", "register": "hw.testing._register",
}


def __getattr__(name: str):
  if name == "cases":
    return importlib.import_module("hw.testing.cases")
  if name in _LAZY:
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'hw.testing' has no attribute {name!r}")


def vjp_cases(*cases_or_makers, seed=0, argname: str = "case"):
  """``pytest.mark.parametrize`` over ``Case``s, with their names as test ids.

  Each argument is a ``Case``, a list of them (``cases.awkward(...)``), or a
  ``seed -> list`` maker; lists are concatenated.
  """
  import pytest

  from hw.testing._core import Case
  items: list = []
  for item in cases_or_makers:
    if isinstance(item, Case):
      items.append(item)
    elif callable(item):
      items.extend(item(seed))
    else:
      items.extend(item)
  return pytest.mark.parametrize(argname, items, ids=[c.name for c in items])


__all__ = ["Case", "OpSpec", "VJPReport", "cases", "check_vjp", "discover",
           "mutation_score", "register", "vjp_cases"]
