"""Check ``hw.optim`` against optax's own transformations, update by update, in float64.

For each configuration (an ``hw.optim`` optimiser and the optax transformation with the
same hyper-parameters) both run ``steps`` updates on the same random pytree — a nested
dict of arrays of several shapes, a fresh random gradient every step — and every
update is compared. The relative error of one step is
``max over leaves |u_hw − u_optax| / max over leaves |u_optax|``; the check reports the
worst step and passes when it is at most ``tolerance`` (1e-10). Everything runs under
``jax.enable_x64(True)`` (a context manager: the global setting is left alone) inside
one jitted ``lax.scan`` per configuration.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hw.optim import transforms

TOLERANCE = 1e-10

# Shapes of the leaves of the test pytree: a scalar, vectors, matrices, a rank-4 kernel.
_TREE_SHAPES = {
    "dense": {"kernel": (7, 5), "bias": (5,)},
    "conv": {"kernel": (3, 3, 2, 4), "bias": (4,)},
    "scale": (),
    "embedding": [(11, 3), (1,)],
}


def _schedule(count):
  """A warm-up-then-decay schedule used for the ``+schedule`` configurations."""
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=0.05, warmup_steps=10, decay_steps=90, end_value=1e-3)(count)


@dataclasses.dataclass(frozen=True)
class OptimizerCase:
  """A configuration: our transformation and optax's with the same hyper-parameters.

  Attributes:
    name: e.g. ``"adam"`` or ``"nesterov+schedule"``.
    ours: ``() -> GradientTransformation`` from ``hw.optim``.
    optax_reference: ``() -> GradientTransformation`` from optax.
    description: the hyper-parameters in words, for the table.
  """
  name: str
  ours: Callable[[], optax.GradientTransformation]
  optax_reference: Callable[[], optax.GradientTransformation]
  description: str


def _cases() -> dict[str, OptimizerCase]:
  lr = 0.03
  cases = [
      OptimizerCase("sgd", lambda: transforms.sgd(lr), lambda: optax.sgd(lr), "lr 0.03"),
      OptimizerCase("momentum", lambda: transforms.sgd(lr, momentum=0.9),
                    lambda: optax.sgd(lr, momentum=0.9), "lr 0.03, μ 0.9"),
      OptimizerCase("nesterov", lambda: transforms.sgd(lr, momentum=0.9, nesterov=True),
                    lambda: optax.sgd(lr, momentum=0.9, nesterov=True),
                    "lr 0.03, μ 0.9, Nesterov"),
      OptimizerCase("rmsprop", lambda: transforms.rmsprop(lr, decay=0.9, eps=1e-8),
                    lambda: optax.rmsprop(lr, decay=0.9, eps=1e-8), "lr 0.03, ρ 0.9, ε 1e-8"),
      OptimizerCase("rmsprop-initial-scale",
                    lambda: transforms.rmsprop(lr, decay=0.95, eps=1e-6, initial_scale=0.5),
                    lambda: optax.rmsprop(lr, decay=0.95, eps=1e-6, initial_scale=0.5),
                    "lr 0.03, ρ 0.95, ε 1e-6, v₀ 0.5"),
      OptimizerCase("adam", lambda: transforms.adam(lr), lambda: optax.adam(lr),
                    "lr 0.03, β 0.9/0.999, ε 1e-8"),
      OptimizerCase("adam-b1-0.5", lambda: transforms.adam(lr, b1=0.5, b2=0.9, eps=1e-3),
                    lambda: optax.adam(lr, b1=0.5, b2=0.9, eps=1e-3),
                    "lr 0.03, β 0.5/0.9, ε 1e-3"),
  ]
  for name, ours, theirs in (
      ("sgd", lambda: transforms.sgd(_schedule), lambda: optax.sgd(_schedule)),
      ("momentum", lambda: transforms.sgd(_schedule, momentum=0.9),
       lambda: optax.sgd(_schedule, momentum=0.9)),
      ("nesterov", lambda: transforms.sgd(_schedule, momentum=0.9, nesterov=True),
       lambda: optax.sgd(_schedule, momentum=0.9, nesterov=True)),
      ("rmsprop", lambda: transforms.rmsprop(_schedule), lambda: optax.rmsprop(_schedule)),
      ("adam", lambda: transforms.adam(_schedule), lambda: optax.adam(_schedule))):
    cases.append(OptimizerCase(f"{name}+schedule", ours, theirs,
                               "warm-up 10 → cosine decay (peak 0.05)"))
  return {case.name: case for case in cases}


CASES: Mapping[str, OptimizerCase] = _cases()


@dataclasses.dataclass
class OptimizerCheck:
  """What one configuration gave.

  Attributes:
    name: the configuration's name.
    steps: number of updates compared.
    max_rel_err: worst per-step relative error of the updates.
    max_abs_err: worst absolute difference of any update element.
    final_params_rel_err: relative error of the parameters after all steps.
    tolerance: the bound ``max_rel_err`` must meet.
    passed: ``max_rel_err <= tolerance`` (and everything finite).
    description: the hyper-parameters in words.
  """
  name: str
  steps: int
  max_rel_err: float
  max_abs_err: float
  final_params_rel_err: float
  tolerance: float
  passed: bool
  description: str = ""

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


def random_tree(rng: np.random.Generator, leading: Sequence[int] = ()) -> dict:
  """A nested dict of float64 NumPy arrays shaped like ``_TREE_SHAPES``.

  Args:
    rng: the NumPy generator the values come from.
    leading: extra leading axes of every leaf (e.g. ``(steps,)`` for per-step gradients).
  """
  def build(node):
    if isinstance(node, dict):
      return {k: build(v) for k, v in node.items()}
    if isinstance(node, list):
      return [build(v) for v in node]
    return rng.standard_normal(tuple(leading) + tuple(node))
  return build(_TREE_SHAPES)


def _run_both(ours: optax.GradientTransformation, reference: optax.GradientTransformation,
              params, gradients):
  """Scan both transformations over the same gradients; return their updates per step."""
  def step(carry, grad):
    params_ours, state_ours, params_ref, state_ref = carry
    # Each side sees its own parameters; no optimiser here reads them, but a wrong one might.
    update_ours, state_ours = ours.update(grad, state_ours, params_ours)
    update_ref, state_ref = reference.update(grad, state_ref, params_ref)
    params_ours = optax.apply_updates(params_ours, update_ours)
    params_ref = optax.apply_updates(params_ref, update_ref)
    return (params_ours, state_ours, params_ref, state_ref), (update_ours, update_ref)

  carry = (params, ours.init(params), params, reference.init(params))
  (params_ours, _, params_ref, _), (updates_ours, updates_ref) = jax.lax.scan(
      step, carry, gradients)
  return updates_ours, updates_ref, params_ours, params_ref


def _per_step_errors(updates_ours, updates_ref) -> tuple[np.ndarray, float]:
  """(relative error of each step, max absolute error) over the stacked updates."""
  ours = [np.asarray(x) for x in jax.tree_util.tree_leaves(updates_ours)]
  ref = [np.asarray(x) for x in jax.tree_util.tree_leaves(updates_ref)]
  steps = ref[0].shape[0]
  abs_err = np.zeros(steps)
  scale = np.zeros(steps)
  for a, b in zip(ours, ref):
    a, b = a.reshape(steps, -1), b.reshape(steps, -1)
    abs_err = np.maximum(abs_err, np.max(np.abs(a - b), axis=1))
    scale = np.maximum(scale, np.max(np.abs(b), axis=1))
  tiny = np.finfo(np.float64).tiny
  rel_err = abs_err / np.maximum(scale, tiny)
  rel_err[~np.isfinite(rel_err)] = np.inf
  return rel_err, float(np.max(abs_err)) if np.all(np.isfinite(abs_err)) else float("inf")


def _tree_rel_err(a, b) -> float:
  diff = max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
  scale = max(float(np.max(np.abs(np.asarray(y)))) for y in jax.tree_util.tree_leaves(b))
  return diff / max(scale, np.finfo(np.float64).tiny)


def check_against_optax(name: str, *, steps: int = 100, seed: int = 0,
                        transformation: optax.GradientTransformation | None = None,
                        tolerance: float = TOLERANCE) -> OptimizerCheck:
  """Run ``hw.optim``'s configuration ``name`` and optax's side by side and compare.

  Args:
    name: a key of :data:`CASES` (e.g. ``"adam"``, ``"nesterov+schedule"``).
    steps: number of updates.
    seed: seed of the initial parameters and of the per-step gradients.
    transformation: replaces our transformation (to show that a wrong one fails).
    tolerance: largest accepted per-step relative error.

  Returns:
    An :class:`OptimizerCheck`.
  """
  if name not in CASES:
    raise ValueError(f"`name` must be one of {', '.join(CASES)}, got {name!r}")
  case = CASES[name]
  rng = np.random.default_rng(seed)
  params_np, gradients_np = random_tree(rng), random_tree(rng, leading=(steps,))
  with jax.enable_x64(True):
    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), params_np)
    gradients = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), gradients_np)
    ours = case.ours() if transformation is None else transformation
    run = jax.jit(lambda p, g: _run_both(ours, case.optax_reference(), p, g))
    updates_ours, updates_ref, params_ours, params_ref = run(params, gradients)
    dtypes = {x.dtype for x in jax.tree_util.tree_leaves(updates_ours)}
    rel_err, abs_err = _per_step_errors(updates_ours, updates_ref)
    final_err = _tree_rel_err(params_ours, params_ref)
  max_rel = float(np.max(rel_err))
  passed = bool(dtypes == {jnp.dtype(jnp.float64)} and max_rel <= tolerance
                and np.isfinite(final_err))
  return OptimizerCheck(name=name, steps=steps, max_rel_err=max_rel, max_abs_err=abs_err,
                        final_params_rel_err=final_err, tolerance=tolerance, passed=passed,
                        description=case.description)


def verify_all(*, steps: int = 100, seed: int = 0,
               names: Sequence[str] | None = None) -> list[OptimizerCheck]:
  """:func:`check_against_optax` for every configuration in :data:`CASES` (or ``names``)."""
  return [check_against_optax(n, steps=steps, seed=seed) for n in (names or list(CASES))]


def format_table(checks: Sequence[OptimizerCheck]) -> str:
  """The checks as an aligned text table (one row per configuration), then a verdict."""
  header = ("optimizer vs optax", "steps", "max rel err", "max abs err", "final params rel",
            "status", "hyper-parameters")
  rows = [header] + [
      (c.name, str(c.steps), f"{c.max_rel_err:.2e}", f"{c.max_abs_err:.2e}",
       f"{c.final_params_rel_err:.2e}", "pass" if c.passed else "FAIL", c.description)
      for c in checks]
  widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
  lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
  lines.insert(1, "  ".join("-" * w for w in widths))
  failed = sum(not c.passed for c in checks)
  lines.append("")
  lines.append(f"{len(checks)} configurations: " + (
      "all match optax" if not failed else f"{failed} FAIL (tolerance {checks[0].tolerance:g})"))
  return "\n".join(lines)
