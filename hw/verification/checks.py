"""Checks of one op on one case: forward value, VJP against autodiff, finite differences.

All comparisons run in float64 (``jax.enable_x64(True)``). The relative error of an
array ``a`` against the reference ``b`` is ``max|a - b| / max(max|b|, tiny)`` with
``tiny`` the smallest normal float64, so an all-zero reference demands an exact zero.

Finite differences follow ``jax.test_util.check_grads(f, args, order=1, modes=["rev"])``
(same step 1e-4, same float64 tolerances 1e-5, same test: the projection
``<cotangent, J tangent>`` by central differences against ``<VJP(cotangent), tangent>``
for one random tangent), but run inside the one jitted program of the case, which costs
a single XLA compilation instead of four; ``check_case(..., fd="check_grads")`` calls
``check_grads`` itself.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import test_util

from hw.testing._core import (  # noqa: F401  (TINY, fast_compilation: re-exported)
    TINY, Case, OpSpec, errors, fast_compilation, jit)

FD_STEP = 1e-4
FD_TOLERANCE = 1e-5
FLOAT32_FORWARD_TOLERANCE = 1e-4
FLOAT32_GRADIENT_TOLERANCE = 1e-3


_jit = jit  # the checks' jax.jit (compile options of hw.testing._core)


@dataclasses.dataclass
class CaseResult:
  """What one case gave. ``fd`` is "pass", "fail" or "n.a."."""
  op: str
  case: str
  forward_abs_err: float = float("nan")
  forward_rel_err: float = float("nan")
  grad_abs_err: float = float("nan")
  grad_rel_err: float = float("nan")
  fd: str = "n.a."
  fd_note: str = ""
  error: str = ""
  passed: bool = False


def _to_jax(value, dtype):
  """NumPy float arrays to ``dtype``, other NumPy arrays as they are; the rest unchanged."""
  if not isinstance(value, np.ndarray):
    return value
  if np.issubdtype(value.dtype, np.floating):
    return jnp.asarray(value, dtype=dtype)
  return jnp.asarray(value)


def _is_traced_input(value: Any) -> bool:
  return isinstance(value, jax.Array)


def bind_case(fn: Callable, case: Case, dtype) -> tuple[Callable, list, list]:
  """Split a case into differentiable args, other array inputs and static options.

  Returns:
    ``(f, primals, extras)`` with ``f(primals, extras) == fn(*args, **kwargs)``. Array
    inputs that are not differentiated (labels, PRNG keys) travel in ``extras`` so that
    under ``jit`` they are arguments, never baked-in constants.
  """
  args = [_to_jax(a, dtype) for a in case.args]
  kwargs = {k: _to_jax(v, dtype) for k, v in case.kwargs.items()}
  arg_slots = [i for i, a in enumerate(args) if _is_traced_input(a) and i not in case.differentiable]
  kw_slots = [k for k, v in kwargs.items() if _is_traced_input(v)]
  primals = [args[i] for i in case.differentiable]
  extras = [args[i] for i in arg_slots] + [kwargs[k] for k in kw_slots]

  def f(primal_values, extra_values):
    full, options = list(args), dict(kwargs)
    for i, value in zip(case.differentiable, primal_values):
      full[i] = value
    for i, value in zip(arg_slots, extra_values[:len(arg_slots)]):
      full[i] = value
    for k, value in zip(kw_slots, extra_values[len(arg_slots):]):
      options[k] = value
    return fn(*full, **options)
  return f, primals, extras


def _random_like(rng: np.random.Generator, shape, dtype):
  return jnp.asarray(rng.standard_normal(shape), dtype=dtype)


def _case_program(f_op, f_ref, with_fd: bool):
  """One jitted program: both VJPs and, optionally, the finite-difference projection."""
  def program(primals, extras, cotangent, tangents):
    out_op, vjp_op = jax.vjp(lambda *p: f_op(p, extras), *primals)
    out_ref, vjp_ref = jax.vjp(lambda *p: f_ref(p, extras), *primals)
    grads_op, grads_ref = vjp_op(cotangent), vjp_ref(cotangent)
    projections = None
    if with_fd:
      shifted = lambda sign: f_op([p + sign * FD_STEP * t for p, t in zip(primals, tangents)],
                                  extras)
      numerical = (shifted(1.0) - shifted(-1.0)) / (2 * FD_STEP)
      projections = (jnp.vdot(cotangent, numerical),
                     sum(jnp.vdot(g, t) for g, t in zip(grads_op, tangents)))
    return out_op, out_ref, grads_op, grads_ref, projections
  return _jit(program)


def check_case(spec: OpSpec, case: Case, *, op: Callable | None = None,
               finite_differences: bool = True, fd: str = "fused") -> CaseResult:
  """Compare ``spec.op`` (or ``op``) with ``spec.reference`` on ``case`` in float64.

  Args:
    spec: the registry entry.
    case: one of ``spec.make_cases(key)``.
    op: replaces ``spec.op`` (to test the verifier on a broken op); it gets the row's
      ``algorithm`` too, when the row pins one.
    finite_differences: False skips finite differences altogether.
    fd: "fused" (inside the case's jitted program) or "check_grads" (call
      ``jax.test_util.check_grads`` on the op, eagerly).
  """
  op = spec.bind(op)
  result = CaseResult(spec.name, case.name)
  rng = np.random.default_rng(len(case.name))
  with jax.enable_x64(True):
    try:
      f_op, primals, extras = bind_case(op, case, jnp.float64)
      f_ref, _, _ = bind_case(spec.reference, case, jnp.float64)
      out_shape = jax.eval_shape(lambda *p: f_ref(p, extras), *primals)
      cotangent = _random_like(rng, out_shape.shape, out_shape.dtype)
      tangents = [_random_like(rng, p.shape, p.dtype) for p in primals]
      run_fd = finite_differences and case.finite_differences
      program = _case_program(f_op, f_ref, with_fd=run_fd and fd == "fused")
      out_op, out_ref, grads_op, grads_ref, projections = program(
          primals, extras, cotangent, tangents)
      if out_op.dtype != out_ref.dtype:
        raise AssertionError(f"output dtype {out_op.dtype}, reference {out_ref.dtype}")
      grad_dtypes = [(g.dtype, r.dtype) for g, r in zip(grads_op, grads_ref)]
      if any(g != r for g, r in grad_dtypes):
        raise AssertionError(f"gradient dtypes {[str(g) for g, _ in grad_dtypes]}, "
                             f"reference {[str(r) for _, r in grad_dtypes]}")
      result.forward_abs_err, result.forward_rel_err = errors(out_op, out_ref)
      pairs = [errors(g, r) for g, r in zip(grads_op, grads_ref)]
      result.grad_abs_err = max(p[0] for p in pairs)
      result.grad_rel_err = max(p[1] for p in pairs)
      ok = max(result.forward_rel_err, result.grad_rel_err) <= spec.tolerance
      if not finite_differences:
        result.fd_note = "skipped"
      elif not case.finite_differences:
        result.fd_note = case.why_no_fd
      else:
        fd_ok, result.fd_note = _finite_difference_verdict(
            projections, lambda *p: f_op(p, extras), primals, fd)
        result.fd = "pass" if fd_ok else "fail"
        ok = ok and fd_ok
      result.passed = bool(ok)
    except Exception as exc:  # a crash of the op is a failure to report, not to raise
      result.error = f"{type(exc).__name__}: {exc}".strip()[:500]
      result.passed = False
  return result


def _finite_difference_verdict(projections, f, primals, mode) -> tuple[bool, str]:
  if mode == "check_grads":
    try:
      test_util.check_grads(f, primals, order=1, modes=["rev"])
      return True, "check_grads"
    except AssertionError as exc:
      return False, str(exc).strip().splitlines()[0][:200]
  numerical, analytic = (float(v) for v in projections)
  ok = abs(numerical - analytic) <= FD_TOLERANCE + FD_TOLERANCE * abs(numerical)
  return ok, f"<ct, J t>: finite differences {numerical:.8g}, VJP {analytic:.8g}"


def check_float32_jit(spec: OpSpec, case: Case, *, op: Callable | None = None) -> tuple[bool, str]:
  """Run the op and its VJP in float32 under ``jit`` and compare with the reference.

  The reference runs on the same float32 inputs (so a dropout mask is the same); the
  output and gradients must stay float32 and finite and agree within
  FLOAT32_FORWARD_TOLERANCE / FLOAT32_GRADIENT_TOLERANCE relative error.
  """
  op = spec.bind(op)
  try:
    with jax.enable_x64(False):
      f_op, primals, extras = bind_case(op, case, jnp.float32)
      f_ref, _, _ = bind_case(spec.reference, case, jnp.float32)
      out_shape = jax.eval_shape(lambda *p: f_ref(p, extras), *primals)
      cotangent = _random_like(np.random.default_rng(1), out_shape.shape, jnp.float32)
      program = _case_program(f_op, f_ref, with_fd=False)
      out32, out_ref, grads32, grads_ref, _ = program(primals, extras, cotangent, [])
    if out32.dtype != jnp.float32 or any(g.dtype != jnp.float32 for g in grads32):
      return False, f"float32 inputs gave {out32.dtype} / {[str(g.dtype) for g in grads32]}"
    _, fwd_rel = errors(out32, out_ref)
    grad_rel = max(errors(g, r)[1] for g, r in zip(grads32, grads_ref))
    finite = bool(np.all(np.isfinite(np.asarray(out32))))
    finite &= all(bool(np.all(np.isfinite(np.asarray(g)))) for g in grads32)
    ok = finite and fwd_rel <= FLOAT32_FORWARD_TOLERANCE and grad_rel <= FLOAT32_GRADIENT_TOLERANCE
    return ok, f"case {case.name}: forward rel {fwd_rel:.1e}, grad rel {grad_rel:.1e}" + (
        "" if finite else ", non-finite values")
  except Exception as exc:
    return False, f"{type(exc).__name__}: {exc}".strip()[:500]
