"""The state and steps of one ``hw.testing.check_vjp`` call (see ``hw.testing.check`` for
the checks): the float64 run (structure, jit, nondeterminism, the stated intent), the
float32 run; the finite-difference, Taylor, ``vmap`` and second-order checks are in
``hw.testing._numerics``."""
from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from hw.testing._binding import Binding
from hw.testing._core import jit as _jit
from hw.testing._numerics import _Numerics, _compare_batched, _flat, _index, _non_finite
from hw.testing.report import Row

_UNJITTABLE = (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
               jax.errors.TracerArrayConversionError, jax.errors.TracerIntegerConversionError)


def _first_line(exc) -> str:
  return str(exc).splitlines()[0] if str(exc) else ""


class _Checker(_Numerics):
  """The state of one ``check_vjp`` call (split into steps for readability)."""
  def __init__(self, f, reference, intended_vjp, no_gradient, binding: Binding, opts,
               rtol, rtol_rule, rows, skipped):
    self.f, self.reference, self.intended_vjp = f, reference, intended_vjp
    self.no_gradient, self.b, self.opts = no_gradient, binding, opts
    self.rtol, self.rtol_rule = rtol, rtol_rule
    self.rows, self.skipped = rows, skipped
    self.rng = np.random.default_rng(opts["seed"])
    self.cotangent_kind = "n.a."
    self.jit = _jit if opts["jit"] else (lambda fn, **kw: fn)

  def _fail(self, input_, check, note):
    self.rows.append(Row(input_, check, passed=False, note=note))

  def _masked(self, cts):
    """Cotangents with those of the outputs declared ``no_gradient`` set to zero."""
    return [jnp.zeros_like(c) if flag else c for c, flag in zip(cts, self.no_grad_flags)]

  def _flags(self, out):
    if self.no_gradient is None:
      return [False] * len(_flat(out))
    try:
      marked = jax.tree.map(lambda flag, sub: jax.tree.map(lambda _: bool(flag), sub),
                            self.no_gradient, out)
    except (ValueError, TypeError) as exc:
      raise ValueError(
          "check_vjp: no_gradient must be a pytree prefix of f's output with a bool per "
          f"output (e.g. (False, True) for (loss, metric)), got {self.no_gradient!r}: "
          f"{_first_line(exc)}") from exc
    return _flat(marked)

  def _intended(self, primals, ints, extras, ct_leaves):
    """The stated intended VJP at one cotangent, as a list aligned with the primals."""
    b = self.b
    args, kwargs = b.rebuild(primals, ints, extras)
    got = self.intended_vjp(args, jax.tree.unflatten(self.out_tree, list(ct_leaves)),
                            **kwargs)
    if not isinstance(got, (tuple, list)) or len(got) != len(b.argnums):
      raise ValueError(
          f"check_vjp: vjp must return a tuple of {len(b.argnums)} cotangent(s), one per "
          f"differentiated argument {list(b.argnums)}, got {type(got).__name__}"
          + (f" of length {len(got)}" if isinstance(got, (tuple, list)) else ""))
    out = [None] * len(primals)
    for a, tree in zip(b.argnums, got):
      slots, leaves = b.primal_leaves_of(a), _flat(tree)
      if len(leaves) != len(slots):
        raise ValueError(f"check_vjp: vjp returns {len(leaves)} array(s) for argument "
                         f"{a!r}, which has {len(slots)} floating leaf/leaves")
      for i, leaf in zip(slots, leaves):
        out[i] = jnp.asarray(leaf, primals[i].dtype)
    return out

  # -- float64 ---------------------------------------------------------------------------

  def run(self, skip_fd):
    f, ref, opts, b = self.f, self.reference, self.opts, self.b
    primals, ints, extras = b.convert(jnp.float64)
    self.ints64, self.extras64 = ints, extras
    try:
      out_shape = jax.eval_shape(lambda *p: b.call(f, p, ints, extras), *primals)
    except _UNJITTABLE as exc:
      if opts["jit"]:
        raise ValueError(
            "check_vjp: f cannot be traced (it is not jittable: it converts a traced value "
            f"to a Python/NumPy value): {type(exc).__name__}: {_first_line(exc)} "
            "— make it jittable, or pass jit=False to check it eagerly") from exc
      out_shape = None
    if out_shape is not None:
      for leaf in _flat(out_shape):
        if not jnp.issubdtype(leaf.dtype, np.floating):
          raise ValueError(f"check_vjp: f returns a {leaf.dtype} output; only floating "
                           "outputs can be differentiated")
      if ref is not None:
        ref_shape = jax.eval_shape(lambda *p: b.call(ref, p, ints, extras), *primals)
        got = jax.tree.map(lambda s: (s.shape, str(s.dtype)), out_shape)
        want = jax.tree.map(lambda s: (s.shape, str(s.dtype)), ref_shape)
        if jax.tree.structure(out_shape) != jax.tree.structure(ref_shape) or got != want:
          raise ValueError(
              f"check_vjp: the reference returns {want} but f returns {got} "
              "(shape, dtype): they must return the same outputs")

    # The structure of the VJP (traced, not compiled; eagerly when jit=False).
    n = len(primals)
    pullback = lambda p, i, e: jax.vjp(lambda *q: b.call(f, q[:n], q[n:], e), *p, *i)

    def structure(p, i, e):
      out_, pull_ = pullback(p, i, e)
      return out_, pull_(jax.tree.map(jnp.zeros_like, out_))
    try:
      if opts["jit"]:
        out, zero_grads = jax.eval_shape(structure, primals, ints, extras)
      else:
        out, zero_grads = structure(primals, ints, extras)
    except _UNJITTABLE as exc:
      raise ValueError(
          "check_vjp: f (or its backward rule) cannot run under jax.jit: "
          f"{type(exc).__name__}: {_first_line(exc)} — make it jittable, or pass "
          "jit=False to check it eagerly") from exc
    except (TypeError, ValueError, NotImplementedError) as exc:
      raise ValueError(
          f"check_vjp: jax.vjp of f fails in {b.primal_names}: {type(exc).__name__}: "
          f"{_first_line(exc)} — is f differentiable in each marked argument, and does its "
          "backward rule return one cotangent per input?") from exc
    out_leaves, out_tree = jax.tree.flatten(out)
    self.out_tree = out_tree
    self.out_names = ["output"] if len(out_leaves) == 1 else [
        "output" + jax.tree_util.keystr(path)
        for path, _ in jax.tree_util.tree_flatten_with_path(out)[0]]
    self.no_grad_flags = self._flags(out)
    n_out = sum(int(np.prod(o.shape)) for o in out_leaves)
    normal = lambda shape, dtype: jnp.asarray(self.rng.standard_normal(shape), dtype)
    ct0 = self._masked([normal(o.shape, o.dtype) for o in out_leaves])
    self.ct0 = ct0
    unflat = lambda leaves: jax.tree.unflatten(out_tree, list(leaves))
    shapes_ok = True
    for name, g, p in zip(b.primal_names, zero_grads[:n], primals):
      if g.shape != p.shape or g.dtype != p.dtype:
        shapes_ok = False
        self._fail(name, "shape/dtype",
                   f"gradient has shape {g.shape} dtype {g.dtype}; the input has shape "
                   f"{p.shape} dtype {p.dtype}")
      else:
        self.rows.append(Row(name, "shape/dtype"))
    for name, g in zip(b.int_names, zero_grads[n:]):
      ok = g.dtype == jax.dtypes.float0
      self.rows.append(Row(name, "float0", passed=ok, note="" if ok else (
          f"integer input {name} got a cotangent of dtype {g.dtype}, expected float0 (the "
          "backward rule must return None for it)")))
    if not shapes_ok:
      return

    # Cotangents: every basis vector when the output is small, random ones otherwise.
    if n_out <= opts["max_basis"]:
      eye = np.eye(n_out)
      offsets = np.cumsum([0] + [int(np.prod(o.shape)) for o in out_leaves])
      cts = [jnp.asarray(eye[:, lo:hi].reshape((n_out,) + o.shape), o.dtype)
             for lo, hi, o in zip(offsets[:-1], offsets[1:], out_leaves)]
      cts = self._masked(cts)
      self.cotangent_kind = f"all {n_out} basis vectors"
      shapes = [o.shape for o in out_leaves]

      def ct_label(k):
        leaf = int(np.searchsorted(offsets, k, side="right") - 1)
        prefix = "out" if len(out_leaves) == 1 else f"out{leaf}"
        return f"d{prefix}{_index(shapes[leaf], k - offsets[leaf])} ->"
    else:
      k = opts["random_cotangents"]
      cts = self._masked([normal((k,) + o.shape, o.dtype) for o in out_leaves])
      self.cotangent_kind = f"{k} random (output has {n_out} elements)"
      ct_label = lambda k: f"random ct #{k} ->"
    zero_ct = [jnp.zeros(o.shape, o.dtype) for o in out_leaves]
    only_ct = [normal(o.shape, o.dtype) if flag else jnp.zeros(o.shape, o.dtype)
               for o, flag in zip(out_leaves, self.no_grad_flags)]

    # Finite differences run on the stated intent (the reference when given, else f); an
    # intended VJP has no function to difference.
    intent, what = (ref, "the reference") if ref is not None else (f, "f")
    if self.intended_vjp is not None:
      skip_fd = skip_fd or ("vjp= states the intended VJP, which need not be the derivative "
                            "of f (e.g. a clipped gradient)")
    run_fd = skip_fd is None and opts["fd"]
    directions = self._directions(primals) if run_fd else None

    def batch_map(body, cts_):
      if opts["jit"]:
        return lax.map(body, tuple(cts_))
      count = cts_[0].shape[0]
      per = [body(tuple(c[k] for c in cts_)) for k in range(count)]
      return [jnp.stack([q[j] for q in per]) for j in range(len(per[0]))]

    def fused(primals_, ints_, extras_, cts_, ct0_, zero_, only_, dirs_):
      """Every jitted float64 quantity of the check, in one program (one compilation)."""
      res = {}
      out_, pull_ = jax.vjp(lambda *p: b.call(f, p, ints_, extras_), *primals_)
      res["out"] = _flat(out_)
      res["batched"] = batch_map(lambda c: pull_(unflat(c)), cts_)
      res["single"] = pull_(unflat(ct0_))
      res["zero"] = pull_(unflat(zero_))
      res["only"] = pull_(unflat(only_))
      if ref is not None:
        out_r, pull_r = jax.vjp(lambda *p: b.call(ref, p, ints_, extras_), *primals_)
        res["ref_out"] = _flat(out_r)
        res["ref_batched"] = batch_map(lambda c: pull_r(unflat(c)), cts_)
        res["ref_single"] = pull_r(unflat(ct0_))
      elif self.intended_vjp is not None:
        body = lambda c: self._intended(primals_, ints_, extras_, c)
        res["ref_batched"], res["ref_single"] = batch_map(body, cts_), body(ct0_)
      if dirs_ is not None:
        h = opts["fd_step"]
        res["fd"] = [self._directional(intent, primals_, ints_, extras_, dirs_, ct0_, s)
                     for s in (h, h / 2)]
      return res

    program = self.jit(fused)
    try:
      res = program(primals, ints, extras, cts, ct0, zero_ct, only_ct, directions)
    except _UNJITTABLE as exc:
      raise ValueError(
          "check_vjp: f (or its backward rule) cannot run under jax.jit: "
          f"{type(exc).__name__}: {_first_line(exc)} — make it jittable, or pass "
          "jit=False to check it eagerly") from exc
    self._reject_non_finite("f", res["out"])
    if ref is not None:
      self._reject_non_finite("the reference", res["ref_out"])
    self.out_leaves64 = res["out"]
    single = res["single"]
    self.single64 = single
    batched = [np.asarray(x) for x in res["batched"]]

    if self.intended_vjp is None:
      self._exact_zero("zero cotangent", res["zero"], "a zero cotangent must give a zero "
                       "gradient (the VJP is linear in the cotangent)")
    else:
      self.skipped.append(("zero cotangent", "vjp= states the intended VJP, which need not "
                           "be linear in the cotangent (e.g. a clipped gradient)"))
    if any(self.no_grad_flags):
      declared = [nm for nm, flag in zip(self.out_names, self.no_grad_flags) if flag]
      self._exact_zero("no gradient", res["only"], f"{declared} declared no_gradient: a "
                       "cotangent on them must not reach the inputs")

    if opts["jit"] and opts["eager"]:
      _, pull = pullback(primals, ints, extras)
      eager = pull(unflat(ct0))[:n]
      for name, g_j, g_e in zip(b.primal_names, single, eager):
        self.rows.append(_compare_batched(name, "jit", g_j, g_e, self.rtol,
                                          rule=self.rtol_rule))
    else:
      self.skipped.append(("jit", "jit=False" if not opts["jit"] else "eager=False"))

    if opts["nondeterminism"]:
      batched2 = program(primals, ints, extras, cts, ct0, zero_ct, only_ct, directions)[
          "batched"]
      for name, x, y in zip(b.primal_names, batched2, batched):
        row = _compare_batched(name, "nondeterminism", x, y, 0.0, ct_label)
        if not row.passed and not row.note:
          row.note = "two runs of the jitted backward rule on the same inputs differ"
        self.rows.append(row)
    else:
      self.skipped.append(("nondeterminism", "nondeterminism=False"))

    # against the stated intent
    if ref is not None:
      self.ref_out64, self.ref_single64 = res["ref_out"], res["ref_single"]
      for name, x, y in zip(self.out_names, res["out"], res["ref_out"]):
        self.rows.append(_compare_batched(name, "value", x, y, self.rtol, rule=self.rtol_rule))
    elif self.intended_vjp is not None:
      self.ref_out64, self.ref_single64 = res["out"], res["ref_single"]
    else:
      self.ref_out64, self.ref_single64 = res["out"], single
      self.skipped.append(("reference", "no reference or vjp= given"))
    if "ref_batched" in res:
      check = "reference" if ref is not None else "intended vjp"
      for name, x, y in zip(b.primal_names, batched, res["ref_batched"]):
        self.rows.append(_compare_batched(name, check, x, np.asarray(y), self.rtol,
                                          ct_label, rule=self.rtol_rule))

    if run_fd:
      self._fd_rows(what, res["fd"], ct0, single, directions)
    else:
      self.skipped.append(("finite differences", skip_fd or "fd=False"))
    if skip_fd is None and opts["taylor"]:
      self._taylor(intent, what, primals, ints, extras, ct0, single)
    else:
      self.skipped.append(("taylor", skip_fd or "taylor=False"))

    if opts["vmap"] and opts["jit"]:
      self._vmap(primals, ints, extras, out_leaves)
    else:
      self.skipped.append(("vmap", "jit=False" if opts["vmap"] else "vmap=False"))

    if opts["order"] >= 2:
      if self.intended_vjp is not None and ref is None:
        self.skipped.append(("second order", "vjp= states the first derivative only"))
      else:
        self._second_order(primals, ints, extras, skip_fd)

  def _exact_zero(self, check, grads, note):
    for name, g in zip(self.b.primal_names, grads):
      values = np.asarray(g, np.float64)
      worst = float(np.max(np.abs(values))) if values.size else 0.0
      if np.isnan(values).any():
        worst = float("inf")
      self.rows.append(Row(name, check, "max |grad|", worst, 0.0, worst, 0.0, worst == 0.0,
                           "" if worst == 0.0 else note))

  def _reject_non_finite(self, who, leaves):
    for name, leaf in zip(self.out_names, leaves):
      found = _non_finite(leaf)
      if found:
        count, index, value = found
        raise ValueError(
            f"check_vjp: {who} returns {value} at {name}{index} ({count} non-finite "
            "value(s)) though "
            "every input is finite: gradients are only checked where the function is "
            "finite (move the point, or fix the forward pass)")

  # -- float32 ---------------------------------------------------------------------------

  def float32(self):
    """Inputs and cotangent cast to float32, under ``jit``, against the float64 run
    (the reference's or the intended VJP's when given) for the same cotangent."""
    if not hasattr(self, "single64"):
      return
    b = self.b
    primals, ints, extras = b.convert(jnp.float32)
    ct = [jnp.asarray(np.asarray(c), jnp.float32) for c in self.ct0]
    try:
      def run(p, i, e, c):
        out_, pull_ = jax.vjp(lambda *q: b.call(self.f, q, i, e), *p)
        return _flat(out_), pull_(jax.tree.unflatten(self.out_tree, c))
      outs, grads = _jit(run)(primals, ints, extras, ct)
    except Exception as exc:
      self._fail("all", "float32", f"float32 inputs fail: {type(exc).__name__}: "
                 f"{_first_line(exc)}")
      return
    tol = self.opts["float32_rtol"]
    for name, o, e in zip(self.out_names, outs, self.ref_out64):
      row = _compare_batched(name, "float32", o, np.asarray(e), tol)
      if o.dtype != jnp.float32:
        row.passed, row.note = False, f"float32 inputs gave a {o.dtype} output"
      self.rows.append(row)
    for name, g, e in zip(b.primal_names, grads, self.ref_single64):
      row = _compare_batched(name, "float32", g, np.asarray(e), tol)
      if g.dtype != jnp.float32:
        row.passed, row.note = False, f"float32 inputs gave a {g.dtype} gradient"
      self.rows.append(row)

