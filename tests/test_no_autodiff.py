"""No backward rule in hw.ops uses autodiff, and every public op is a custom_vjp.

Three independent checks (the registry's rows, every implementation path included, drive
the last two):
  * a static scan of every module of hw.ops for autodiff entry points;
  * the forward jaxpr of every op: all computation on differentiable inputs happens
    inside ``custom_vjp_call`` equations (only pure reshaping is allowed outside);
  * a runtime check: every ``custom_vjp`` object of hw.ops gets its ``bwd`` wrapped so
    that, while it runs, jax.grad/vjp/jvp/linearize/linear_transpose (public and
    ``jax._src.api`` names, and JAX's internal ``ad.backward_pass``/``ad.jvp``/
    ``ad.linearize``) raise.
"""
from __future__ import annotations

import ast
import contextlib
import importlib
from pathlib import Path

import jax
import jax._src.api as jax_api
import jax._src.interpreters.ad as jax_ad
import jax.numpy as jnp
import pytest
from jax.extend import core as jex_core

import hw.ops
from hw.testing.mutation import custom_vjps
import hw.tsne
from hw.ops import convolution
from hw.testing._core import bind_case
from hw.verification.registry import REGISTRY, case_key

AUTODIFF_NAMES = {
    "grad", "value_and_grad", "vjp", "jvp", "linearize", "linear_transpose", "jacfwd",
    "jacrev", "hessian", "backward_pass", "jvp_jaxpr", "linearize_jaxpr",
}
STRUCTURAL_PRIMITIVES = {
    "reshape", "squeeze", "expand_dims", "broadcast_in_dim", "convert_element_type", "copy",
    "copy_p",
}
OPS_DIR = Path(hw.ops.__file__).parent
# hw.tsne.cost holds the t-SNE costs, registered beside the ops.
OP_MODULES = sorted(OPS_DIR.glob("*.py")) + [Path(hw.tsne.__file__).parent / "cost.py"]


# --- static scan -------------------------------------------------------------------------

def _autodiff_uses(path: Path) -> list[str]:
  """Autodiff entry points in a module: attribute accesses (``jax.vjp``), imports of those
  names or of JAX's ``ad`` module, and calls of a bare name (``grad(f)``). A local
  variable merely named ``grad`` is not flagged."""
  tree = ast.parse(path.read_text(), filename=str(path))
  found = []
  for node in ast.walk(tree):
    where = f"{path.name}:{getattr(node, 'lineno', '?')}"
    if isinstance(node, ast.Attribute) and node.attr in AUTODIFF_NAMES:
      found.append(f"{where}: uses `.{node.attr}`")
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
        and node.func.id in AUTODIFF_NAMES:
      found.append(f"{where}: calls `{node.func.id}`")
    elif isinstance(node, ast.ImportFrom):
      module = node.module or ""
      for alias in node.names:
        if alias.name in AUTODIFF_NAMES or (alias.name == "ad" and "interpreters" in module):
          found.append(f"{where}: imports `{alias.name}` from {module}")
      if module.endswith("interpreters.ad"):
        found.append(f"{where}: imports from {module}")
    elif isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name.endswith("interpreters.ad"):
          found.append(f"{where}: imports {alias.name}")
  return found


@pytest.mark.parametrize("path", OP_MODULES, ids=[p.name for p in OP_MODULES])
def test_op_modules_do_not_call_autodiff(path):
  assert _autodiff_uses(path) == []


def test_static_scan_catches_autodiff(tmp_path):
  bad = tmp_path / "bad.py"
  bad.write_text("import jax\nfrom jax import vjp\nfrom jax._src.interpreters import ad\n"
                 "def bwd(r, g):\n  grad = g\n  return jax.grad(f)(r) + vjp(f, r)[1](grad)\n")
  uses = _autodiff_uses(bad)
  assert len(uses) == 4, uses  # the import of vjp, of ad, jax.grad and the call vjp(...)


# --- every op (and every implementation path) is a custom_vjp ----------------------------

def _first_case_jaxpr(name):
  spec = REGISTRY[name]
  case = spec.make_cases(case_key(0, name))[0]
  f, primals, extras = bind_case(spec.bind(), case, jnp.float32)
  return jax.make_jaxpr(lambda p, e: f(p, e))(primals, extras), len(primals)


def _primitives_outside_custom_vjp(jaxpr, tainted_inputs):
  """Names of non-structural primitives applied to differentiable data outside custom_vjp."""
  tainted = {v for v, t in zip(jaxpr.invars, tainted_inputs) if t}
  outside, custom_calls = [], 0
  for eqn in jaxpr.eqns:
    uses = [isinstance(v, jex_core.Var) and v in tainted for v in eqn.invars]
    name = eqn.primitive.name
    if name.startswith("custom_vjp_call"):
      custom_calls += any(uses)
    elif any(uses):
      sub = eqn.params.get("jaxpr") or eqn.params.get("call_jaxpr")
      if sub is not None:
        inner_outside, inner_calls = _primitives_outside_custom_vjp(
            getattr(sub, "jaxpr", sub), uses)
        outside += inner_outside
        custom_calls += inner_calls
      elif name not in STRUCTURAL_PRIMITIVES:
        outside.append(name)
    if any(uses):
      tainted.update(eqn.outvars)
  return outside, custom_calls


