"""``check_vjp``: prove a ``jax.custom_vjp`` (or any differentiable JAX function) the way
``hw verify`` proves hw's ops.

All numerical checks run in float64 inside ``jax.enable_x64(True)`` (a context manager,
never the global switch), except the float32 run, which runs inside
``jax.enable_x64(False)``. The relative error of an array ``a`` against ``b`` is
``max|a - b| / max(max|b|, tiny)`` (``hw.testing._core.errors``).

Checks (each a row of the report; a failing row raises ``AssertionError`` with the table):

* ``value``: the output against the reference's (when ``reference`` is given);
* ``reference``: the VJP against ``jax.vjp`` of the reference for every basis cotangent
  when the output has at most ``max_basis`` elements (then every entry of the Jacobian
  is compared), else for ``random_cotangents`` random ones;
* ``finite differences``: ``<ct, J t>`` by central differences with a per-input step
  ``fd_step * rms(input)``, Richardson-extrapolated from steps h and h/2, against
  ``<VJP(ct), t>``; the two steps must agree (``fd h vs h/2``), otherwise a kink lies
  within a step. Skipped with a stated reason where ``kinks`` says the point is not
  differentiable;
* ``jit``: the jitted VJP against the eager one;
* ``vmap``: the VJP under ``jax.vmap`` over a batch axis (batched primals and
  cotangents) against one call per example, as ``torch.autograd.gradcheck``'s
  ``check_batched_grad``;
* ``second order`` (``order=2``): the gradient of ``<VJP(ct), v>`` against the
  reference's (or finite differences), as ``gradgradcheck``;
* structure: ``shape/dtype`` of every gradient (named when wrong), ``float0`` for
  integer and boolean inputs, ``zero cotangent`` gives an exactly zero gradient,
  ``nondeterminism`` (two runs of the jitted backward rule agree), ``float32`` (inputs
  in float32 give float32 results within ``float32_rtol`` of the float64 ones).

Bad use raises ``ValueError`` (or ``TypeError`` for an unknown option) naming the problem:
a reference with other output shapes, a marked argument that is not differentiable,
non-finite inputs, a function that cannot be traced under ``jit``.
"""
from __future__ import annotations

import functools
import inspect
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np

from hw.testing._checker import _Checker
from hw.testing._core import Case, fast_compilation
from hw.testing._numerics import _index, _kind
from hw.testing.report import Row, VJPReport

DEFAULT_OPTIONS = {
    "rtol": 1e-10,              # against the reference, float64
    "fd": True,                 # finite differences
    "fd_step": 1e-3,            # step relative to each input's spread (std)
    "fd_rtol": 1e-6,            # |VJP - Richardson| / (|ct| |J t|)
    "fd_consistency": 1e-3,     # |D(h) - D(h/2)| / (|ct| |J t|): above, a kink is in reach
    "jit": True,
    "vmap": True,
    "vmap_batch": 3,
    "order": 1,                 # 2: also the second order (grad of the VJP)
    "float32": True,
    "float32_rtol": 1e-3,
    "nondeterminism": True,
    "max_basis": 2048,          # every basis cotangent up to this many output elements
    "random_cotangents": 8,
    "seed": 0,
    "name": None,
}


