"""Mutation score: how many perturbed backward rules the registered checks catch.

Every ``jax.custom_vjp`` object defined in a module (a package: its submodules too) has
its backward rule (``.bwd``) replaced, one mutant at a time, by one that perturbs its
outputs:

* ``scale[i]``: output ``i`` times ``1 + 1e-7``;
* ``zero[i]``: the largest-magnitude element of output ``i`` set to 0 (the largest, so
  the mutant differs wherever that gradient is not zero altogether);
* ``swap[i,j]``: outputs ``i`` and ``j`` exchanged (where they have the same shape);
* ``transpose[i]``: output ``i``'s last two axes swapped (where they are equal, > 1).

First the *baseline*: every case of every row runs unmutated; a case that fails (or
crashes) makes the run stop with ``baseline_failures`` naming the row and case, and no
mutant is scored (a mutant "killed" by a bug already there proves nothing). Then, for
every registry row whose cases run a backward rule (found by tracing each case's VJP
with the rules wrapped), each mutant that can apply to the row's cases runs the row's
checks (``hw.verification.verify.check_case``: ``hw.testing.check_vjp`` in ``hw
verify``'s fast setting, float64, float32 off) case by case until one fails: the mutant
is *killed*; if every case passes it *survived*. A case that crashes under a mutant is
not a kill (the mutant counts as surviving, with the crash noted). Rows are per
implementation path, so a backward rule shared by paths (``conv2d[shift]``,
``conv2d[lax]``, ...) is mutated once per path.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
import pkgutil
from typing import Callable, Iterator, Mapping

import jax
import jax.numpy as jnp

from hw.testing._core import OpSpec, fast_compilation

SCALE = 1.0 + 1e-7
KINDS = ("scale", "zero", "swap", "transpose")


def custom_vjps(module: str) -> dict[str, jax.custom_vjp]:
  """``"submodule.name" -> custom_vjp`` for every custom_vjp object of ``module``."""
  root = importlib.import_module(module)
  modules = [root]
  if hasattr(root, "__path__"):
    modules += [importlib.import_module(i.name)
                for i in pkgutil.walk_packages(root.__path__, prefix=f"{module}.")]
  found = {}
  for mod in modules:
    short = mod.__name__[len(module) + 1:] if mod is not root else mod.__name__.rpartition(".")[2]
    for attr, value in vars(mod).items():
      if isinstance(value, jax.custom_vjp) and getattr(value, "bwd", None) is not None:
        found.setdefault(f"{short}.{attr}", value)
  # the same object imported into two modules: keep one label
  seen, unique = set(), {}
  for label, fn in found.items():
    if id(fn) not in seen:
      seen.add(id(fn))
      unique[label] = fn
  return unique


@dataclasses.dataclass(frozen=True)
class Mutant:
  rule: str          # label of the custom_vjp
  kind: str          # scale / zero / swap / transpose
  outputs: tuple     # output indices it touches

  @property
  def name(self) -> str:
    return f"{self.kind}[{','.join(map(str, self.outputs))}]"

  def applies(self, shapes: tuple) -> bool:
    """Whether it changes anything for a bwd whose outputs have ``shapes``."""
    if any(i >= len(shapes) or shapes[i] is None for i in self.outputs):
      return False
    if self.kind == "swap":
      return shapes[self.outputs[0]] == shapes[self.outputs[1]]
    if self.kind == "transpose":
      s = shapes[self.outputs[0]]
      return len(s) >= 2 and s[-1] == s[-2] and s[-1] > 1
    return all(math.prod(shapes[i]) > 0 for i in self.outputs)

  def wrap(self, bwd: Callable) -> Callable:
    def mutated(*args):
      outs = list(bwd(*args))
      shapes = tuple(None if o is None else tuple(o.shape) for o in outs)
      if not self.applies(shapes):
        return tuple(outs)
      i = self.outputs[0]
      if self.kind == "scale":
        outs[i] = outs[i] * SCALE
      elif self.kind == "zero":
        flat = outs[i].ravel()
        flat = flat.at[jnp.argmax(jnp.abs(flat))].set(0)
        outs[i] = flat.reshape(outs[i].shape)
      elif self.kind == "swap":
        j = self.outputs[1]
        outs[i], outs[j] = outs[j], outs[i]
      elif self.kind == "transpose":
        outs[i] = jnp.swapaxes(outs[i], -1, -2)
      return tuple(outs)
    return mutated


@contextlib.contextmanager
def _patched(fn, bwd) -> Iterator[None]:
  original = fn.bwd
  fn.bwd = bwd
  try:
    yield
  finally:
    fn.bwd = original


def _uses(objects: Mapping[str, jax.custom_vjp], registry: Mapping[str, OpSpec], seed: int
          ) -> dict[tuple[str, str], list]:
  """``(rule, row) -> [(case, output shapes)]`` for every case whose VJP runs the rule."""
  from hw.testing._core import bind_case
  from hw.verification.registry import case_key
  uses: dict[tuple[str, str], list] = {}
  current: dict = {}
  with contextlib.ExitStack() as stack:
    for label, fn in objects.items():
      def recording(*args, _bwd=fn.bwd, _label=label):
        outs = _bwd(*args)
        shapes = tuple(None if o is None else tuple(o.shape) for o in outs)
        uses.setdefault((_label, current["row"]), []).append((current["case"], shapes))
        return outs
      stack.enter_context(_patched(fn, recording))
    with jax.enable_x64(True):
      for row, spec in registry.items():
        for case in spec.make_cases(case_key(seed, row)):
          current.update(row=row, case=case)
          f, primals, extras = bind_case(spec.bind(), case, jnp.float64)

          def pullback(p, e, f=f):
            out, vjp = jax.vjp(lambda *q: f(q, e), *p)
            return vjp(jax.tree.map(jnp.ones_like, out))
          jax.make_jaxpr(pullback)(primals, extras)
  return uses


def mutants_of(rule: str, shapes_seen: list[tuple]) -> list[Mutant]:
  """Every mutant of a rule that applies to at least one of ``shapes_seen``."""
  n = max(len(s) for s in shapes_seen)
  candidates = []
  for i in range(n):
    candidates += [Mutant(rule, "scale", (i,)), Mutant(rule, "zero", (i,))]
  candidates += [Mutant(rule, "swap", (i, j)) for i in range(n) for j in range(i + 1, n)]
  candidates += [Mutant(rule, "transpose", (i,)) for i in range(n)]
  return [m for m in candidates if any(m.applies(s) for s in shapes_seen)]


@dataclasses.dataclass
class MutantResult:
  rule: str
  row: str
  mutant: str
  killed: bool
  killed_by: str = ""   # the case (and how) that failed


@dataclasses.dataclass
class MutationReport:
  module: str
  results: list[MutantResult]
  unused_rules: list[str]   # custom_vjps no registered case runs
  baseline_failures: list[str] = dataclasses.field(default_factory=list)  # "row[case]: why"

  @property
  def killed(self) -> int:
    return sum(r.killed for r in self.results)

  @property
  def total(self) -> int:
    return len(self.results)

  @property
  def survivors(self) -> list[MutantResult]:
    return [r for r in self.results if not r.killed]

  def table(self) -> str:
    per: dict[tuple[str, str], list[MutantResult]] = {}
    for r in self.results:
      per.setdefault((r.row, r.rule), []).append(r)
    header = ("row", "backward rule", "mutants", "killed", "survivors")
    cells = [header] + [
        (row, rule, str(len(rs)), str(sum(r.killed for r in rs)),
         ", ".join(r.mutant for r in rs if not r.killed) or "-")
        for (row, rule), rs in per.items()]
    if self.baseline_failures:
      return "\n".join(["baseline fails: the unmutated rules fail their own checks, so no "
                        "mutant is scored"] + [f"  {b}" for b in self.baseline_failures])
    crashes = [r for r in self.results if not r.killed and r.killed_by.startswith("crash")]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in crashes:
      lines.append(f"note {r.row} {r.mutant}: a case crashed, which is not a kill "
                   f"({r.killed_by[:120]})")
    for rule in self.unused_rules:
      lines.append(f"NOT COVERED {rule}: no registered case runs this backward rule")
    lines.append(f"\n{self.killed}/{self.total} mutants killed"
                 + (f", {len(self.survivors)} survived" if self.survivors else "")
                 + (f", {len(self.unused_rules)} backward rule(s) not covered"
                    if self.unused_rules else ""))
    return "\n".join(lines)

  def to_json(self) -> dict:
    return {"module": self.module, "killed": self.killed, "total": self.total,
            "unused_rules": self.unused_rules, "baseline_failures": self.baseline_failures,
            "results": [dataclasses.asdict(r) for r in self.results]}


def default_registry(module: str) -> dict[str, OpSpec]:
  """hw's own registry for ``hw.ops``; a user module's ``@register`` rows otherwise."""
  if module == "hw.ops" or module.startswith("hw.ops."):
    from hw.verification.registry import REGISTRY
    return dict(REGISTRY)
  from hw.testing._register import discover
  return discover(module)


def mutation_score(module: str, registry: Mapping[str, OpSpec] | None = None, *,
                   rows: list[str] | None = None, rules: list[str] | None = None,
                   kinds: tuple[str, ...] = KINDS, seed: int = 0,
                   finite_differences: bool = True) -> MutationReport:
  """Mutate every backward rule of ``module`` and run the registered checks on each mutant.

  Args:
    module: a module or package name (``"hw.ops"``, ``"mypkg.ops"``).
    registry: row name -> ``OpSpec`` (default: ``default_registry(module)``).
    rows, rules: restrict to these registry rows / rule labels (``"activations._relu"``).
    kinds: the mutant kinds to use.
    seed: seed of the cases.
    finite_differences: also run the finite-difference check of each case.
  """
  from hw.verification.registry import case_key
  from hw.verification.verify import check_case
  registry = dict(default_registry(module) if registry is None else registry)
  if rows is not None:
    registry = {r: registry[r] for r in rows}
  objects = custom_vjps(module)
  if rules is not None:
    objects = {k: objects[k] for k in rules}
  with fast_compilation():
    baseline = []
    for row, spec in registry.items():
      for case in spec.make_cases(case_key(seed, row)):
        outcome = check_case(spec, case, finite_differences=finite_differences)
        if not outcome.passed:
          baseline.append(f"{row}[{case.name}]: "
                          + (outcome.error or "; ".join(outcome.failures))[:300])
    if baseline:
      return MutationReport(module, [], [], baseline)
    uses = _uses(objects, registry, seed)
    results = []
    for (rule, row), seen in uses.items():
      spec = registry[row]
      for mutant in mutants_of(rule, [s for _, s in seen]):
        if mutant.kind not in kinds:
          continue
        result = MutantResult(rule, row, mutant.name, killed=False)
        with _patched(objects[rule], mutant.wrap(objects[rule].bwd)):
          for case in _unique_cases(seen):
            if not any(mutant.applies(s) for c, s in seen if c is case):
              continue
            outcome = check_case(spec, case, finite_differences=finite_differences)
            if outcome.error:  # a crash is no kill
              result.killed_by = f"crash in {case.name}: {outcome.error}"
              break
            if not outcome.passed:
              result.killed, result.killed_by = True, f"{case.name}: {outcome.failures[0]}"
              break
        results.append(result)
  used = {rule for rule, _ in uses}
  unused = sorted(set(objects) - used) if rows is None else []
  return MutationReport(module, results, unused)


def _unique_cases(seen):
  out, ids = [], set()
  for case, _ in seen:
    if id(case) not in ids:
      ids.add(id(case))
      out.append(case)
  return out
