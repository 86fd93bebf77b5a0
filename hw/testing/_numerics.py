"""The numerics behind ``hw.testing.check_vjp``: the worst-element comparison of two arrays
(a ``Row``), and the finite-difference, Taylor, ``vmap`` and second-order checks of one
call (``_Numerics``, a base of ``hw.testing._checker._Checker``; see ``hw.testing.check``
for what each check does)."""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from hw.testing._core import TINY
from hw.testing.report import Row

EPS = float(np.finfo(np.float64).eps)
TAYLOR_STEPS = 6           # h0, h0/2, ..., h0/32
TAYLOR_MIN_RATE = 1.5      # right gradient: the remainder falls as h^2 (rate 2); wrong: h (1)

FD_HINT = ("if the rule is meant to differ from the derivative of f (a clipped or "
           "straight-through gradient, an output for logging only), state the intent: "
           "reference=, vjp= or no_gradient=; if f has a kink or a discontinuity within a "
           "step of this point, pass kinks=...")


def _index(shape, flat: int) -> str:
  if not shape:
    return "()"
  return str(tuple(int(i) for i in np.unravel_index(flat, shape)))


def _non_finite(leaf) -> tuple[int, str, float] | None:
  """(how many, index of the first, its value) of the non-finite entries of ``leaf``;
  None when every entry is finite."""
  values = np.asarray(leaf, np.float64)
  bad = ~np.isfinite(values)
  if not bad.any():
    return None
  first = int(np.argmax(bad.ravel()))
  return int(bad.sum()), _index(values.shape, first), float(values.ravel()[first])


def _compare_batched(name: str, check: str, actual, expected, tolerance: float,
                     ct_label: Callable[[int], str] | None = None, rule: str = "") -> Row:
  """A row for ``actual`` vs ``expected`` (optionally with a leading cotangent axis).

  A non-finite value where the other is finite is an infinite error, named "non-finite"
  in the note; the same non-finite value on both sides is no difference.
  """
  actual = np.asarray(actual, np.float64)
  expected = np.asarray(expected, np.float64)
  if actual.shape != expected.shape:
    return Row(name, check, passed=False,
               note=f"shape {actual.shape}, expected {expected.shape}")
  if actual.size == 0:
    return Row(name, check, rel_err=0.0, tolerance=tolerance)
  same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
  diff = np.where(same, 0.0, np.abs(actual - expected))
  diff = np.where(np.isnan(diff), np.inf, diff)
  flat = int(np.argmax(diff))
  finite_expected = expected[np.isfinite(expected)]
  scale = max(float(np.max(np.abs(finite_expected))) if finite_expected.size else 0.0, TINY)
  rel = float(diff.ravel()[flat]) / scale
  where = np.unravel_index(flat, actual.shape)
  if ct_label is not None:
    inner = int(np.ravel_multi_index(where[1:], actual.shape[1:])) if actual.ndim > 1 else 0
    index = f"{ct_label(int(where[0]))} {_index(actual.shape[1:], inner)}"
  else:
    index = _index(actual.shape, flat)
  a, e = float(actual.ravel()[flat]), float(expected.ravel()[flat])
  passed = bool(rel <= tolerance)
  note = ""
  if not math.isfinite(a) or not math.isfinite(e):
    side = "the checked value" if not math.isfinite(a) else "the expected value"
    note = f"non-finite: {side} is {a if not math.isfinite(a) else e} at {index}"
  elif not passed and rule:
    note = rule
  return Row(name, check, index, a, e, rel, tolerance, passed, note)


def _flat(tree) -> list:
  return jax.tree.leaves(tree)


def _vdot(xs, ys):
  return sum(jnp.vdot(x, y) for x, y in zip(xs, ys))


