"""``@register(reference=..., cases=...)``: list your function for ``hw verify --module``.

The decorator records an ``OpSpec`` row (the same type as hw's own registry) under the
name of the module that *registers* it (where ``register(...)`` is called, so a function
defined elsewhere, a library's, can be registered from your module) and returns the
function unchanged. ``discover("mypkg.ops")``
imports the module (and, for a package, its submodules) and returns the rows registered
there, which ``hw verify --module mypkg.ops`` checks with the same machinery and table as
``hw verify``.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Callable, Sequence

import numpy as np

from hw.testing._core import Case, OpSpec
from hw.testing.check import DEFAULT_RTOL  # check_vjp's default (its RTOL_RULE)

_REGISTERED: dict[str, dict[str, OpSpec]] = {}


def _as_case(i: int, item) -> Case:
  if isinstance(item, Case):
    return item
  args = tuple(item) if isinstance(item, (tuple, list)) else (item,)
  differentiable = tuple(j for j, a in enumerate(args) if isinstance(a, np.ndarray)
                         and np.issubdtype(a.dtype, np.floating))
  return Case(f"case{i}", args, differentiable=differentiable)


def _case_maker(cases) -> Callable:
  if callable(cases):
    return lambda key: [_as_case(i, c) for i, c in enumerate(cases(key))]
  fixed = [_as_case(i, c) for i, c in enumerate(cases)]
  return lambda key: fixed


def register(*, reference: Callable, cases, name: str | None = None,
             tolerance: float = DEFAULT_RTOL, float32_case: int = 0) -> Callable:
  """Decorator: register ``fn`` with its autodiff ``reference`` and its ``cases``.

  Args:
    reference: an independent plain-JAX implementation with the same signature.
    cases: a list of ``Case`` (or of argument tuples / single arrays, differentiated in
      every floating NumPy array), or ``key -> list`` of those.
    name: the row's name (default: the function's ``__name__``).
    tolerance: largest relative error accepted against the reference (float64; the
      default is ``check_vjp``'s: above float64 rounding over long reductions, 100x
      below a 1e-7 relative bug).
    float32_case: the case also run in float32 under ``jit``.
  """
  if not callable(reference):
    raise TypeError(f"register: `reference` must be callable, got {type(reference).__name__}")
  module = sys._getframe(1).f_globals.get("__name__", "__main__")  # the registering module

  def decorate(fn):
    row = name or getattr(fn, "__name__", None)
    if not row:
      raise ValueError("register: give `name=` (the function has no __name__)")
    _REGISTERED.setdefault(module, {})[row] = OpSpec(
        row, fn, reference, _case_maker(cases), tolerance=tolerance,
        float32_case=float32_case)
    return fn
  return decorate


def discover(module: str) -> dict[str, OpSpec]:
  """Import ``module`` (a package: with its submodules) and return its registered rows."""
  try:
    root = importlib.import_module(module)
  except ImportError as exc:
    raise ValueError(f"cannot import module {module!r}: {exc}") from exc
  names = [module]
  if hasattr(root, "__path__"):
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{module}."):
      importlib.import_module(info.name)
      names.append(info.name)
  found: dict[str, OpSpec] = {}
  for mod in sorted(_REGISTERED):
    if mod in names or mod.startswith(f"{module}."):
      found.update(_REGISTERED[mod])
  return found


def registered(modules: Sequence[str] | None = None) -> dict[str, OpSpec]:
  """Every row registered so far (optionally only from ``modules``)."""
  out: dict[str, OpSpec] = {}
  for mod, rows in _REGISTERED.items():
    if modules is None or mod in modules:
      out.update(rows)
  return out
