"""``hw verify``: check every hand-written VJP with ``hw.testing.check_vjp``.

Each row of the registry runs ``check_vjp`` on each of its cases against the row's
autodiff reference with the row's tolerance (relative error ``max|a - b| / max(max|b|,
tiny)``, 1e-10 by default) in ``VERIFY_SETTING``, the fast setting of the checker: the
forward value, the VJP for every basis cotangent (4 random ones above 256 output
elements), the structure checks (shape/dtype, float0, zero cotangent) and finite
differences (Richardson, per-element steps) where the case is differentiable, all in one
compiled program per case; the float32 run on the row's ``float32_case`` only. The fast
setting skips what ``check_vjp`` runs by default on top: the eager run (the jit-vs-eager
row), ``vmap``, the two-runs nondeterminism check and the Taylor test, and it checks
every basis cotangent only up to 256 output elements (``check_vjp``: 2048) — run them
with ``check_vjp`` itself or in the test suite. An
op with several implementation paths has a row for its automatic choice (``conv2d``) and
one per path (``conv2d[shift]``, ...), each with the path pinned.

``--module MODULE`` runs the same checks and table over the functions a user registered
with ``@hw.testing.register(reference=..., cases=...)`` in MODULE (a package: with its
submodules; found from the current directory as pytest finds test modules).
``--mutate MODULE`` prints the mutation score of MODULE's backward rules
(``hw.testing.mutation``): the unmutated rules are checked first (exit 1, "baseline
fails", if one fails), then every ``custom_vjp`` rule is perturbed in turn (an output
scaled by 1 + 1e-7, two outputs of one shape swapped, one element zeroed, a square output
transposed), each mutant run through the rows that use the rule; exit status 1 when a
mutant survives or a rule is run by no case.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from typing import Callable, Mapping, Sequence

from hw import plotting
from hw.testing._core import Case, OpSpec, fast_compilation
from hw.testing.check import check_vjp

# check_vjp's fast setting for hw verify (see the module docstring for what it skips).
VERIFY_SETTING = dict(eager=False, vmap=False, nondeterminism=False, taylor=False, order=1,
                      max_basis=256, random_cotangents=4)


@dataclasses.dataclass
class CaseResult:
  """What ``check_vjp`` found on one case. ``fd`` and ``float32`` are "pass", "fail" or
  "n.a."; ``failures`` holds the failing rows (input / check: rel err, note)."""
  op: str
  case: str
  forward_abs_err: float = float("nan")
  forward_rel_err: float = float("nan")
  grad_abs_err: float = float("nan")
  grad_rel_err: float = float("nan")
  fd: str = "n.a."
  fd_note: str = ""
  float32: str = "n.a."
  error: str = ""
  passed: bool = False
  failures: list[str] = dataclasses.field(default_factory=list)


def _worst(rows, check) -> tuple[float, float]:
  """(max abs error, max relative error) over the rows of ``check``."""
  chosen = [r for r in rows if r.check == check and r.value is not None]
  if not chosen:
    return 0.0, 0.0
  abs_err = max(abs(r.value - r.reference) if math.isfinite(r.value - r.reference)
                else math.inf for r in chosen)
  return abs_err, max(r.rel_err for r in chosen)


def check_case(spec: OpSpec, case: Case, *, op: Callable | None = None,
               finite_differences: bool = True, float32: bool = False,
               setting: Mapping | None = None) -> CaseResult:
  """``check_vjp`` of the row's op (or ``op``, with the row's ``algorithm``) on ``case``
  against the row's reference and tolerance; a crash is a failed case, not an error."""
  result = CaseResult(spec.name, case.name)
  setting = dict(VERIFY_SETTING if setting is None else setting)
  try:
    try:
      report = check_vjp(spec.bind(op), case, reference=spec.reference, rtol=spec.tolerance,
                         fd=finite_differences, float32=float32, name=spec.name, **setting)
    except AssertionError as exc:
      report = getattr(exc, "report", None)
      if report is None:
        raise
  except Exception as exc:  # a crash of the op is a failure to report, not to raise
    result.error = f"{type(exc).__name__}: {exc}".strip()[:500]
    return result
  rows = report.rows
  result.forward_abs_err, result.forward_rel_err = _worst(rows, "value")
  result.grad_abs_err, result.grad_rel_err = _worst(rows, "reference")
  skipped = dict(report.skipped)
  fd_rows = [r for r in rows if r.check in ("finite differences", "fd h vs h/2")]
  if fd_rows:
    result.fd = "pass" if all(r.passed for r in fd_rows) else "fail"
    worst = max((r for r in fd_rows if r.check == "finite differences"),
                key=lambda r: r.rel_err, default=fd_rows[0])
    result.fd_note = (f"<ct, J t>: finite differences {worst.reference:.8g}, VJP "
                      f"{worst.value:.8g}, rel err {worst.rel_err:.1e}")
  else:
    result.fd_note = skipped.get("finite differences", "")
  f32 = [r for r in rows if r.check == "float32"]
  if f32:
    result.float32 = "pass" if all(r.passed for r in f32) else "fail"
  result.failures = [f"{r.input} / {r.check}: rel err {r.rel_err:.2e}"
                     + (f" ({r.note})" if r.note else "") for r in report.failures]
  result.passed = report.passed
  return result


