"""hw.ops.dense: the trace-time shape error and the dtypes of ``linear``.

Its gradients are checked by the registry (tests/test_gradients.py, ``hw verify``).
Bad arguments of every op: tests/test_ops_bad_arguments.py.
"""
from __future__ import annotations

import chex
import jax
import numpy as np
import pytest

from hw import ops
from helpers import normal


X = normal(0, (4, 3))


def test_shape_error_raises_at_trace_time_under_jit():
  with pytest.raises(ValueError, match="`w`"):
    jax.jit(ops.linear)(X, normal(1, (4, 2)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_output_dtype_matches_input_dtype(dtype):
  with jax.enable_x64(dtype == "float64"):
    x, w, b = (normal(i, shape, np.dtype(dtype)) for i, shape in
               enumerate([(6, 3), (3, 4), (4,)]))
    # Output dtypes are fixed at trace time, so abstract evaluation suffices.
    outputs = jax.eval_shape(lambda: {"linear": ops.linear(x, w, b),
                                      "linear_no_bias": ops.linear(x, w)})
  for name, out in outputs.items():
    assert out.dtype == np.dtype(dtype), name
    chex.assert_shape(out, (6, 4))


@pytest.mark.parametrize("din, dout", [(0, 4), (3, 0)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_takes_no_inputs_or_no_outputs(din, dout, with_bias):
  x, w = jax.numpy.ones((2, 5, din)), jax.numpy.ones((din, dout))
  b = jax.numpy.full((dout,), 0.5) if with_bias else None
  arguments = (x, w, b) if with_bias else (x, w)
  loss = lambda *a: jax.numpy.sum(ops.linear(*a))
  value, grads = jax.value_and_grad(loss, argnums=tuple(range(len(arguments))))(*arguments)
  offset = 0.5 if with_bias else 0.0
  np.testing.assert_array_equal(ops.linear(*arguments), np.full((2, 5, dout), offset))
  assert float(value) == offset * 10 * dout   # the empty sum, plus b
  assert [g.shape for g in grads] == [a.shape for a in arguments]
  np.testing.assert_array_equal(grads[0], np.full((2, 5, din), float(dout)))
  if with_bias:
    np.testing.assert_array_equal(grads[2], np.full((dout,), 10.0))