def _arg_names(f: Callable, n: int) -> list[str]:
  try:
    params = [p for p in inspect.signature(f).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = [p.name for p in params]
  except (TypeError, ValueError):
    names = []
  return [names[i] if i < len(names) else f"arg{i}" for i in range(n)]


def check_vjp(f: Callable, *args, reference: Callable | None = None,
              argnums: Sequence[int] | int | None = None,
              kinks: Callable[..., Any] | str | bool | None = None,
              **options) -> VJPReport:
  """Check the VJP of ``f`` at ``args`` in float64 (see the module docstring).

  Args:
    f: the function (typically a ``jax.custom_vjp``); keyword arguments of ``f`` go in
      through ``functools.partial`` or a ``Case``.
    *args: its positional arguments: floating arrays (differentiated unless ``argnums``
      says otherwise), integer/bool arrays (labels: must get no cotangent), PRNG keys,
      and static Python values. A single ``hw.testing.Case`` stands for its args,
      kwargs, differentiable indices and finite-difference verdict.
    reference: an independent implementation with the same signature and outputs,
      differentiated with ``jax.vjp`` (autodiff). Without one, only finite differences
      and the structural checks run.
    argnums: the differentiated arguments (default: every floating array).
    kinks: where ``f`` is not differentiable: ``kinks(*args)`` returning a truthy value
      (a string is the reason) skips finite differences at this point; a string or True
      skips them with that reason.
    **options: ``DEFAULT_OPTIONS`` (``rtol``, ``fd``, ``order``, ``vmap``, ``jit``, ...).

  Returns:
    A ``VJPReport`` when every check passes.

  Raises:
    AssertionError: a check failed; the message is the table.
    ValueError: bad use (named); TypeError: an unknown option.
  """
  unknown = set(options) - set(DEFAULT_OPTIONS)
  if unknown:
    raise TypeError(f"check_vjp: unknown option(s) {sorted(unknown)}; "
                    f"known: {sorted(DEFAULT_OPTIONS)}")
  opts = {**DEFAULT_OPTIONS, **options}
  start = time.perf_counter()
  name = opts["name"] or getattr(f, "__name__", None) or repr(f)
  if len(args) == 1 and isinstance(args[0], Case):
    case = args[0]
    names_of = _arg_names(f, len(case.args))
    f = functools.partial(f, **case.kwargs)
    if reference is not None:
      reference = functools.partial(reference, **case.kwargs)
    args = tuple(case.args)
    argnums = case.differentiable if argnums is None else argnums
    if case.fd_step is not None and "fd_step" not in options:
      opts["fd_step"] = case.fd_step
    if kinks is None and not case.finite_differences:
      kinks = case.why_no_fd or f"case {case.name} is marked not differentiable"
    name = opts["name"] or f"{name}[{case.name}]"
  else:
    names_of = _arg_names(f, len(args))
  kinds = [_kind(a) for a in args]
  if argnums is None:
    argnums = tuple(i for i, k in enumerate(kinds) if k == "float")
  elif isinstance(argnums, int):
    argnums = (argnums,)
  argnums = tuple(argnums)
  for i in argnums:
    if not 0 <= i < len(args):
      raise ValueError(f"check_vjp: argnums has {i}, but f gets {len(args)} argument(s)")
    if kinds[i] != "float":
      what = getattr(args[i], "dtype", type(args[i]).__name__)
      raise ValueError(
          f"check_vjp: argument {names_of[i]} (#{i}, {what}) is marked differentiable but "
          "is not a floating-point array: f is not differentiable in it (pass integer "
          "labels, keys and Python options unmarked)")
  if not argnums:
    raise ValueError("check_vjp: no floating-point array argument to differentiate")
  for i, (a, k) in enumerate(zip(args, kinds)):
    if k == "float":
      values = np.asarray(a, np.float64)
      bad = ~np.isfinite(values)
      if bad.any():
        first = int(np.argmax(bad.ravel()))
        raise ValueError(
            f"check_vjp: input {names_of[i]} has {int(bad.sum())} non-finite value(s) "
            f"(first at {_index(values.shape, first)}: {values.ravel()[first]}); "
            "gradients are only checked at finite points")
  skip_fd = None
  if not opts["fd"]:
    skip_fd = "fd=False"
  elif isinstance(kinks, str):
    skip_fd = kinks
  elif kinks is True:
    skip_fd = "kinks=True: the point is not differentiable"
  elif callable(kinks):
    verdict = kinks(*args)
    if verdict:
      skip_fd = verdict if isinstance(verdict, str) else (
          f"kinks({name}) says the point is at a kink")

  rows: list[Row] = []
  skipped: list[tuple[str, str]] = []
  checker = _Checker(f, reference, args, kinds, argnums, names_of, opts, rows, skipped)
  with fast_compilation():
    with jax.enable_x64(True):
      checker.run(skip_fd)
    if opts["float32"]:
      with jax.enable_x64(False):
        checker.float32()
    else:
      skipped.append(("float32", "float32=False"))
  report = VJPReport(name, rows, skipped, checker.cotangent_kind,
                     time.perf_counter() - start)
  if not report.passed:
    failed_first = report.failures + [r for r in rows if r.passed]
    error = AssertionError(f"check_vjp({name}): {len(report.failures)} check(s) failed "
                           "(listed first)\n" + report.table(failed_first))
    error.report = report
    raise error
  return report