@dataclasses.dataclass
class OpReport:
  """Summary of one registry row (an op, or one implementation path of it) over its cases."""
  op: str
  function: str
  algorithm: str | None
  cases: int
  max_abs_err: float
  max_rel_err: float
  fd_pass: int
  fd_fail: int
  fd_na: int
  float32_jit: str
  passed: bool
  failures: list[str]
  case_results: list[CaseResult]

  def to_json(self, with_cases: bool = True) -> dict:
    data = {
        "op": self.op, "function": self.function,
        "algorithm": self.algorithm if self.algorithm is not None else "automatic",
        "cases": self.cases,
        "max_abs_err": _finite_or_none(self.max_abs_err),
        "max_rel_err": _finite_or_none(self.max_rel_err),
        "finite_differences": {"pass": self.fd_pass, "fail": self.fd_fail, "n.a.": self.fd_na},
        "float32_jit": self.float32_jit,
        "status": "pass" if self.passed else "FAIL",
        "failures": self.failures,
    }
    if with_cases:
      data["case_results"] = [
          {k: (_finite_or_none(v) if isinstance(v, float) else v)
           for k, v in dataclasses.asdict(r).items()} for r in self.case_results]
    return data


def _finite_or_none(value: float):
  return value if math.isfinite(value) else None


def verify_op(spec: OpSpec, *, seed: int = 0, finite_differences: bool = True) -> OpReport:
  """Run every check of ``spec`` and summarise."""
  from hw.verification.registry import case_key
  cases = list(spec.make_cases(case_key(seed, spec.name)))
  results = [check_case(spec, case, finite_differences=finite_differences,
                        float32=k == spec.float32_case) for k, case in enumerate(cases)]
  f32_ok = all(r.float32 != "fail" for r in results) and not results[
      spec.float32_case].error
  failures = []
  for r in results:
    if not r.passed:
      reason = r.error or "; ".join(r.failures)
      failures.append(f"{r.case}: {reason}")
  numbers = lambda attr: [getattr(r, attr) for r in results if not r.error]
  worst = lambda values: max(values) if values else float("nan")
  return OpReport(
      op=spec.name, function=spec.function, algorithm=spec.algorithm, cases=len(cases),
      max_abs_err=worst(numbers("forward_abs_err") + numbers("grad_abs_err")),
      max_rel_err=worst(numbers("forward_rel_err") + numbers("grad_rel_err")),
      fd_pass=sum(r.fd == "pass" for r in results),
      fd_fail=sum(r.fd == "fail" for r in results),
      fd_na=sum(r.fd == "n.a." for r in results),
      float32_jit="pass" if f32_ok else "FAIL",
      passed=not failures, failures=failures, case_results=results)


def rows_of(name: str, registry: Mapping[str, OpSpec]) -> list[str]:
  """The names of the rows of op ``name``: its automatic row and its ``[algorithm]`` rows."""
  return [row for row, spec in registry.items() if row == name or spec.function == name]


def select(registry: Mapping[str, OpSpec], ops: Sequence[str] | None) -> list[str]:
  """Row names for ``ops``: a row name, or an op name for all of its rows (in registry
  order); every row when ``ops`` is empty."""
  if not ops:
    return list(registry)
  unknown = [n for n in ops if not rows_of(n, registry)]
  if unknown:
    raise ValueError(f"`ops` has names not in the registry: {unknown}; known: {list(registry)}")
  wanted = {row for n in ops for row in rows_of(n, registry)}
  order = {n: i for i, n in enumerate(ops)}
  first = lambda row: min(order[n] for n in ops if row in rows_of(n, registry))
  return sorted(wanted, key=lambda row: (first(row), list(registry).index(row)))


