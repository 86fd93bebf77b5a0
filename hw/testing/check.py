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

import dataclasses
import functools
import inspect
import math
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from hw.testing._core import TINY, Case, errors, fast_compilation, jit as _jit

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

_UNJITTABLE = (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
               jax.errors.TracerArrayConversionError, jax.errors.TracerIntegerConversionError)


@dataclasses.dataclass
class Row:
  """One check on one input: the worst element and its relative error."""
  input: str
  check: str
  index: str = ""
  value: float = float("nan")
  reference: float = float("nan")
  rel_err: float = 0.0
  tolerance: float = 0.0
  passed: bool = True
  note: str = ""


@dataclasses.dataclass
class VJPReport:
  """What ``check_vjp`` found. ``rows`` holds every check run; ``skipped`` the checks not
  run, with the reason."""
  name: str
  rows: list[Row]
  skipped: list[tuple[str, str]]
  cotangents: str
  seconds: float

  @property
  def passed(self) -> bool:
    return all(r.passed for r in self.rows)

  @property
  def failures(self) -> list[Row]:
    return [r for r in self.rows if not r.passed]

  def worst(self) -> dict[str, float]:
    """Check name -> worst relative error over inputs."""
    out: dict[str, float] = {}
    for r in self.rows:
      out[r.check] = max(out.get(r.check, 0.0), r.rel_err)
    return out

  def table(self, rows: Sequence[Row] | None = None) -> str:
    rows = self.rows if rows is None else rows
    header = ("input", "check", "worst element", "value", "reference", "rel err",
              "tolerance", "status")
    cells = [header] + [
        (r.input, r.check, r.index, _num(r.value), _num(r.reference), _num(r.rel_err, ".1e"),
         _num(r.tolerance, ".0e"), "pass" if r.passed else "FAIL") for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in rows:
      if r.note:
        lines.append(f"  {r.input} / {r.check}: {r.note}")
    for check, reason in self.skipped:
      lines.append(f"  skipped {check}: {reason}")
    return "\n".join(lines)

  def __str__(self) -> str:
    verdict = "pass" if self.passed else f"FAIL ({len(self.failures)} check(s))"
    return (f"check_vjp({self.name}): {verdict}; cotangents: {self.cotangents}; "
            f"{self.seconds:.1f} s\n{self.table()}")


def _num(v: float, fmt: str = ".10g") -> str:
  if isinstance(v, float) and math.isnan(v):
    return ""
  return format(v, fmt)


def _arg_names(f: Callable, n: int) -> list[str]:
  try:
    params = [p for p in inspect.signature(f).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = [p.name for p in params]
  except (TypeError, ValueError):
    names = []
  return [names[i] if i < len(names) else f"arg{i}" for i in range(n)]


def _kind(a: Any) -> str:
  if isinstance(a, (np.ndarray, jax.Array)):
    if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
      return "key"
    if jnp.issubdtype(a.dtype, np.floating):
      return "float"
    if jnp.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
      return "int"
    return "other"
  return "static"


def _index(shape, flat: int) -> str:
  if not shape:
    return "()"
  return str(tuple(int(i) for i in np.unravel_index(flat, shape)))


def _compare_batched(name: str, check: str, actual: np.ndarray, expected: np.ndarray,
                     tolerance: float, ct_label: Callable[[int], str] | None = None) -> Row:
  """A row for ``actual`` vs ``expected`` (optionally with a leading cotangent axis)."""
  actual = np.asarray(actual, np.float64)
  expected = np.asarray(expected, np.float64)
  if actual.shape != expected.shape:
    return Row(name, check, passed=False,
               note=f"shape {actual.shape}, expected {expected.shape}")
  _, rel = errors(actual, expected)
  if actual.size == 0:
    return Row(name, check, rel_err=0.0, tolerance=tolerance)
  diff = np.abs(actual - expected)
  diff = np.where(np.isnan(diff), np.inf, diff)
  flat = int(np.argmax(diff))
  where = np.unravel_index(flat, actual.shape)
  if ct_label is not None:
    index = f"{ct_label(int(where[0]))} {_index(actual.shape[1:], int(np.ravel_multi_index(where[1:], actual.shape[1:])) if actual.ndim > 1 else 0)}"
  else:
    index = _index(actual.shape, flat)
  return Row(name, check, index, float(actual.ravel()[flat]), float(expected.ravel()[flat]),
             rel, tolerance, bool(rel <= tolerance))


def _flat(tree) -> list:
  return jax.tree.leaves(tree)


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


class _Checker:
  """The state of one ``check_vjp`` call (split into steps for readability)."""

  def __init__(self, f, reference, args, kinds, argnums, names, opts, rows, skipped):
    self.f, self.reference, self.args, self.kinds = f, reference, args, kinds
    self.argnums, self.names, self.opts = argnums, names, opts
    self.rows, self.skipped = rows, skipped
    self.int_slots = [i for i, k in enumerate(kinds) if k == "int"]
    self.extra_slots = [i for i, k in enumerate(kinds)
                        if k in ("float", "key", "other") and i not in argnums]
    self.rng = np.random.default_rng(opts["seed"])
    self.cotangent_kind = "n.a."
    self.jit = _jit if opts["jit"] else (lambda fn, **kw: fn)

  # -- binding -------------------------------------------------------------------------

  def _convert(self, dtype):
    conv = lambda a: jnp.asarray(a, dtype) if _kind(a) == "float" else (
        jnp.asarray(a) if _kind(a) in ("int", "other") else a)
    primals = [conv(self.args[i]) for i in self.argnums]
    ints = [conv(self.args[i]) for i in self.int_slots]
    extras = [conv(self.args[i]) for i in self.extra_slots]
    return primals, ints, extras

  def _call(self, fn, primals, ints, extras):
    full = list(self.args)
    for i, v in zip(self.argnums, primals):
      full[i] = v
    for i, v in zip(self.int_slots, ints):
      full[i] = v
    for i, v in zip(self.extra_slots, extras):
      full[i] = v
    return fn(*full)

  def _pullback(self, fn, primals, ints, extras):
    return jax.vjp(lambda *p: self._call(fn, p, ints, extras), *primals)

  def _fail(self, input_, check, note):
    self.rows.append(Row(input_, check, passed=False, note=note))

  # -- float64 ---------------------------------------------------------------------------

  def run(self, skip_fd):
    f, ref, opts = self.f, self.reference, self.opts
    primals, ints, extras = self._convert(jnp.float64)
    self.primals64, self.ints64, self.extras64 = primals, ints, extras
    try:
      out_shape = jax.eval_shape(lambda *p: self._call(f, p, ints, extras), *primals)
    except _UNJITTABLE as exc:
      if opts["jit"]:
        raise ValueError(
            "check_vjp: f cannot be traced (it is not jittable: it converts a traced value "
            f"to a Python/NumPy value): {type(exc).__name__}: {str(exc).splitlines()[0]} "
            "— make it jittable, or pass jit=False to check it eagerly") from exc
      out_shape = None
    if out_shape is not None:
      leaves = _flat(out_shape)
      for leaf in leaves:
        if not jnp.issubdtype(leaf.dtype, np.floating):
          raise ValueError(f"check_vjp: f returns a {leaf.dtype} output; only floating "
                           "outputs can be differentiated")
      if ref is not None:
        ref_shape = jax.eval_shape(lambda *p: self._call(ref, p, ints, extras), *primals)
        got = jax.tree.map(lambda s: (s.shape, str(s.dtype)), out_shape)
        want = jax.tree.map(lambda s: (s.shape, str(s.dtype)), ref_shape)
        if jax.tree.structure(out_shape) != jax.tree.structure(ref_shape) or got != want:
          raise ValueError(
              f"check_vjp: the reference returns {want} but f returns {got} "
              "(shape, dtype): they must return the same outputs")

    # Eager: the structure checks and the pullback every later check compares with.
    try:
      out, pull = jax.vjp(lambda *p: self._call(f, p[:len(primals)], p[len(primals):], extras),
                          *primals, *ints)
    except _UNJITTABLE:
      raise
    except (TypeError, ValueError, NotImplementedError) as exc:
      raise ValueError(
          f"check_vjp: jax.vjp of f fails in argument(s) "
          f"{[self.names[i] for i in self.argnums]}: {type(exc).__name__}: "
          f"{str(exc).splitlines()[0] if str(exc) else ''} — is f differentiable in each "
          "marked argument?") from exc
    out_leaves, out_tree = jax.tree.flatten(out)
    self.out_leaves64, self.out_tree = out_leaves, out_tree
    n_out = sum(int(np.prod(o.shape)) for o in out_leaves)
    random_ct = lambda: [jnp.asarray(self.rng.standard_normal(o.shape), o.dtype)
                         for o in out_leaves]
    ct0 = random_ct()
    self.ct0 = ct0
    unflat = lambda leaves: jax.tree.unflatten(out_tree, leaves)
    try:
      grads = pull(unflat(ct0))
    except (TypeError, ValueError) as exc:
      raise ValueError(f"check_vjp: the backward rule of f fails: {type(exc).__name__}: "
                       f"{exc}") from exc
    diff_grads, int_grads = grads[:len(primals)], grads[len(primals):]
    shapes_ok = True
    for i, g, p in zip(self.argnums, diff_grads, primals):
      if g.shape != p.shape or g.dtype != p.dtype:
        shapes_ok = False
        self._fail(self.names[i], "shape/dtype",
                   f"gradient has shape {g.shape} dtype {g.dtype}; the input has shape "
                   f"{p.shape} dtype {p.dtype}")
      else:
        self.rows.append(Row(self.names[i], "shape/dtype", note=""))
    for i, g in zip(self.int_slots, int_grads):
      ok = g.dtype == jax.dtypes.float0
      self.rows.append(Row(self.names[i], "float0", passed=ok, note="" if ok else (
          f"integer input {self.names[i]} got a cotangent of dtype {g.dtype}, expected "
          "float0 (the backward rule must return None for it)")))
    zero = pull(unflat([jnp.zeros_like(o) for o in out_leaves]))
    for i, g in zip(self.argnums, zero[:len(primals)]):
      worst = float(np.max(np.abs(np.asarray(g, np.float64)))) if g.size else 0.0
      if math.isnan(worst) or np.isnan(np.asarray(g, np.float64)).any():
        worst = float("inf")
      self.rows.append(Row(self.names[i], "zero cotangent", "max |grad|", worst, 0.0, worst,
                           0.0, worst == 0.0,
                           "" if worst == 0.0 else "a zero cotangent must give a zero "
                           "gradient (the VJP is linear in the cotangent)"))
    if not shapes_ok:
      return

    # Cotangents: every basis vector when the output is small, random ones otherwise.
    if n_out <= opts["max_basis"]:
      eye = np.eye(n_out)
      offsets = np.cumsum([0] + [int(np.prod(o.shape)) for o in out_leaves])
      cts = [jnp.asarray(eye[:, a:b].reshape((n_out,) + o.shape), o.dtype)
             for a, b, o in zip(offsets[:-1], offsets[1:], out_leaves)]
      self.cotangent_kind = f"all {n_out} basis vectors"
      flat_out_shapes = [o.shape for o in out_leaves]

      def ct_label(k):
        leaf = int(np.searchsorted(offsets, k, side="right") - 1)
        prefix = f"out{leaf}" if len(out_leaves) > 1 else "out"
        return f"d{prefix}{_index(flat_out_shapes[leaf], k - offsets[leaf])} ->"
    else:
      n = opts["random_cotangents"]
      cts = [jnp.asarray(self.rng.standard_normal((n,) + o.shape), o.dtype) for o in out_leaves]
      self.cotangent_kind = f"{n} random (output has {n_out} elements)"
      ct_label = lambda k: f"random ct #{k} ->"

    def many(fn, primals_, ints_, extras_, cts_, single):
      out_, pull_ = self._pullback(fn, primals_, ints_, extras_)
      body = lambda c: pull_(unflat(list(c)))
      if opts["jit"]:
        batched = lax.map(body, tuple(cts_))
      else:
        n = cts_[0].shape[0]
        per = [body(tuple(c[k] for c in cts_)) for k in range(n)]
        batched = tuple(jnp.stack([p[j] for p in per]) for j in range(len(primals_)))
      return out_, batched, pull_(unflat(single))

    program = self.jit(functools.partial(many, f))
    try:
      out_j, batched, single = program(primals, ints, extras, cts, ct0)
    except _UNJITTABLE as exc:
      raise ValueError(
          "check_vjp: f (or its backward rule) cannot run under jax.jit: "
          f"{type(exc).__name__}: {str(exc).splitlines()[0]} — make it jittable, or pass "
          "jit=False to check it eagerly") from exc
    batched = [np.asarray(b) for b in batched]
    self.single64 = single

    # jit vs eager
    if opts["jit"]:
      for i, g_j, g_e in zip(self.argnums, single, diff_grads):
        self.rows.append(_compare_batched(self.names[i], "jit", g_j, g_e, opts["rtol"]))
    else:
      self.skipped.append(("jit", "jit=False"))

    # two runs agree
    if opts["nondeterminism"]:
      _, batched2, _ = program(primals, ints, extras, cts, ct0)
      for i, a, b in zip(self.argnums, batched2, batched):
        row = _compare_batched(self.names[i], "nondeterminism", a, b, 0.0, ct_label)
        if not row.passed:
          row.note = "two runs of the jitted backward rule on the same inputs differ"
        self.rows.append(row)

    # against the reference
    if ref is not None:
      ref_program = self.jit(functools.partial(many, ref))
      out_r, batched_r, single_r = ref_program(primals, ints, extras, cts, ct0)
      self.ref_out64, self.ref_single64 = _flat(out_r), single_r
      for k, (a, b) in enumerate(zip(_flat(out_j), _flat(out_r))):
        self.rows.append(_compare_batched("output" if len(out_leaves) == 1 else f"output{k}",
                                          "value", a, b, opts["rtol"]))
      for i, a, b in zip(self.argnums, batched, batched_r):
        self.rows.append(_compare_batched(self.names[i], "reference", a, np.asarray(b),
                                          opts["rtol"], ct_label))
    else:
      self.ref_out64, self.ref_single64 = _flat(out_j), single
      self.skipped.append(("reference", "no reference given"))

    if skip_fd is None:
      self._finite_differences(primals, ints, extras, ct0, single)
    else:
      self.skipped.append(("finite differences", skip_fd))

    if opts["vmap"] and opts["jit"]:
      self._vmap(primals, ints, extras, out_leaves)
    elif opts["vmap"]:
      self.skipped.append(("vmap", "jit=False"))
    else:
      self.skipped.append(("vmap", "vmap=False"))

    if opts["order"] >= 2:
      self._second_order(primals, ints, extras, ct0, skip_fd)

  def _finite_differences(self, primals, ints, extras, ct0, single):
    opts = self.opts
    tangents = [jnp.asarray(self.rng.standard_normal(p.shape), p.dtype) for p in primals]
    steps = []
    for p in primals:  # the input's spread (std), else its rms, else 1
      values = np.asarray(p)
      std = float(np.std(values)) if values.size > 1 else 0.0
      rms = float(np.sqrt(np.mean(np.square(values)))) if values.size else 0.0
      steps.append(opts["fd_step"] * (std if std > 0 else rms if rms > 0 else 1.0))

    def directional(primals_, ints_, extras_, tangents_, ct_, hs):
      res = []
      for i in range(len(primals_)):
        def at(sign):
          shifted = list(primals_)
          shifted[i] = primals_[i] + sign * hs[i] * tangents_[i]
          return _flat(self._call(self.f, shifted, ints_, extras_))
        diff = [(a - b) / (2 * hs[i]) for a, b in zip(at(1.0), at(-1.0))]
        res.append((sum(jnp.vdot(c, d) for c, d in zip(ct_, diff)),
                    jnp.sqrt(sum(jnp.vdot(d, d) for d in diff))))
      return res

    program = self.jit(directional)
    h = jnp.asarray(steps, jnp.float64)
    d1 = program(primals, ints, extras, tangents, ct0, h)
    d2 = program(primals, ints, extras, tangents, ct0, h / 2)
    ct_norm = math.sqrt(sum(float(jnp.vdot(c, c)) for c in ct0))
    for i, (a, b), g, t in zip(self.argnums, zip(d1, d2), single, tangents):
      analytic = float(jnp.vdot(g, t))
      D1, D2 = float(a[0]), float(b[0])
      richardson = (4 * D2 - D1) / 3
      scale = max(ct_norm * float(b[1]), abs(analytic), abs(richardson), TINY)
      consistency = abs(D1 - D2) / scale
      ok_c = consistency <= opts["fd_consistency"]
      self.rows.append(Row(
          self.names[i], "fd h vs h/2", f"step {steps[i]:.1e}", D1, D2, consistency,
          opts["fd_consistency"], ok_c,
          "" if ok_c else "central differences with steps h and h/2 disagree: a kink or a "
          "discontinuity lies within a step of this point (mark it with kinks=...)"))
      rel = abs(analytic - richardson) / scale
      if not math.isfinite(rel):
        rel = float("inf")
      self.rows.append(Row(self.names[i], "finite differences", "<ct, J t>", analytic,
                           richardson, rel, opts["fd_rtol"], ok_c and rel <= opts["fd_rtol"]))

  def _vmap(self, primals, ints, extras, out_leaves):
    b = self.opts["vmap_batch"]
    stacked = [jnp.stack([p] * b) for p in primals]
    cts = [jnp.asarray(self.rng.standard_normal((b,) + o.shape), o.dtype) for o in out_leaves]
    unflat = lambda leaves: jax.tree.unflatten(self.out_tree, leaves)

    def one(p, c):
      out_, pull_ = self._pullback(self.f, p, ints, extras)
      return _flat(out_), pull_(unflat(list(c)))
    try:
      outs, grads = self.jit(jax.vmap(one))(stacked, cts)
    except Exception as exc:  # a missing batching rule is a failure, named
      self._fail("all", "vmap", f"jax.vmap of the VJP fails: {type(exc).__name__}: "
                 f"{str(exc).splitlines()[0] if str(exc) else ''}")
      return
    per_example = self.jit(one)
    expected = [per_example(primals, [c[k] for c in cts])[1] for k in range(b)]
    for k, o in enumerate(outs):
      self.rows.append(_compare_batched("output", "vmap", o,
                                        np.stack([np.asarray(self.out_leaves64[k])] * b),
                                        self.opts["rtol"], lambda e: f"batch {e}"))
    for j, i in enumerate(self.argnums):
      self.rows.append(_compare_batched(
          self.names[i], "vmap", grads[j], np.stack([np.asarray(e[j]) for e in expected]),
          self.opts["rtol"], lambda e: f"batch {e}"))

  def _second_order(self, primals, ints, extras, ct0, skip_fd):
    unflat = lambda leaves: jax.tree.unflatten(self.out_tree, leaves)
    v = [jnp.asarray(self.rng.standard_normal(p.shape), p.dtype) for p in primals]

    def inner(fn, p):
      _, pull_ = self._pullback(fn, p, ints, extras)
      return sum(jnp.vdot(g, w) for g, w in zip(pull_(unflat(ct0)), v))
    try:
      g_f = self.jit(jax.grad(lambda p: inner(self.f, p)))(primals)
    except Exception as exc:
      self._fail("all", "second order", f"grad of the VJP fails: {type(exc).__name__}: "
                 f"{str(exc).splitlines()[0] if str(exc) else ''}")
      return
    if self.reference is not None:
      g_r = self.jit(jax.grad(lambda p: inner(self.reference, p)))(primals)
      for i, a, b in zip(self.argnums, g_f, g_r):
        self.rows.append(_compare_batched(self.names[i], "second order", a, b,
                                          self.opts["rtol"]))
      return
    if skip_fd is not None:
      self.skipped.append(("second order", f"no reference and {skip_fd}"))
      return
    t = [jnp.asarray(self.rng.standard_normal(p.shape), p.dtype) for p in primals]
    h = self.opts["fd_step"]
    fn = self.jit(lambda p: inner(self.f, p))
    d = lambda s: (float(fn([a + s * b for a, b in zip(primals, t)]))
                   - float(fn([a - s * b for a, b in zip(primals, t)]))) / (2 * s)
    richardson = (4 * d(h / 2) - d(h)) / 3
    analytic = float(sum(jnp.vdot(a, b) for a, b in zip(g_f, t)))
    scale = max(abs(richardson), abs(analytic), TINY)
    rel = abs(analytic - richardson) / scale
    self.rows.append(Row("all", "second order", "<grad <VJP, v>, t>", analytic, richardson,
                         rel, self.opts["fd_rtol"] * 10, rel <= self.opts["fd_rtol"] * 10,
                         "against finite differences (no reference)"))

  # -- float32 ---------------------------------------------------------------------------

  def float32(self):
    """Inputs and cotangent cast to float32, under ``jit``, against the float64 run
    (the reference's when given) for the same cotangent."""
    if not hasattr(self, "single64"):
      return
    primals, ints, extras = self._convert(jnp.float32)
    ct = [jnp.asarray(np.asarray(c), jnp.float32) for c in self.ct0]
    try:
      def run(p, i, e, c):
        out_, pull_ = self._pullback(self.f, p, i, e)
        return _flat(out_), pull_(jax.tree.unflatten(self.out_tree, c))
      outs, grads = _jit(run)(primals, ints, extras, ct)
    except Exception as exc:
      self._fail("all", "float32", f"float32 inputs fail: {type(exc).__name__}: "
                 f"{str(exc).splitlines()[0] if str(exc) else ''}")
      return
    tol = self.opts["float32_rtol"]
    for o, e in zip(outs, self.ref_out64):
      row = _compare_batched("output", "float32", o, np.asarray(e), tol)
      if o.dtype != jnp.float32:
        row.passed, row.note = False, f"float32 inputs gave a {o.dtype} output"
      self.rows.append(row)
    for i, g, e in zip(self.argnums, grads, self.ref_single64):
      row = _compare_batched(self.names[i], "float32", g, np.asarray(e), tol)
      if g.dtype != jnp.float32:
        row.passed, row.note = False, f"float32 inputs gave a {g.dtype} gradient"
      self.rows.append(row)
