"""What ``hw.testing`` and ``hw.verification`` share: the case and row types, binding a
case to a function (``bind_case``), the relative error, and the compile settings of the
checks' many small one-off XLA programs.

``hw.verification`` (``hw verify`` over hw's own ops) is built on these; so is
``hw.testing.check_vjp`` (one user function) and ``hw verify --module`` (a user's
registered functions). Nothing here imports ``hw.ops``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
from typing import Any, Callable, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

TINY = float(np.finfo(np.float64).tiny)


@dataclasses.dataclass(frozen=True)
class Case:
  """One input of an op.

  Attributes:
    name: short id, unique within the op (e.g. ``"stride2-same-odd"``).
    args: positional arguments (NumPy arrays, or None for an omitted bias).
    kwargs: keyword arguments passed unchanged (options, PRNG keys).
    differentiable: indices into ``args`` that are differentiated.
    finite_differences: False at points where the op is not differentiable (kinks,
      max-pool ties), where only the comparison with the reference applies.
    why_no_fd: the reason when ``finite_differences`` is False.
    fd_step: :func:`hw.testing.check_vjp`'s finite-difference step relative to each
      element's scale (the input's spread, capped at ``|x_i|`` for an input of one sign),
      where its default (1e-3) does not suit the case (None: the default; an explicit
      ``fd_step=`` option still wins).
  """
  name: str
  args: tuple
  kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  differentiable: tuple[int, ...] = (0,)
  finite_differences: bool = True
  why_no_fd: str = ""
  fd_step: float | None = None


@dataclasses.dataclass(frozen=True)
class OpSpec:
  """A registry row: an op (or one of its implementation paths), its independent
  reference and its input generator.

  Attributes:
    name: the row's name: the public name, or ``"<name>[<algorithm>]"`` for a row that
      pins one implementation path.
    op: the hand-written op (called as ``op(*case.args, **case.kwargs)``, plus
      ``algorithm=algorithm`` when the row pins one).
    reference: the autodiff reference with the same signature (never given
      ``algorithm``).
    make_cases: ``key -> sequence of Case``.
    tolerance: largest accepted relative error against the reference (float64).
    float32_case: index of the case also run in float32 under ``jit``.
    algorithm: the implementation path the row pins, or None for the automatic choice.
  """
  name: str
  op: Callable
  reference: Callable
  make_cases: Callable[[jax.Array], Sequence[Case]]
  tolerance: float = 1e-10
  float32_case: int = 0
  algorithm: str | None = None

  @property
  def function(self) -> str:
    """The public name of the op (the row name without ``[algorithm]``)."""
    return self.name.partition("[")[0]

  def bind(self, op: Callable | None = None) -> Callable:
    """``op`` (default: ``self.op``) with this row's ``algorithm`` pinned, if any."""
    op = self.op if op is None else op
    if self.algorithm is None:
      return op
    return functools.partial(op, algorithm=self.algorithm)


def _to_jax(value, dtype):
  """NumPy float arrays to ``dtype``, other NumPy arrays as they are; the rest unchanged."""
  if not isinstance(value, np.ndarray):
    return value
  if np.issubdtype(value.dtype, np.floating):
    return jnp.asarray(value, dtype=dtype)
  return jnp.asarray(value)


def bind_case(fn: Callable, case: Case, dtype) -> tuple[Callable, list, list]:
  """Split a case into differentiable args, other array inputs and static options.

  Returns:
    ``(f, primals, extras)`` with ``f(primals, extras) == fn(*args, **kwargs)``. Array
    inputs that are not differentiated (labels, PRNG keys) travel in ``extras`` so that
    under ``jit`` they are arguments, never baked-in constants. (Used to trace a case's
    VJP: the mutation score and the registry's tests.)
  """
  args = [_to_jax(a, dtype) for a in case.args]
  kwargs = {k: _to_jax(v, dtype) for k, v in case.kwargs.items()}
  arg_slots = [i for i, a in enumerate(args)
               if isinstance(a, jax.Array) and i not in case.differentiable]
  kw_slots = [k for k, v in kwargs.items() if isinstance(v, jax.Array)]
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


def errors(actual, expected) -> tuple[float, float]:
  """(max abs error, relative error) of ``actual`` against ``expected``.

  The relative error is ``max|a - b| / max(max|b|, tiny)``, so an all-zero reference
  demands an exact zero; a NaN anywhere is an infinite error.
  """
  a = np.asarray(actual, dtype=np.float64)
  b = np.asarray(expected, dtype=np.float64)
  if a.shape != b.shape:
    raise AssertionError(f"shape {a.shape} differs from the reference's {b.shape}")
  if a.size == 0:
    return 0.0, 0.0
  abs_err = float(np.max(np.abs(a - b)))
  if np.isnan(abs_err):
    return float("inf"), float("inf")
  return abs_err, abs_err / max(float(np.max(np.abs(b))), TINY)


@contextlib.contextmanager
def fast_compilation() -> Iterator[None]:
  """Turn XLA's optimisation passes off while checking: every check compiles small
  programs that run once or twice, so compile time dominates (this shortens it). The
  numbers stay float64-exact up to rounding; the previous setting is restored on exit."""
  previous = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  try:
    yield
  finally:
    jax.config.update("jax_disable_most_optimizations", previous)


# XLA:CPU compiles the many small one-off programs of the checks faster with its older
# loop emitters than with the newer fusion emitters, and compile time is what the checks
# spend. Set per program (a compile option of these jitted checks only), so nothing else
# in the process is affected; used only where the backend accepts the option.
_FAST_CPU_COMPILE = {"xla_cpu_use_fusion_emitters": False}


@functools.cache
def _compiler_options() -> dict | None:
  if jax.default_backend() != "cpu":
    return None
  try:
    jax.jit(lambda v: v + 1, compiler_options=_FAST_CPU_COMPILE)(np.float32(0.0))
  except Exception:  # an XLA without the option: compile as usual
    return None
  return _FAST_CPU_COMPILE


def jit(fn: Callable, **kwargs) -> Callable:
  """``jax.jit`` with the compile options of the checks."""
  return jax.jit(fn, compiler_options=_compiler_options(), **kwargs)
