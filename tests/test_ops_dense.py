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