def verify(registry: Mapping[str, OpSpec] | None = None, *, ops: Sequence[str] | None = None,
           seed: int = 0, finite_differences: bool = True,
           progress: Callable[[str], None] | None = None) -> list[OpReport]:
  """Check the selected rows (default: hw's registry); ``progress`` gets one line per row
  as it finishes."""
  if registry is None:
    from hw.verification.registry import REGISTRY as registry
  names = select(registry, ops)
  reports = []
  with fast_compilation():
    for index, name in enumerate(names):
      began = time.perf_counter()
      reports.append(verify_op(registry[name], seed=seed, finite_differences=finite_differences))
      if progress is not None:
        progress(f"[verify] {index + 1}/{len(names)} {name}: "
                 f"{'pass' if reports[-1].passed else 'FAIL'} ({time.perf_counter() - began:.1f} s)")
  return reports


def format_table(reports: Sequence[OpReport]) -> str:
  header = ("op", "cases", "max abs err", "max rel err", "finite diff (pass/fail/n.a.)",
            "f32 jit", "status")
  rows = [header]
  for r in reports:
    rows.append((r.op, str(r.cases), f"{r.max_abs_err:.2e}", f"{r.max_rel_err:.2e}",
                 f"{r.fd_pass}/{r.fd_fail}/{r.fd_na}", r.float32_jit,
                 "pass" if r.passed else "FAIL"))
  widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
  lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
  lines.insert(1, "  ".join("-" * w for w in widths))
  if any(r.algorithm is not None for r in reports):
    lines.append("(op[path]: that implementation path pinned with algorithm=path; "
                 "op alone: its automatic choice)")
  for r in reports:
    for failure in r.failures:
      lines.append(f"FAIL {r.op} {failure}")
  return "\n".join(lines)


def plot_errors(reports: Sequence[OpReport], path: str) -> None:
  """Draw :func:`errors_figure` into the PNG ``path``."""
  plotting.save(errors_figure(reports), path, dpi=100)


def errors_figure(reports: Sequence[OpReport]):
  """A log-scale bar per row: its worst relative error against autodiff of the reference,
  with the tolerance drawn across (an exact 0 is drawn at the axis floor, 1e-18); the
  legend under the x label."""
  plt = plotting.pyplot()
  floor = 1e-18
  values = [max(r.max_rel_err, floor) if math.isfinite(r.max_rel_err) else 1.0 for r in reports]
  fig, ax = plt.subplots(figsize=(10, 0.22 * len(reports) + 1.2))
  colors = ["tab:blue" if r.passed else "tab:red" for r in reports]
  ax.barh(range(len(reports)), values, color=colors, left=floor)
  from hw.verification.registry import REGISTRY
  ax.axvline(REGISTRY[reports[0].op].tolerance if reports[0].op in REGISTRY else 1e-10,
             color="k", ls="--", lw=1,
             label="tolerance")
  ax.set_xscale("log")
  ax.set_xlim(floor, 1.0)
  ax.set_yticks(range(len(reports)), [r.op for r in reports], fontsize=7)
  ax.invert_yaxis()
  ax.set_xlabel("worst relative error of the hand-written VJP vs autodiff (float64; 0 drawn at 1e-18)")
  fig.tight_layout()
  axes_inches = ax.get_position().height * fig.get_figheight()
  plotting.legend_below(ax, offset=0.55 / axes_inches, fontsize=8)   # under the x label
  return fig


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="hw verify", description=__doc__.splitlines()[0])
  parser.add_argument("--json", action="store_true", help="print the results as JSON")
  parser.add_argument("--ops", default="",
                      help="comma-separated op names (all rows of the op: conv2d) or row "
                           "names (conv2d[lax]); default: all")
  parser.add_argument("--seed", type=int, default=0, help="seed of the random cases")
  parser.add_argument("--no-finite-differences", action="store_true",
                      help="skip the finite-difference checks (faster)")
  parser.add_argument("--chart", default=None, metavar="PNG",
                      help="also draw each row's worst relative error against the tolerance")
  parser.add_argument("--cases", action="store_true",
                      help="with --json: include every case's numbers")
  parser.add_argument("--module", default=None, metavar="MODULE",
                      help="check the functions MODULE (a package: with its submodules) "
                           "registered with @hw.testing.register instead of hw.ops")
  parser.add_argument("--mutate", default=None, metavar="MODULE",
                      help="mutation score: perturb every custom_vjp backward rule of MODULE "
                           "(hw.ops, or a module with @hw.testing.register rows) and report "
                           "which mutants the checks kill")
  return parser.parse_args(list(argv))


