"""The numerics behind ``hw.testing.check_vjp``: what kind of argument each input is, the
worst-element comparison of two arrays (a ``Row``), and the finite-difference, ``vmap`` and
second-order checks of one call (``_Numerics``, a base of ``hw.testing._checker._Checker``;
see ``hw.testing.check`` for what each check does)."""
from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from hw.testing._core import TINY, errors
from hw.testing.report import Row


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


class _Numerics:
  """The finite-difference, ``vmap`` and second-order checks of a ``_Checker``."""

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