@pytest.mark.parametrize("name", list(REGISTRY))
def test_op_is_a_custom_vjp(name):
  closed, n_primals = _first_case_jaxpr(name)
  n_inputs = len(closed.jaxpr.invars)
  outside, calls = _primitives_outside_custom_vjp(
      closed.jaxpr, [i < n_primals for i in range(n_inputs)])
  assert calls >= 1, f"{name}: no custom_vjp_call on its differentiable inputs:\n{closed}"
  assert outside == [], (f"{name}: {outside} act on differentiable inputs outside any "
                         f"custom_vjp, so autodiff would differentiate them:\n{closed}")


def test_custom_vjp_detector_rejects_plain_jax():
  jaxpr = jax.make_jaxpr(lambda x: jnp.tanh(x) * 2)(jnp.ones(3))
  outside, calls = _primitives_outside_custom_vjp(jaxpr.jaxpr, [True])
  assert calls == 0 and "tanh" in outside


# --- runtime: backward rules run with autodiff disabled --------------------------------------

def _custom_vjp_objects():
  return custom_vjps("hw.ops")


class _AutodiffCalled(AssertionError):
  pass


@contextlib.contextmanager
def _autodiff_forbidden_in_backward_rules(monkeypatch):
  """Wrap every hw.ops custom_vjp bwd; inside one, autodiff entry points raise."""
  state = {"depth": 0, "ran": set()}

  def forbid(module, attr):
    original = getattr(module, attr, None)
    if original is None:
      return
    def guarded(*args, **kwargs):
      if state["depth"]:
        raise _AutodiffCalled(f"{module.__name__}.{attr} called inside a backward rule")
      return original(*args, **kwargs)
    monkeypatch.setattr(module, attr, guarded)

  for attr in ("grad", "value_and_grad", "vjp", "jvp", "linearize", "linear_transpose",
               "jacfwd", "jacrev", "hessian"):
    forbid(jax, attr)
    forbid(jax_api, attr)
  for attr in ("backward_pass", "jvp", "linearize", "vjp", "linearize_jaxpr", "jvp_jaxpr"):
    forbid(jax_ad, attr)

  for label, fn in _custom_vjp_objects().items():
    def wrapped(*args, _bwd=fn.bwd, _label=label):
      state["depth"] += 1
      try:
        return _bwd(*args)
      finally:
        state["depth"] -= 1
        state["ran"].add(_label)
        if isinstance(args[0], convolution._Geometry):  # which conv algorithm ran
          state["ran"].add(f"{_label}[{args[0].algorithm}]")
    monkeypatch.setattr(fn, "bwd", wrapped)
  yield state


def _trace_vjp(spec, case):
  """Trace (not compile) the VJP of ``spec.op`` on ``case``: backward rules run in Python."""
  f, primals, extras = bind_case(spec.bind(), case, jnp.float32)
  def pullback(p, e):
    out, vjp = jax.vjp(lambda *q: f(q, e), *p)
    return vjp(jnp.ones_like(out))
  jax.make_jaxpr(pullback)(primals, extras)


def test_backward_rules_run_without_autodiff(monkeypatch):
  assert _custom_vjp_objects(), "hw.ops defines no custom_vjp at all"
  with _autodiff_forbidden_in_backward_rules(monkeypatch) as state:
    for name, spec in REGISTRY.items():
      for case in spec.make_cases(case_key(0, name)):
        _trace_vjp(spec, case)
  unused = sorted(set(_custom_vjp_objects()) - state["ran"])
  assert not unused, f"backward rules never exercised by the registry cases: {unused}"
  # One custom_vjp runs every conv algorithm: each must have run too.
  algorithms = ({f"convolution._conv1d[{a}]" for a in convolution.CONV1D_ALGORITHMS}
                | {f"convolution._conv2d[{a}]" for a in convolution.ALGORITHMS})
  assert not algorithms - state["ran"], sorted(algorithms - state["ran"])


def test_runtime_guard_catches_autodiff_in_a_backward_rule(monkeypatch):
  """The guard itself works: a bwd that calls jax.vjp is caught."""
  @jax.custom_vjp
  def cheat(x):
    return jnp.sin(x)
  cheat.defvjp(lambda x: (jnp.sin(x), x),
               lambda x, g: (jax.vjp(jnp.sin, x)[1](g)[0],))
  monkeypatch.setattr(hw.ops, "_test_cheat", cheat, raising=False)
  module = importlib.import_module("hw.ops.activations")
  monkeypatch.setattr(module, "_test_cheat", cheat, raising=False)
  with _autodiff_forbidden_in_backward_rules(monkeypatch):
    with pytest.raises(_AutodiffCalled):
      jax.grad(lambda x: cheat(x))(1.0)
