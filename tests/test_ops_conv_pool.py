"""Local tests for the convolution and pooling ops of hw.ops.

Argument validation, dtypes, the worked examples of SPEC C (1-D layer) and D (2-D
gradient), and each hand-written backward rule against autodiff of plain
``lax.conv_general_dilated`` / ``lax.reduce_window`` references in float64, over strides,
paddings, odd sizes, batch 1, max-pool ties and adaptive sizes that do not divide. Both
conv algorithms (shifted slices, im2col and lax) are exercised. The exhaustive registry-driven suite
lives elsewhere.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from hw import ops
from hw.ops import convolution, pooling


def _normal(seed, shape, dtype=np.float64):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(dtype))


def _ties(seed, shape):
  """Small integers: many equal values inside a pooling window."""
  return jnp.asarray(np.random.default_rng(seed).integers(-2, 3, size=shape).astype(np.float64))


def _output_and_cotangents(fn, args, dy):
  y, pullback = jax.vjp(fn, *args)
  return y, pullback(dy)


ALGORITHMS = {  # (_IM2COL_MAX_INPUT_CHANNELS, _IM2COL_FORWARD_MAX_OUTPUT_CHANNELS,
                #  _SHIFT_FORWARD_MAX_MACS, _MATMUL_KERNEL_GRAD_MAX_TAPS)
    "lax": (0, 0, 0, 0), "lax-matmul-dw": (0, 0, 0, 10**9),
    "lax-forward-im2col-backward": (10**6, 0, 0, 0),
    "im2col": (10**6, 10**6, 0, 0), "shift-forward-im2col-backward": (10**6, 0, 10**9, 0)}


def _use_algorithm(monkeypatch, algorithm):
  max_in, max_out, max_macs, max_taps = ALGORITHMS[algorithm]
  monkeypatch.setattr(convolution, "_IM2COL_MAX_INPUT_CHANNELS", max_in)
  monkeypatch.setattr(convolution, "_IM2COL_FORWARD_MAX_OUTPUT_CHANNELS", max_out)
  monkeypatch.setattr(convolution, "_SHIFT_FORWARD_MAX_MACS", max_macs)
  monkeypatch.setattr(convolution, "_MATMUL_KERNEL_GRAD_MAX_TAPS", max_taps)
  monkeypatch.setattr(convolution, "_MATMUL_KERNEL_GRAD_MAX_POSITIONS", max_taps)


def _assert_vjp_matches(op, reference, args, seed=0, rtol=1e-10, atol=1e-10):
  """Same output, and the same cotangents for a random upstream gradient (both jitted)."""
  y_shape = jax.eval_shape(op, *args)
  y_ref_shape = jax.eval_shape(reference, *args)
  assert y_shape.shape == y_ref_shape.shape and y_shape.dtype == y_ref_shape.dtype
  dy = _normal(seed + 100, y_shape.shape)
  run = jax.jit(_output_and_cotangents, static_argnums=0)
  (y, grads), (y_ref, grads_ref) = run(op, args, dy), run(reference, args, dy)
  np.testing.assert_allclose(y, y_ref, rtol=rtol, atol=atol)
  for got, want in zip(grads, grads_ref):
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- validation

X4 = jnp.zeros((2, 6, 6, 3), jnp.float32)
W4 = jnp.zeros((3, 3, 3, 4), jnp.float32)
BAD_CALLS = {
    "conv2d x rank": (lambda: ops.conv2d(X4[0], W4), "`x`", "(6, 6, 3)"),
    "conv2d w rank": (lambda: ops.conv2d(X4, W4[0]), "`w`", "(3, 3, 4)"),
    "conv2d channels": (lambda: ops.conv2d(X4, jnp.zeros((3, 3, 2, 4))), "`w`", "(3, 3, 2, 4)"),
    "conv2d bias shape": (lambda: ops.conv2d(X4, W4, jnp.zeros(3)), "`b`", "(3,)"),
    "conv2d kernel too big": (lambda: ops.conv2d(X4, jnp.zeros((7, 3, 3, 4))), "`w`", "7"),
    "conv2d padding name": (lambda: ops.conv2d(X4, W4, padding="FULL"), "`padding`", "FULL"),
    "conv2d padding negative": (lambda: ops.conv2d(X4, W4, padding=-1), "`padding`", "-1"),
    "conv2d stride zero": (lambda: ops.conv2d(X4, W4, stride=0), "`stride`", "0"),
    "conv2d integer x": (lambda: ops.conv2d(X4.astype(jnp.int32), W4), "`x`", "int32"),
    "conv1d x rank": (lambda: ops.conv1d(X4, W4[0]), "`x`", "(2, 6, 6, 3)"),
    "conv1d channels": (lambda: ops.conv1d(X4[0], jnp.zeros((2, 4, 1))), "`w`", "(2, 4, 1)"),
    "conv1d kernel too long": (lambda: ops.conv1d(X4[0], jnp.zeros((7, 3, 1))), "`w`", "7"),
    "conv1d bias shape": (lambda: ops.conv1d(X4[0], W4[0], jnp.zeros((1, 4))), "`b`", "(1, 4)"),
    "max_pool x rank": (lambda: ops.max_pool(X4[0]), "`x`", "(6, 6, 3)"),
    "max_pool window zero": (lambda: ops.max_pool(X4, 0), "`window`", "0"),
    "max_pool stride negative": (lambda: ops.max_pool(X4, 2, -1), "`stride`", "-1"),
    "max_pool window too big": (lambda: ops.max_pool(X4, 7), "`window`", "7"),
    "avg_pool window too big": (lambda: ops.avg_pool(X4, (2, 8)), "`window`", "(2, 8)"),
    "avg_pool integer x": (lambda: ops.avg_pool(X4.astype(jnp.int32)), "`x`", "int32"),
    "adaptive_avg zero": (lambda: ops.adaptive_avg_pool(X4, 0), "`output_size`", "0"),
    "adaptive_max too big": (lambda: ops.adaptive_max_pool(X4, (3, 7)), "`output_size`", "(3, 7)"),
    "adaptive_max x rank": (lambda: ops.adaptive_max_pool(X4[0], 2), "`x`", "(6, 6, 3)"),
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_bad_arguments_raise_value_error_naming_them(name):
  call, argument, got = BAD_CALLS[name]
  with pytest.raises(ValueError) as error:
    jax.eval_shape(call)  # raised while tracing, before anything runs
  assert argument in str(error.value) and got in str(error.value), str(error.value)


def _call_every_op(dtype):
  x = jnp.zeros((2, 7, 7, 2), dtype)
  return {
      "conv2d": ops.conv2d(x, jnp.zeros((3, 3, 2, 4), dtype), jnp.zeros(4, dtype),
                           stride=2, padding="SAME"),
      "conv1d": ops.conv1d(x[:, 0], jnp.zeros((3, 2, 4), dtype)),
      "max_pool": ops.max_pool(x),
      "max_pool_overlap": ops.max_pool(x, 3, 2),
      "avg_pool": ops.avg_pool(x),
      "avg_pool_overlap": ops.avg_pool(x, 3, 2),
      "adaptive_avg_pool": ops.adaptive_avg_pool(x, 3),
      "adaptive_max_pool": ops.adaptive_max_pool(x, (3, 2)),
  }


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_output_and_gradient_dtype_match_input_dtype(dtype):
  with jax.enable_x64(dtype == "float64"):
    outputs = jax.eval_shape(lambda: _call_every_op(np.dtype(dtype)))
    grads = jax.eval_shape(jax.grad(
        lambda x: sum(jnp.sum(y) for y in _call_every_op(x.dtype).values()) + jnp.sum(
            ops.conv2d(x, jnp.zeros((3, 3, 2, 4), x.dtype))) + jnp.sum(ops.max_pool(x))),
        jnp.zeros((2, 7, 7, 2), dtype))
  for name, out in outputs.items():
    assert out.dtype == np.dtype(dtype), name
  assert grads.dtype == np.dtype(dtype)


# --------------------------------------------------------------- worked examples (SPEC C, D)

def test_spec_c_one_dimensional_layer_and_one_sgd_step():
  with jax.enable_x64(True):
    x = jnp.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1)
    targets = jnp.array([2.0, 4.0])

    def predict(w, b):
      return ops.conv1d(x, w.reshape(3, 1, 1), b.reshape(1))[0, :, 0]

    def loss(w, b):
      return 0.5 * jnp.sum((targets - predict(w, b)) ** 2)

    predict, loss = jax.jit(predict), jax.jit(loss)
    w, b = jnp.array([2.0, 1.0, 3.0]), jnp.array(1.0)
    np.testing.assert_allclose(predict(w, b), [14.0, 20.0])
    np.testing.assert_allclose(loss(w, b), 200.0)
    dw, db = jax.jit(jax.grad(loss, argnums=(0, 1)))(w, b)
    np.testing.assert_allclose(dw, [44.0, 72.0, 100.0])
    np.testing.assert_allclose(db, 28.0)
    w, b = w - 0.01 * dw, b - 0.01 * db
    np.testing.assert_allclose(w, [1.56, 0.28, 2.0], rtol=1e-12)
    np.testing.assert_allclose(b, 0.72, rtol=1e-12)
    np.testing.assert_allclose(predict(w, b), [8.84, 12.68], rtol=1e-12)
    np.testing.assert_allclose(loss(w, b), 61.064, rtol=1e-12)


def test_spec_d_first_output_and_image_gradient_for_all_ones_upstream():
  with jax.enable_x64(True):
    kernel = jnp.array([[4.0, 3, 3], [5, 5, 5], [2, 4, 3]]).reshape(3, 3, 1, 1)
    image = np.random.default_rng(0).integers(0, 6, size=(5, 5)).astype(np.float64)
    image[:3, :3] = [[4, 5, 2], [3, 3, 2], [4, 3, 4]]
    image = jnp.asarray(image).reshape(1, 5, 5, 1)
    out = ops.conv2d(image, kernel)
    assert out.shape == (1, 3, 3, 1) and float(out[0, 0, 0, 0]) == 109.0
    grad = jax.jit(jax.grad(lambda x: jnp.sum(ops.conv2d(x, kernel))))(image)[0, :, :, 0]
    np.testing.assert_array_equal(grad, [[4, 7, 10, 6, 3], [9, 17, 25, 16, 8],
                                         [11, 23, 34, 23, 11], [7, 16, 24, 17, 8],
                                         [2, 6, 9, 7, 3]])


# ------------------------------------------------------------- backward rules vs autodiff

CONV_CONFIGS = [  # x shape, w shape, stride, padding
    ((2, 7, 9, 3), (3, 2, 3, 4), 1, "VALID"),
    ((1, 8, 8, 2), (3, 3, 2, 3), 2, "SAME"),      # even size: asymmetric SAME padding
    ((2, 9, 10, 2), (3, 4, 2, 2), 3, "SAME"),
    ((2, 7, 7, 1), (2, 2, 1, 3), 2, "VALID"),      # last row/column unused
    ((1, 6, 5, 2), (3, 3, 2, 2), (2, 1), 1),
    ((1, 5, 5, 1), (3, 3, 1, 1), 1, 4),            # padding wider than the kernel
    ((1, 5, 6, 6), (5, 6, 6, 2), 1, "VALID"),      # kernel = whole image
    ((2, 6, 6, 6), (3, 3, 6, 2), 2, (1, 2)),
]


def _lax_conv(x, w, b, stride, padding):
  stride = (stride, stride) if isinstance(stride, int) else stride
  if not isinstance(padding, str):
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    padding = [(ph, ph), (pw, pw)]
  y = lax.conv_general_dilated(x, w, stride, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return y + b


@functools.lru_cache(maxsize=None)
def _conv_case(config):
  """Inputs, upstream gradient and autodiff-of-lax output/cotangents (computed once)."""
  x_shape, w_shape, stride, padding = CONV_CONFIGS[config]
  with jax.enable_x64(True):
    args = (_normal(1, x_shape), _normal(2, w_shape), _normal(3, w_shape[3:]))
    reference = lambda x, w, b: _lax_conv(x, w, b, stride, padding)
    dy = _normal(config + 100, jax.eval_shape(reference, *args).shape)
    return args, dy, jax.jit(_output_and_cotangents, static_argnums=0)(reference, args, dy)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
@pytest.mark.parametrize("config", range(len(CONV_CONFIGS)))
def test_conv2d_vjp_matches_autodiff_of_lax(config, algorithm, monkeypatch):
  _use_algorithm(monkeypatch, algorithm)
  _, _, stride, padding = CONV_CONFIGS[config]
  args, dy, (y_ref, grads_ref) = _conv_case(config)
  with jax.enable_x64(True):
    y, grads = jax.jit(_output_and_cotangents, static_argnums=0)(
        lambda x, w, b: ops.conv2d(x, w, b, stride=stride, padding=padding), args, dy)
  assert y.shape == y_ref.shape and y.dtype == y_ref.dtype == np.float64
  np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
  for got, want in zip(grads, grads_ref):
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_conv1d_vjp_matches_autodiff_of_lax(algorithm, monkeypatch):
  _use_algorithm(monkeypatch, algorithm)
  with jax.enable_x64(True):
    args = (_normal(4, (3, 9, 5)), _normal(5, (4, 5, 2)), _normal(6, (2,)))
    reference = lambda x, w, b: lax.conv_general_dilated(
        x, w, (1,), "VALID", dimension_numbers=("NWC", "WIO", "NWC")) + b
    _assert_vjp_matches(ops.conv1d, reference, args)
    _assert_vjp_matches(lambda x, w: ops.conv1d(x, w),
                        lambda x, w: reference(x, w, 0.0), args[:2])


POOL_CONFIGS = [  # x shape, window, stride
    ((2, 6, 6, 3), 2, None),
    ((1, 7, 9, 2), 2, None),        # odd sizes: last row/column dropped
    ((2, 7, 7, 1), 3, 2),           # overlapping windows
    ((1, 9, 8, 2), 3, 1),
    ((1, 8, 8, 1), 2, 3),           # gaps between windows
    ((1, 5, 5, 1), 5, None),        # one window over everything
    ((1, 6, 9, 2), (2, 3), None),   # rectangular window
]


def _lax_pool(x, window, stride, kind):
  kh, kw = (window, window) if isinstance(window, int) else window
  stride = (kh, kw) if stride is None else (stride, stride)
  if kind == "max":
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, kh, kw, 1), (1, *stride, 1), "VALID")
  return lax.reduce_window(x, 0.0, lax.add, (1, kh, kw, 1), (1, *stride, 1), "VALID") / (kh * kw)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("config", range(len(POOL_CONFIGS)))
def test_pool_vjp_matches_autodiff_of_reduce_window_including_ties(config, kind):
  x_shape, window, stride = POOL_CONFIGS[config]
  op = ops.max_pool if kind == "max" else ops.avg_pool
  with jax.enable_x64(True):
    x = _ties(config, x_shape) if kind == "max" else _normal(config, x_shape)
    _assert_vjp_matches(lambda x: op(x, window, stride),
                        lambda x: _lax_pool(x, window, stride, kind), (x,), seed=config)


def test_max_pool_tie_goes_to_first_element_in_row_major_order():
  x = jnp.array([[1.0, 1.0, 0.0, 2.0], [1.0, 1.0, 2.0, 1.0]]).reshape(1, 2, 4, 1)
  for window, stride in ((2, None), ((2, 2), 1)):  # block path and general path
    grad = jax.jit(jax.grad(lambda x: jnp.sum(ops.max_pool(x, window, stride))))(x)[0, :, :, 0]
    if stride is None:
      np.testing.assert_array_equal(grad, [[1, 0, 0, 1], [0, 0, 0, 0]])
    else:  # windows at columns 0-1, 1-2, 2-3: maxima 1 (first at (0,0)), 2 at (1,2) twice
      np.testing.assert_array_equal(grad, [[1, 0, 0, 1], [0, 0, 1, 0]])


def _adaptive_windows(size, out):
  return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def _adaptive_reference(x, output_size, kind, dy):
  """Loop over windows in numpy: output, and dX (first arg-max in row-major order / mean)."""
  x, dy = np.asarray(x), np.asarray(dy)
  oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
  y, dx = np.zeros(dy.shape), np.zeros(x.shape)
  for i, (top, bottom) in enumerate(_adaptive_windows(x.shape[1], oh)):
    for j, (left, right) in enumerate(_adaptive_windows(x.shape[2], ow)):
      patch = x[:, top:bottom, left:right, :]
      if kind == "avg":
        y[:, i, j] = patch.mean(axis=(1, 2))
        dx[:, top:bottom, left:right] += dy[:, i:i + 1, j:j + 1] / (patch.shape[1] * patch.shape[2])
        continue
      flat = patch.reshape(patch.shape[0], -1, patch.shape[3])
      first = np.argmax(flat, axis=1)  # numpy returns the first maximal index
      y[:, i, j] = flat.max(axis=1)
      for n in range(x.shape[0]):
        for c in range(x.shape[3]):
          r, q = divmod(int(first[n, c]), patch.shape[2])
          dx[n, top + r, left + q, c] += dy[n, i, j, c]
  return y, dx


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("x_shape, output_size", [
    ((2, 7, 9, 3), (3, 4)),   # overlapping windows of different sizes
    ((1, 5, 5, 2), 3),
    ((1, 10, 7, 1), (4, 7)),  # identity along one axis
    ((2, 6, 8, 2), (2, 4)),   # divisible: block path
    ((1, 4, 4, 1), 1),        # global pooling
])
def test_adaptive_pool_vjp_matches_windowwise_reference(x_shape, output_size, kind):
  op = ops.adaptive_max_pool if kind == "max" else ops.adaptive_avg_pool
  with jax.enable_x64(True):
    x = _ties(7, x_shape) if kind == "max" else _normal(7, x_shape)
    dy = _normal(8, jax.eval_shape(lambda x: op(x, output_size), x).shape)
    y, (dx,) = jax.jit(_output_and_cotangents, static_argnums=0)(
        lambda x: op(x, output_size), (x,), dy)
  y_ref, dx_ref = _adaptive_reference(x, output_size, kind, dy)
  np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)


def test_adaptive_windows_follow_pytorch_rule():
  assert pooling._adaptive_windows(5, 3) == ((0, 2), (1, 4), (3, 5))
  assert pooling._adaptive_windows(7, 3) == ((0, 3), (2, 5), (4, 7))
  assert pooling._adaptive_windows(6, 3) == ((0, 2), (2, 4), (4, 6))


# ------------------------------------------------------------------- jit, vmap, composites

def _tiny_cnn(params, x, conv=ops.conv2d, pool=ops.max_pool):
  w1, b1, w2 = params
  h = jnp.maximum(conv(x, w1, b1, padding="SAME"), 0.0)
  h = pool(h)
  h = conv(h, w2, stride=2, padding=1)
  return jnp.sum(ops.adaptive_avg_pool(h, 1) ** 2) if pool is ops.max_pool else jnp.sum(
      jnp.mean(h, axis=(1, 2), keepdims=True) ** 2)


def _lax_tiny_cnn(params, x):
  conv = lambda x, w, b=0.0, stride=1, padding="VALID": _lax_conv(x, w, b, stride, padding)
  return _tiny_cnn(params, x, conv, lambda h: _lax_pool(h, 2, None, "max"))


def test_grad_of_composite_under_jit_and_vmap_matches_autodiff():
  with jax.enable_x64(True):
    # 2 input channels, 6 output channels: shifted-slice forward, im2col backward; 6 input
    # channels: all lax.
    params = (_normal(8, (3, 3, 2, 6)), _normal(9, (6,)), _normal(10, (3, 3, 6, 5)))
    xs = _normal(11, (3, 2, 6, 6, 2))  # 3 independent batches of 2 images
    grad = jax.jit(jax.grad(_tiny_cnn))
    grad_ref = jax.jit(jax.grad(_lax_tiny_cnn))
    for got, want in zip(grad(params, xs[0]), grad_ref(params, xs[0])):
      np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    per_batch = jax.vmap(grad, in_axes=(None, 0))(params, xs)
    for i in range(xs.shape[0]):
      for got, want in zip(per_batch, grad_ref(params, xs[i])):
        np.testing.assert_allclose(got[i], want, rtol=1e-10, atol=1e-10)


def test_source_uses_no_autodiff():
  pattern = re.compile(r"jax\.grad|(?<!def)(?<!custom_)vjp\(|jvp|linearize|linear_transpose")
  for module in (convolution, pooling):
    source = Path(module.__file__).read_text()
    assert not pattern.search(source), module.__name__