def _current_directory_importable() -> None:
  """Let ``--module``/``--mutate`` import modules of the current directory, as pytest and
  ``python -m`` do (no ``PYTHONPATH=.``)."""
  here = os.getcwd()
  if here not in sys.path and "" not in sys.path:
    sys.path.insert(0, here)


def main(argv: Sequence[str] | None = None, *,
         registry: Mapping[str, OpSpec] | None = None) -> int:
  """Entry point of ``hw verify``. Returns 0 when every op passes, 1 otherwise."""
  args = parse_args(sys.argv[1:] if argv is None else argv)
  ops = [name.strip() for name in args.ops.split(",") if name.strip()]
  if args.mutate or args.module:
    _current_directory_importable()
  if args.mutate:
    return _mutate(args, ops)
  if registry is None and not args.module:
    from hw.verification.registry import REGISTRY as registry
  if args.module:
    from hw.testing._register import discover
    try:
      registry = discover(args.module)
    except ValueError as exc:
      print(f"hw verify: {exc}", file=sys.stderr)
      return 2
    if not registry:
      print(f"hw verify: module {args.module} registers no function "
            "(decorate them with @hw.testing.register(reference=..., cases=...))",
            file=sys.stderr)
      return 2
  start = time.perf_counter()
  show = lambda line: print(line, file=sys.stderr, flush=True)
  try:
    reports = verify(registry, ops=ops, seed=args.seed,
                     finite_differences=not args.no_finite_differences, progress=show)
  except ValueError as exc:
    print(f"hw verify: {exc}", file=sys.stderr)
    return 2
  # The hand-written optimisers (hw.optim) against optax, when every op of hw is checked.
  optimizers = []
  if not ops and not args.module:
    from hw.optim import verify as optim_verify
    with fast_compilation():
      optimizers = optim_verify.verify_all(seed=args.seed)
  elapsed = time.perf_counter() - start
  passed = all(r.passed for r in reports) and all(c.passed for c in optimizers)
  if args.chart and reports:
    plot_errors(reports, args.chart)
  if args.json:
    print(json.dumps({
        "passed": passed, "seconds": round(elapsed, 2),
        "ops": [r.to_json(with_cases=args.cases) for r in reports],
        "optimizers": [c.to_json() for c in optimizers]}, indent=2))
  else:
    print(format_table(reports))
    if optimizers:
      print("\n" + optim_verify.format_table(optimizers))
    total = sum(r.cases for r in reports)
    functions = len({r.function for r in reports})
    paths = sum(r.algorithm is not None for r in reports)
    failed = sum(not r.passed for r in reports) + sum(not c.passed for c in optimizers)
    verdict = "all rows pass" if passed else f"{failed} row(s) FAIL"
    optimizer_note = f", {len(optimizers)} optimizer configurations" if optimizers else ""
    print(f"\n{functions} ops in {len(reports)} rows ({paths} pinned implementation paths), "
          f"{total} cases{optimizer_note}, {elapsed:.1f} s: {verdict}")
  return 0 if passed else 1


def _mutate(args, ops) -> int:
  """``hw verify --mutate MODULE``: the mutation score of MODULE's backward rules."""
  from hw.testing.mutation import default_registry, mutation_score
  start = time.perf_counter()
  try:
    registry = default_registry(args.mutate)
    rows = select(registry, ops) if ops else None
    report = mutation_score(args.mutate, registry, rows=rows, seed=args.seed,
                            finite_differences=not args.no_finite_differences)
  except (ValueError, ImportError) as exc:
    print(f"hw verify: {exc}", file=sys.stderr)
    return 2
  elapsed = time.perf_counter() - start
  if args.json:
    print(json.dumps({**report.to_json(), "seconds": round(elapsed, 2)}, indent=2))
  else:
    print(report.table())
    print(f"{elapsed:.1f} s")
  if report.baseline_failures:
    print("hw verify: baseline fails (the unmutated rules fail their own checks, so no "
          "mutant is scored): " + "; ".join(report.baseline_failures), file=sys.stderr)
    return 1
  return 0 if not report.survivors and not report.unused_rules else 1


if __name__ == "__main__":
  sys.exit(main())
