"""How ``check_vjp`` sees the arguments of ``f``: every positional and keyword argument is
a pytree (an array is a pytree of one leaf), flattened into leaves of four kinds:

* ``float``: a floating-point array leaf. In a differentiated argument (``argnums``) it is
  a *primal*, differentiated; elsewhere it is passed unchanged (an *extra*);
* ``int``: an integer or boolean array leaf (labels, indices): passed to ``jax.vjp`` too,
  and must get a ``float0`` cotangent (the backward rule returns ``None`` for it);
* ``key`` / ``other``: PRNG keys and other arrays: passed unchanged (extras, so under
  ``jit`` they are arguments, never baked-in constants);
* ``static``: everything else (Python ``int``/``float``/``bool``/``str``, ``None``, a
  function): a constant of the traced program, never differentiated. A Python float is
  static: pass ``np.float64(v)`` or an array to differentiate it.

A leaf is named after its argument and its path in the pytree: ``x``, ``params['dense']
['kernel']``, ``eps`` (a keyword).
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def leaf_kind(a: Any) -> str:
  """``float``, ``int``, ``key``, ``other`` (array leaves) or ``static``."""
  if isinstance(a, (np.ndarray, jax.Array, np.generic)) and hasattr(a, "dtype"):
    if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
      return "key"
    if jnp.issubdtype(a.dtype, np.floating):
      return "float"
    if jnp.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
      return "int"
    return "other"
  return "static"


def positional_names(f: Callable, n: int) -> list[str]:
  """The parameter names of ``f``'s first ``n`` positional arguments (``arg<i>`` where
  the signature does not say)."""
  try:
    params = [p for p in inspect.signature(f).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = [p.name for p in params]
  except (TypeError, ValueError):
    names = []
  return [names[i] if i < len(names) else f"arg{i}" for i in range(n)]


class Binding:
  """The arguments of one call, split into primals, integer leaves, extras and statics.

  ``call(fn, primals, ints, extras)`` calls ``fn(*args, **kwargs)`` with those leaves put
  back; ``convert(dtype)`` gives ``(primals, ints, extras)`` with floating leaves cast.
  """

  def __init__(self, f: Callable, args: Sequence, kwargs: Mapping[str, Any],
               argnums: Sequence[int | str] | int | str | None):
    self.args, self.kwargs = tuple(args), dict(kwargs)
    self.arg_names = positional_names(f, len(self.args))
    flat, self.treedef = jax.tree_util.tree_flatten_with_path((self.args, self.kwargs))
    self.leaves = [leaf for _, leaf in flat]
    self.kinds = [leaf_kind(leaf) for leaf in self.leaves]
    self.owner: list[int | str] = []      # the argument (position or keyword) of each leaf
    self.names: list[str] = []
    for path, _ in flat:
      top, key = path[0].idx, path[1]
      owner = key.idx if top == 0 else key.key
      base = self.arg_names[owner] if top == 0 else str(owner)
      self.owner.append(owner)
      self.names.append(base + jax.tree_util.keystr(tuple(path[2:])))
    has_float = lambda a: any(o == a and k == "float" for o, k in zip(self.owner, self.kinds))
    if argnums is None:
      argnums = tuple(i for i in range(len(self.args)) if has_float(i))
    elif isinstance(argnums, (int, str)):
      argnums = (argnums,)
    self.argnums = tuple(argnums)
    for a in self.argnums:
      if isinstance(a, str):
        if a not in self.kwargs:
          raise ValueError(f"check_vjp: argnums names keyword {a!r}, but f gets the "
                           f"keywords {sorted(self.kwargs)}")
        what, label = self.kwargs[a], a
      elif isinstance(a, (int, np.integer)) and -len(self.args) <= a < len(self.args):
        what, label = self.args[a], f"{self.arg_names[a]} (#{a})"
      else:
        raise ValueError(f"check_vjp: argnums has {a!r}, but f gets {len(self.args)} "
                         "positional argument(s)")
      if not has_float(a if isinstance(a, str) else int(a) % len(self.args)):
        kind = getattr(what, "dtype", type(what).__name__)
        raise ValueError(
            f"check_vjp: argument {label} ({kind}) is marked differentiable but holds no "
            "floating-point array: f is not differentiable in it (pass integer labels, keys "
            "and Python options unmarked; a Python float is static: pass np.float64(v))")
    self.argnums = tuple(a if isinstance(a, str) else int(a) % len(self.args)
                         for a in self.argnums)
    if not self.argnums:
      raise ValueError("check_vjp: no floating-point array argument to differentiate "
                       "(arguments may be arrays or pytrees of arrays: dicts, lists, "
                       "registered dataclasses, Flax params)")
    marked = set(self.argnums)
    self.primal_slots = [j for j, (o, k) in enumerate(zip(self.owner, self.kinds))
                         if k == "float" and o in marked]
    self.int_slots = [j for j, k in enumerate(self.kinds) if k == "int"]
    self.extra_slots = [j for j, k in enumerate(self.kinds)
                        if k in ("float", "key", "other") and j not in self.primal_slots]
    self.primal_names = [self.names[j] for j in self.primal_slots]
    self.int_names = [self.names[j] for j in self.int_slots]

  def convert(self, dtype):
    """``(primals, ints, extras)``: leaves as JAX arrays, floating ones in ``dtype``."""
    def conv(j):
      leaf = self.leaves[j]
      if self.kinds[j] == "float":
        return jnp.asarray(leaf, dtype)
      return leaf if self.kinds[j] == "key" else jnp.asarray(leaf)
    return ([conv(j) for j in self.primal_slots], [conv(j) for j in self.int_slots],
            [conv(j) for j in self.extra_slots])

  def rebuild(self, primals, ints, extras) -> tuple[tuple, dict]:
    """``(args, kwargs)`` with these leaves put back."""
    leaves = list(self.leaves)
    for slots, values in ((self.primal_slots, primals), (self.int_slots, ints),
                          (self.extra_slots, extras)):
      for j, v in zip(slots, values):
        leaves[j] = v
    return jax.tree_util.tree_unflatten(self.treedef, leaves)

  def call(self, fn: Callable, primals, ints, extras):
    args, kwargs = self.rebuild(primals, ints, extras)
    return fn(*args, **kwargs)

  def primal_leaves_of(self, argnum) -> list[int]:
    """Indices into the primals of the leaves of argument ``argnum``."""
    return [i for i, j in enumerate(self.primal_slots) if self.owner[j] == argnum]
