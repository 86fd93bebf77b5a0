"""``check_vjp``: prove a ``jax.custom_vjp`` (or ``custom_jvp``, or any differentiable JAX
function) the way ``hw verify`` proves hw's ops.

All numerical checks run in float64 inside ``jax.enable_x64(True)`` (a context manager,
never the global switch), except the float32 run, which runs inside
``jax.enable_x64(False)``. The relative error of an array ``a`` against ``b`` is
``max|a - b| / max(max|b|, tiny)``.

Arguments (``hw.testing._binding``): every positional argument and every entry of
``kwargs`` is a pytree (an array, a dict, a list, a registered dataclass, Flax params).
Floating leaves of the arguments named by ``argnums`` (positions or keyword names;
default: every positional argument holding a floating array) are differentiated; integer
and boolean leaves must get a ``float0`` cotangent; other arrays (keys, undifferentiated
floats) are passed unchanged; Python values (a Python ``float`` too) are static. The
output may be a pytree of floating arrays.

Intent, stated three ways (the checks compare the rule with it):

* ``reference``: a function with the same signature and the same values whose autodiff
  VJP is the intended one and equals its own derivative (the true gradient: the same
  function in plain JAX). Its values and finite differences are compared too, so a
  reference built with ``stop_gradient`` does not state a straight-through estimator or a
  reversed gradient: use ``vjp`` for those;
* ``vjp``: the intended VJP itself, ``vjp(args, cotangent, **kwargs) -> cotangents`` (a
  tuple with one cotangent per differentiated argument, in ``argnums`` order), for a rule
  that is no function's VJP (JAX's ``clip_gradient``, a straight-through estimator, a
  gradient-reversal layer): then the linearity check
  (``zero cotangent``), finite differences, the Taylor test and the second order are
  skipped, each with that reason;
* ``no_gradient``: outputs whose cotangent the rule ignores by design (a term for
  logging): a pytree prefix of the output with a bool per output, e.g. ``(False, True)``.
  Their cotangents are zero in every comparison, and a ``no gradient`` check demands
  that a cotangent on them gives exactly zero.

Checks (each a row of the report; a failing row raises ``AssertionError`` with the table):

* ``value``: the output against the reference's;
* ``reference`` / ``intended vjp``: the VJP against the intent for every basis cotangent
  when the output has at most ``max_basis`` elements (every entry of the Jacobian), else
  for ``random_cotangents`` random ones; tolerance ``rtol`` (the default's rule is
  ``RTOL_RULE``, quoted in each failure);
* ``finite differences``: ``<ct, J d>`` of the intent (the reference when given, else
  ``f``) by central differences, Richardson-extrapolated from steps h and h/2, against
  ``<VJP(ct), d>``, with ``d`` a random direction scaled per element (the input's spread,
  capped at ``|x_i|`` for a leaf of one sign, so a step never crosses zero) and
  ``h = fd_step``; the two steps must agree (``fd h vs h/2``), otherwise a kink lies
  within a step. Skipped with a stated reason where ``kinks`` says the point is not
  differentiable;
* ``taylor`` (needs no step size): the remainder ``|phi(x + h d) - phi(x) - h <VJP(ct), d>|``
  of ``phi = <ct, intent(x)>`` for ``h = 2 fd_step / 2^k``; the verdict is its rate of
  decrease, 2 for a right gradient and 1 for a wrong one (pass at >= 1.5), as
  dolfin-adjoint's ``taylor_test``. It finds errors of the size of ``h`` times the
  curvature; finite differences find smaller ones;
* ``jit``: the jitted VJP against the eager one; ``nondeterminism``: two runs of the jitted
  backward rule agree bit for bit;
* ``vmap``: the VJP under ``jax.vmap`` over a batch axis against one call per example;
* ``second order`` (``order=2``): the Hessian-vector product of the scalar function of the
  *output* ``phi(x) = <c, f(x)> + <u, f(x)^2>/2`` (so the derivative runs through the
  rule's own output) by grad of grad, against the reference's, or without one against
  central differences of ``grad phi``;
* structure: ``shape/dtype`` of every gradient, ``float0`` for integer inputs, ``zero
  cotangent`` gives an exactly zero gradient, ``float32`` (inputs in float32 give float32
  results within ``float32_rtol`` of the float64 intent).

Values print as ``nan``/``inf`` where they are; a non-finite gradient is named
"non-finite" in its row's note. Bad use raises ``ValueError`` naming the problem: a
reference with other outputs, a marked argument with no floating array, non-finite inputs,
an output (of ``f`` or the reference) that is not finite at finite inputs ("f returns nan
at ..."), a function that cannot be traced under ``jit``.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import jax

from hw.testing._binding import Binding
from hw.testing._checker import _Checker
from hw.testing._core import Case, fast_compilation
from hw.testing._numerics import _non_finite
from hw.testing.report import Row, VJPReport

DEFAULT_RTOL = 1e-9
DEFAULT_FD_STEP = 1e-3   # fd_step=None: this, or a Case's own fd_step
RTOL_RULE = ("rtol 1e-9 (the default): float64 rounding over reductions of up to ~1e6 terms "
             "(about eps*n) stays below it, a rule wrong by 1e-7 relative is 100x above it; "
             "pass rtol= for a rule with its own error (an iterative solver: its tolerance)")



def check_vjp(f: Callable, *args, kwargs: Mapping[str, Any] | None = None,
              reference: Callable | None = None, vjp: Callable | None = None,
              no_gradient: Any = None, argnums: Sequence[int | str] | int | str | None = None,
              kinks: Callable[..., Any] | str | bool | None = None,
              rtol: float = DEFAULT_RTOL, fd: bool = True, fd_step: float | None = None,
              fd_rtol: float = 1e-6, fd_consistency: float = 1e-3, taylor: bool = True,
              jit: bool = True, eager: bool = True, vmap: bool = True, vmap_batch: int = 3, order: int = 1,
              float32: bool = True, float32_rtol: float = 1e-3, nondeterminism: bool = True,
              max_basis: int = 2048, random_cotangents: int = 8, seed: int = 0,
              name: str | None = None) -> VJPReport:
  """Check the VJP of ``f`` at ``args`` in float64 (see the module docstring).

  Examples::

    check_vjp(my_lse, x, reference=lambda x: jax.nn.logsumexp(x, -1), order=2)
    check_vjp(mlp_loss, params, batch, argnums=0)        # params: a dict of arrays
    check_vjp(clip_gradient, -0.3, 0.5, x,               # JAX docs' example (lo, hi, x)
              vjp=lambda args, ct: (jnp.clip(ct, args[0], args[1]),))
    check_vjp(loss_and_metric, x, reference=ref, no_gradient=(False, True))

  Args:
    f: the function (typically a ``jax.custom_vjp`` or ``custom_jvp``).
    *args: its positional arguments: pytrees of arrays and static Python values. A single
      ``hw.testing.Case`` stands for its args, kwargs, differentiable indices and
      finite-difference verdict.
    kwargs: its keyword arguments (pytrees too; differentiated when named in ``argnums``).
    reference: an independent implementation with the same signature and outputs whose
      autodiff VJP is the intended one.
    vjp: the intended VJP, ``vjp(args, cotangent, **kwargs) -> cotangents`` (one per
      differentiated argument), for rules that are no function's VJP.
    no_gradient: outputs whose cotangent the rule ignores by design (a pytree prefix of
      the output with a bool per output).
    argnums: the differentiated arguments: positions and/or keyword names (default: every
      positional argument that holds a floating-point array).
    kinks: where ``f`` is not differentiable: ``kinks(*args)`` returning a truthy value
      (a string is the reason) skips finite differences, the Taylor test and the
      finite-difference second order at this point; a string or True skips them.
    rtol: largest relative error against the intent (and jit vs eager); see
      ``RTOL_RULE``.
    fd, fd_step, fd_rtol, fd_consistency: finite differences on/off, the step relative to
      each element's scale (None: a Case's own ``fd_step``, else 1e-3), the tolerance of Richardson against the VJP (relative to
      ``|ct| |J d|``) and of step h against h/2.
    taylor: run the Taylor-remainder test.
    jit, vmap, vmap_batch, nondeterminism: the jit, vmap (batch size) and two-runs checks.
    eager: also run the VJP eagerly and compare the jitted one with it (the ``jit`` row);
      False keeps to the one compiled program (faster: ``hw verify``'s setting).
    order: 2 also checks the second derivative.
    float32, float32_rtol: the float32 run and its tolerance.
    max_basis, random_cotangents: every basis cotangent up to this many output elements,
      else this many random ones.
    seed: seed of the random cotangents and directions.
    name: the report's name (default: ``f.__name__``, with ``[case]``).

  Returns:
    A ``VJPReport`` when every check passes.

  Raises:
    AssertionError: a check failed; the message is the table.
    ValueError: bad use (named).
  """
  __tracebackhide__ = True  # pytest shows the table, not these frames
  start = time.perf_counter()
  label = name or getattr(f, "__name__", None) or repr(f)
  kwargs = dict(kwargs or {})
  if len(args) == 1 and isinstance(args[0], Case):
    case = args[0]
    kwargs = {**case.kwargs, **kwargs}
    args = tuple(case.args)
    argnums = case.differentiable if argnums is None else argnums
    if fd_step is None:
      fd_step = case.fd_step
    if kinks is None and not case.finite_differences:
      kinks = case.why_no_fd or f"case {case.name} is marked not differentiable"
    label = name or f"{label}[{case.name}]"
  if reference is not None and vjp is not None:
    raise ValueError("check_vjp: give reference= or vjp=, not both (one statement of intent)")
  for option, value in (("reference", reference), ("vjp", vjp)):
    if value is not None and not callable(value):
      raise ValueError(f"check_vjp: {option} must be callable, got {type(value).__name__}")
  if order not in (1, 2):
    raise ValueError(f"check_vjp: order must be 1 or 2, got {order!r}")
  fd_step = DEFAULT_FD_STEP if fd_step is None else fd_step
  binding = Binding(f, args, kwargs, argnums)
  for leaf, kind, leaf_name in zip(binding.leaves, binding.kinds, binding.names):
    found = _non_finite(leaf) if kind == "float" else None
    if found:
      count, index, value = found
      raise ValueError(
          f"check_vjp: input {leaf_name} has {count} non-finite value(s) (first at {index}: "
          f"{value}); gradients are only checked at finite points")
  skip_fd = None
  if isinstance(kinks, str):
    skip_fd = kinks
  elif kinks is True:
    skip_fd = "kinks=True: the point is not differentiable"
  elif callable(kinks):
    verdict = kinks(*args)
    if verdict:
      skip_fd = verdict if isinstance(verdict, str) else (
          f"kinks({label}) says the point is at a kink")
  opts = dict(fd=fd, fd_step=fd_step, fd_rtol=fd_rtol, fd_consistency=fd_consistency,
              taylor=taylor, jit=jit, eager=eager, vmap=vmap, vmap_batch=vmap_batch, order=order,
              float32_rtol=float32_rtol, nondeterminism=nondeterminism,
              max_basis=max_basis, random_cotangents=random_cotangents, seed=seed)
  rule = RTOL_RULE if rtol == DEFAULT_RTOL else f"rtol {rtol:.0e} (as given)"
  rows: list[Row] = []
  skipped: list[tuple[str, str]] = []
  checker = _Checker(f, reference, vjp, no_gradient, binding, opts, rtol, rule, rows, skipped)
  with fast_compilation():
    with jax.enable_x64(True):
      checker.run(skip_fd)
    if float32:
      with jax.enable_x64(False):
        checker.float32()
    else:
      skipped.append(("float32", "float32=False"))
  report = VJPReport(label, rows, skipped, checker.cotangent_kind,
                     time.perf_counter() - start)
  if not report.passed:
    failed_first = report.failures + [r for r in rows if r.passed]
    error = AssertionError(f"check_vjp({label}): {len(report.failures)} check(s) failed "
                           "(listed first)\n" + report.table(failed_first))
    error.report = report
    raise error
  return report
