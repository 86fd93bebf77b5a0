"""The state and steps of one ``hw.testing.check_vjp`` call (see ``hw.testing.check`` for
the checks): the float64 run (structure, jit, nondeterminism, reference), the float32 run;
the finite-difference, ``vmap`` and second-order checks are in ``hw.testing._numerics``."""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from hw.testing._core import jit as _jit
from hw.testing._numerics import _Numerics, _compare_batched, _flat, _index, _kind
from hw.testing.report import Row

_UNJITTABLE = (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
               jax.errors.TracerArrayConversionError, jax.errors.TracerIntegerConversionError)


class _Checker(_Numerics):
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
