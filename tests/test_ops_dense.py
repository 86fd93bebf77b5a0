"""hw.ops.dense: argument errors and dtypes of ``linear``.

Its gradients are checked by the registry (tests/test_gradients.py, ``hw verify``).
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hw import ops


def _normal(seed, shape, dtype=np.float32):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(dtype))


X = _normal(0, (4, 3))
W = _normal(1, (3, 2))

BAD_CALLS = {
    "linear x rank 0": (lambda: ops.linear(jnp.float32(1.0), W), "`x`"),
    "linear x int": (lambda: ops.linear(jnp.ones((4, 3), jnp.int32), W), "`x`"),
    "linear w rank": (lambda: ops.linear(X, W[0]), "`w`"),
    "linear w mismatch": (lambda: ops.linear(X, _normal(1, (4, 2))), "`w`"),
    "linear w dtype": (lambda: ops.linear(X, W.astype(jnp.bfloat16)), "`w`"),
    "linear b shape": (lambda: ops.linear(X, W, jnp.ones((3,))), "`b`"),
    "linear b rank": (lambda: ops.linear(X, W, jnp.ones((1, 2))), "`b`"),
    "linear x list": (lambda: ops.linear([[1.0, 2.0, 3.0]], W), "`x`"),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_argument_raises_value_error_naming_it(case):
  call, name = BAD_CALLS[case]
  with pytest.raises(ValueError, match=name):
    call()


def test_shape_error_raises_at_trace_time_under_jit():
  with pytest.raises(ValueError, match="`w`"):
    jax.jit(ops.linear)(X, _normal(1, (4, 2)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_output_dtype_matches_input_dtype(dtype):
  with jax.enable_x64(dtype == "float64"):
    x, w, b = (_normal(i, shape, np.dtype(dtype)) for i, shape in
               enumerate([(6, 3), (3, 4), (4,)]))
    # Output dtypes are fixed at trace time, so abstract evaluation suffices.
    outputs = jax.eval_shape(lambda: {"linear": ops.linear(x, w, b),
                                      "linear_no_bias": ops.linear(x, w)})
  for name, out in outputs.items():
    assert out.dtype == np.dtype(dtype), name
    chex.assert_shape(out, (6, 4))