class _Numerics:
  """The finite-difference, Taylor, ``vmap`` and second-order checks of a ``_Checker``."""

  def _directions(self, primals):
    """A random direction per primal leaf, scaled per element: the input's spread (std,
    else rms, else 1), capped at ``|x_i|`` when every element of the leaf has one sign, so
    that a step of at most 1/3 of it never crosses zero (a log or sqrt domain)."""
    out = []
    for p in primals:
      values = np.asarray(p, np.float64)
      std = float(np.std(values)) if values.size > 1 else 0.0
      rms = float(np.sqrt(np.mean(np.square(values)))) if values.size else 0.0
      scale = np.full(values.shape, std if std > 0 else rms if rms > 0 else 1.0)
      if values.size and ((values > 0).all() or (values < 0).all()):
        scale = np.minimum(scale, np.abs(values))
      t = np.clip(self.rng.standard_normal(values.shape), -3.0, 3.0)
      out.append(jnp.asarray(t * scale, p.dtype))
    return out

  @staticmethod
  def _hint(what: str) -> str:
    if what == "f":
      return FD_HINT
    return ("the VJP is not the derivative of the stated intent (if a kink or a "
            "discontinuity lies within a step of this point, pass kinks=...)")

  def _directional(self, fn, primals, ints, extras, dirs, ct, h):
    """Per primal leaf i: (<ct, (fn(x + h d_i) - fn(x - h d_i)) / 2h>, |that difference|)."""
    res = []
    for i in range(len(primals)):
      def at(sign):
        shifted = list(primals)
        shifted[i] = primals[i] + sign * h * dirs[i]
        return _flat(self.b.call(fn, shifted, ints, extras))
      diff = [(a - c) / (2 * h) for a, c in zip(at(1.0), at(-1.0))]
      res.append((_vdot(ct, diff), jnp.sqrt(_vdot(diff, diff))))
    return res

  def _fd_rows(self, what, fd, ct0, single, directions):
    """Rows of the central differences with steps h and h/2 (``fd``), Richardson-
    extrapolated, against ``<VJP(ct0), d>``."""
    opts = self.opts
    h = opts["fd_step"]
    d1, d2 = fd
    ct_norm = math.sqrt(sum(float(jnp.vdot(c, c)) for c in ct0))
    for name, (a, c), g, t in zip(self.b.primal_names, zip(d1, d2), single, directions):
      analytic = float(jnp.vdot(g, t))
      D1, D2 = float(a[0]), float(c[0])
      richardson = (4 * D2 - D1) / 3
      scale = max(ct_norm * float(c[1]), abs(analytic), abs(richardson), TINY)
      consistency = abs(D1 - D2) / scale
      ok_c = consistency <= opts["fd_consistency"]
      self.rows.append(Row(
          name, "fd h vs h/2", f"step {h:.1e} x scale", D1, D2, consistency,
          opts["fd_consistency"], ok_c,
          "" if ok_c else "central differences with steps h and h/2 disagree: a kink or a "
          "discontinuity lies within a step of this point (mark it with kinks=...)"))
      rel = abs(analytic - richardson) / scale
      if not math.isfinite(rel):
        rel = float("inf")
      passed = ok_c and rel <= opts["fd_rtol"]
      note = ""
      if not passed and ok_c:
        note = (f"finite differences of {what} (Richardson, h and h/2) disagree with the "
                f"VJP beyond fd_rtol: {self._hint(what)}")
      self.rows.append(Row(name, "finite differences", "<ct, J t>", analytic, richardson,
                           rel, opts["fd_rtol"], passed, note))

  def _taylor(self, fn, what, primals, ints, extras, ct0, single):
    """The Taylor-remainder test: r(h) = |phi(x + h d) - phi(x) - h <g, d>| with
    phi = <ct, fn(x)> and g the VJP; r falls as h^2 for a right g, as h for a wrong one."""
    b, h0 = self.b, 2 * self.opts["fd_step"]   # within 2x the finite-difference step
    directions = self._directions(primals)
    hs = [h0 / 2 ** k for k in range(TAYLOR_STEPS)]

    def values(primals_, ints_, extras_, dirs, ct_):
      out = _flat(b.call(fn, primals_, ints_, extras_))
      phis = [_vdot(ct_, _flat(b.call(fn, [p + h * d for p, d in zip(primals_, dirs)],
                                       ints_, extras_))) for h in hs]
      size = sum(jnp.sum(jnp.abs(c * o)) for c, o in zip(ct_, out))
      return _vdot(ct_, out), jnp.stack(phis), size
    phi0, phis, size = self.jit(values)(primals, ints, extras, directions, ct0)
    slope = float(_vdot(single, directions))
    phi0, size = float(phi0), float(size)
    remainders = [abs(float(p) - phi0 - h * slope) for p, h in zip(np.asarray(phis), hs)]
    floor = 1e3 * EPS * max(size, abs(phi0), TINY)
    rates = [math.log2(r1 / r2) for r1, r2 in zip(remainders, remainders[1:])
             if r1 > floor and r2 > floor]
    span = f"h {hs[0]:.0e}..{hs[-1]:.0e} x spread"
    if not rates:
      self.rows.append(Row("all", "taylor", span, passed=True,
                           note=f"remainders at rounding level ({what} is affine along the "
                           "direction): no rate to measure"))
      return
    rate = rates[-1]
    passed = rate >= TAYLOR_MIN_RATE
    self.rows.append(Row(
        "all", "taylor", span, rate, 2.0, max(0.0, 2.0 - rate), 2.0 - TAYLOR_MIN_RATE,
        passed, "" if passed else
        f"the Taylor remainder |phi(x+hd) - phi(x) - h<VJP, d>| of {what} falls as h^"
        f"{rate:.2f}, not h^2: the VJP is not its derivative ({self._hint(what)})"))

  def _vmap(self, primals, ints, extras, out_leaves):
    b, n = self.b, self.opts["vmap_batch"]
    stacked = [jnp.stack([p] * n) for p in primals]
    cts = [jnp.asarray(self.rng.standard_normal((n,) + o.shape), o.dtype) for o in out_leaves]
    unflat = lambda leaves: jax.tree.unflatten(self.out_tree, leaves)

    def one(p, c):
      out_, pull_ = jax.vjp(lambda *q: b.call(self.f, q, ints, extras), *p)
      return _flat(out_), pull_(unflat(list(c)))
    try:
      outs, grads = self.jit(jax.vmap(one))(stacked, cts)
    except Exception as exc:  # a missing batching rule is a failure, named
      self._fail("all", "vmap", f"jax.vmap of the VJP fails: {type(exc).__name__}: "
                 f"{str(exc).splitlines()[0] if str(exc) else ''}")
      return
    per_example = self.jit(one)
    expected = [per_example(primals, [c[k] for c in cts])[1] for k in range(n)]
    for k, o in enumerate(outs):
      self.rows.append(_compare_batched(
          self.out_names[k], "vmap", o, np.stack([np.asarray(self.out_leaves64[k])] * n),
          self.rtol, lambda e: f"batch {e}"))
    for j, name in enumerate(b.primal_names):
      self.rows.append(_compare_batched(
          name, "vmap", grads[j], np.stack([np.asarray(e[j]) for e in expected]),
          self.rtol, lambda e: f"batch {e}"))

  def _second_order(self, primals, ints, extras, skip_fd):
    """Hessian-vector products of phi(x) = <c, f(x)> + <u, f(x)^2>/2 (a scalar function
    of the output, so the second derivative runs through the rule's own output), by
    reverse over reverse, against the reference's or finite differences of grad phi."""
    b = self.b
    c = self._masked([jnp.asarray(self.rng.standard_normal(o.shape), o.dtype)
                      for o in self.out_leaves64])
    u = self._masked([jnp.asarray(self.rng.standard_normal(o.shape), o.dtype)
                      for o in self.out_leaves64])
    t = self._directions(primals)
    v = [jnp.asarray(self.rng.standard_normal(p.shape), p.dtype) for p in primals]

    def phi(fn, p):
      y = _flat(b.call(fn, p, ints, extras))
      return _vdot(c, y) + 0.5 * _vdot(u, [yk * yk for yk in y])

    def hvp(fn):
      return jax.grad(lambda p: _vdot(jax.grad(lambda q: phi(fn, q))(p), t))
    try:
      h_f = self.jit(hvp(self.f))(primals)
    except Exception as exc:
      self._fail("all", "second order", f"grad of grad fails: {type(exc).__name__}: "
                 f"{str(exc).splitlines()[0] if str(exc) else ''}")
      return
    if self.reference is not None:
      h_r = self.jit(hvp(self.reference))(primals)
      for name, a, r in zip(b.primal_names, h_f, h_r):
        self.rows.append(_compare_batched(name, "second order", a, r, self.rtol,
                                          rule=self.rtol_rule))
      return
    if skip_fd is not None:
      self.skipped.append(("second order", f"no reference and {skip_fd}"))
      return
    grad_v = self.jit(lambda p: _vdot(jax.grad(lambda q: phi(self.f, q))(p), v))
    d = lambda s: (float(grad_v([a + s * w for a, w in zip(primals, t)]))
                   - float(grad_v([a - s * w for a, w in zip(primals, t)]))) / (2 * s)
    h = self.opts["fd_step"]
    richardson = (4 * d(h / 2) - d(h)) / 3
    analytic = float(_vdot(h_f, v))
    scale = max(abs(richardson), abs(analytic), TINY)
    rel = abs(analytic - richardson) / scale
    tol = self.opts["fd_rtol"] * 10
    self.rows.append(Row("all", "second order", "<H t, v>", analytic, richardson, rel, tol,
                         rel <= tol, "H = hessian of <c, f> + <u, f^2>/2 by grad of grad, "
                         "against finite differences of its gradient (no reference)"))
