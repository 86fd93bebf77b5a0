"""Pooling layers (NHWC) with hand-derived backward passes.

Every pooling here reduces rectangular windows, given per spatial axis as a list of
[start, end) ranges: output row i reads input rows [start_i, end_i) (likewise for columns).

Max pooling: Y[n,i,j,c] = max_{(h,w) ∈ window(i,j)} X[n,h,w,c]. Its derivative is 1 at the
arg-max and 0 elsewhere, so dX[n,h,w,c] = Σ_{(i,j): (h,w) = argmax(i,j)} dY[n,i,j,c].
Ties: the gradient goes to the FIRST maximal element in row-major window order (smallest
row, then smallest column), as autodiff of ``lax.reduce_window`` and PyTorch do. A window
holding a NaN outputs NaN and passes no gradient (no element equals the output).

Average pooling: Y[n,i,j,c] = (1/|window|) Σ_{window} X, a linear map, so
dX[n,h,w,c] = Σ_{(i,j): (h,w) ∈ window(i,j)} dY[n,i,j,c] / |window(i,j)|.

Windows that overlap accumulate gradient; input rows/columns no window covers (trailing
ones that do not fit a whole window) get zero gradient.

Two implementations (algorithms) per kind, see ``ALGORITHMS``: "blocks", a fast path for
non-overlapping windows tiling the input (stride == window, incl. adaptive pooling with
divisible sizes) that reshapes (N, OH·kh, OW·kw, C) to (N, OH, kh, OW, kw, C), and
"windows", a general path for arbitrary window lists. The general max pool is separable:
the max over a rectangle is the max over its rows of the per-row maxima, and routing dY
first to the first maximal row, then to the first maximal column in that row, is exactly
the row-major first arg-max. ``algorithm=None`` (the default) takes "blocks" whenever the
windows allow it; ``hw verify`` proves each path separately by pinning it.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from hw import backends
from hw.ops import _checks

Windows = tuple[tuple[int, int], ...]

ALGORITHMS: dict[str, str] = {
    "blocks": "non-overlapping windows tiling the input from the top-left (stride == "
              "window; adaptive pooling with divisible sizes): one reshape",
    "windows": "any windows (overlapping, gaps, uneven adaptive windows): per-axis gathers "
               "(max) or averaging matrices (avg)",
}


# ----------------------------------------------------------------- window geometry

def _regular_windows(size: int, window: int, stride: int) -> Windows:
  """VALID windows [i·s, i·s + k), i = 0 … (size - k) // s."""
  return tuple((i * stride, i * stride + window) for i in range((size - window) // stride + 1))


def _adaptive_windows(size: int, out: int) -> Windows:
  """PyTorch's adaptive windows [floor(i·size/out), ceil((i+1)·size/out))."""
  return tuple((i * size // out, -(-(i + 1) * size // out)) for i in range(out))


def _as_blocks(windows: Windows) -> int | None:
  """k when the windows are [i·k, (i+1)·k) (non-overlapping, contiguous from 0), else None."""
  k = windows[0][1] - windows[0][0]
  if all(start == i * k and end == (i + 1) * k for i, (start, end) in enumerate(windows)):
    return k
  return None


def _to_blocks(x, out_hw, block_hw):
  """(N, H, W, C) -> (N, OH, kh, OW, kw, C), dropping trailing rows/cols outside the blocks."""
  (oh, ow), (kh, kw) = out_hw, block_hw
  n, c = x.shape[0], x.shape[3]
  return x[:, :oh * kh, :ow * kw, :].reshape(n, oh, kh, ow, kw, c)


def _from_blocks(blocks, in_hw):
  """Inverse of ``_to_blocks`` for gradients: zeros where rows/cols were dropped."""
  n, oh, kh, ow, kw, c = blocks.shape
  dx = blocks.reshape(n, oh * kh, ow * kw, c)
  h, w = in_hw
  if (h, w) != (oh * kh, ow * kw):
    dx = jnp.pad(dx, ((0, 0), (0, h - oh * kh), (0, w - ow * kw), (0, 0)))
  return dx


# ----------------------------------------------------------------- max: block path

def _block_offsets(x, out_hw, block_hw):
  """X[:, a::kh, b::kw] cut to (N, OH, OW, C), one per offset (a, b) in row-major order.

  Strided slices instead of a (N, OH, kh, OW, kw, C) reshape: XLA:CPU reduces across the
  slices elementwise, 1.5-3.4x faster than over the reshape's inner axes (backward, 2-core
  CPU, batch 100; docs/results/measurements.md)."""
  (oh, ow), (kh, kw) = out_hw, block_hw
  return [x[:, a:a + (oh - 1) * kh + 1:kh, b:b + (ow - 1) * kw + 1:kw, :]
          for a in range(kh) for b in range(kw)]


def _interleave(pieces, block_hw, in_hw):
  """Inverse of ``_block_offsets`` for gradients: piece (a, b) back at rows a::kh, columns
  b::kw; zeros where trailing rows/cols were dropped."""
  kh, kw = block_hw
  rows = [jnp.stack(pieces[a * kw:(a + 1) * kw], axis=3) for a in range(kh)]  # (N,OH,OW,kw,C)
  return _from_blocks(jnp.stack(rows, axis=2), in_hw)  # (N, OH, kh, OW, kw, C)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _max_pool_blocks(x, block_hw):
  out_hw = (x.shape[1] // block_hw[0], x.shape[2] // block_hw[1])
  return functools.reduce(jnp.maximum, _block_offsets(x, out_hw, block_hw))


def _max_pool_blocks_fwd(x, block_hw):
  y = _max_pool_blocks(x, block_hw)
  return y, (x, y)


def _max_pool_blocks_bwd(block_hw, residuals, dy):
  """dX = dY at the first arg-max of each block (row-major offset order), 0 elsewhere:
  offset (a, b) takes dY where it equals Y and no earlier offset did."""
  x, y = residuals
  zero = jnp.zeros((), dy.dtype)
  taken = None
  routed = []
  for piece in _block_offsets(x, y.shape[1:3], block_hw):
    is_max = piece == y
    first = is_max if taken is None else is_max & ~taken
    taken = is_max if taken is None else taken | is_max
    routed.append(jnp.where(first, dy, zero))
  return (_interleave(routed, block_hw, x.shape[1:3]),)


_max_pool_blocks.defvjp(_max_pool_blocks_fwd, _max_pool_blocks_bwd)


# ----------------------------------------------------------------- max: general path

def _gather_indices(windows: Windows) -> np.ndarray:
  """(O, L) indices, L = longest window; short windows repeat their last index.

  A repeated element cannot change a max, and as it comes after its first occurrence it is
  never the first arg-max, so no masking is needed.
  """
  longest = max(end - start for start, end in windows)
  return np.array([[min(start + l, end - 1) for l in range(longest)] for start, end in windows])


def _max_1d(x, windows: Windows, axis: int):
  """Y[..., i, ...] = max over x[..., start_i:end_i, ...] along ``axis``."""
  gathered = jnp.take(x, _gather_indices(windows), axis=axis)
  return jnp.max(gathered, axis=axis + 1)


def _max_1d_grad(x, y, dy, windows: Windows, axis: int):
  """dX along one axis: dY[i] goes to the first l with x[start_i + l] == Y[i]; overlaps add."""
  indices = _gather_indices(windows)
  longest = indices.shape[1]
  gathered = jnp.take(x, indices, axis=axis)
  order_shape = [1] * gathered.ndim
  order_shape[axis + 1] = longest
  order = jnp.arange(longest, dtype=jnp.int32).reshape(order_shape)
  is_max = gathered == jnp.expand_dims(y, axis + 1)
  first = jnp.min(jnp.where(is_max, order, longest), axis=axis + 1, keepdims=True)
  routed = jnp.where(order == first, jnp.expand_dims(dy, axis + 1), jnp.zeros((), dy.dtype))
  # Scatter back: dX[h] = Σ_{i,l} [indices[i,l] == h] routed[i,l], a matmul with a 0/1 matrix.
  scatter = (indices[:, :, None] == np.arange(x.shape[axis])).astype(np.float64)
  dx = jnp.tensordot(routed, jnp.asarray(scatter, dy.dtype), axes=((axis, axis + 1), (0, 1)))
  return jnp.moveaxis(dx, -1, axis)


def _max_pool_windows_forward(x, windows_h: Windows, windows_w: Windows):
  """(Y, per-row maxima): the max over each window's columns, then over its rows."""
  row_max = _max_1d(x, windows_w, 2)
  return _max_1d(row_max, windows_h, 1), row_max


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _max_pool_windows(x, windows_h: Windows, windows_w: Windows):
  return _max_pool_windows_forward(x, windows_h, windows_w)[0]


def _max_pool_windows_fwd(x, windows_h, windows_w):
  y, row_max = _max_pool_windows_forward(x, windows_h, windows_w)
  return y, (x, row_max, y)


def _max_pool_windows_bwd(windows_h, windows_w, residuals, dy):
  """Route dY to the first maximal row of each window, then to the first maximal column."""
  x, row_max, y = residuals
  d_row_max = _max_1d_grad(row_max, y, dy, windows_h, 1)
  return (_max_1d_grad(x, row_max, d_row_max, windows_w, 2),)


_max_pool_windows.defvjp(_max_pool_windows_fwd, _max_pool_windows_bwd)


# ----------------------------------------------------------------- average paths

@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _avg_pool_blocks(x, block_hw):
  out_hw = (x.shape[1] // block_hw[0], x.shape[2] // block_hw[1])
  return jnp.mean(_to_blocks(x, out_hw, block_hw), axis=(2, 4))


def _avg_pool_blocks_fwd(x, block_hw):
  return _avg_pool_blocks(x, block_hw), x.shape[1:3]


def _avg_pool_blocks_bwd(block_hw, in_hw, dy):
  """dX = dY upsampled (each value copied over its kh × kw block) / (kh·kw)."""
  kh, kw = block_hw
  n, oh, ow, c = dy.shape
  share = (dy / (kh * kw))[:, :, None, :, None, :]
  return (_from_blocks(jnp.broadcast_to(share, (n, oh, kh, ow, kw, c)), in_hw),)


_avg_pool_blocks.defvjp(_avg_pool_blocks_fwd, _avg_pool_blocks_bwd)


def _averaging_matrix(windows: Windows, size: int) -> np.ndarray:
  """A[i, h] = 1/|window i| for h in window i, else 0 (so pooling one axis is A @ x)."""
  matrix = np.zeros((len(windows), size))
  for i, (start, end) in enumerate(windows):
    matrix[i, start:end] = 1.0 / (end - start)
  return matrix


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _avg_pool_windows(x, windows_h: Windows, windows_w: Windows):
  a_h = jnp.asarray(_averaging_matrix(windows_h, x.shape[1]), x.dtype)
  a_w = jnp.asarray(_averaging_matrix(windows_w, x.shape[2]), x.dtype)
  return jnp.einsum("ih,nhwc,jw->nijc", a_h, x, a_w)


def _avg_pool_windows_fwd(x, windows_h, windows_w):
  return _avg_pool_windows(x, windows_h, windows_w), x.shape[1:3]


def _avg_pool_windows_bwd(windows_h, windows_w, in_hw, dy):
  """Y = A_h X A_wᵀ per (n, c), so dX = A_hᵀ dY A_w."""
  a_h = jnp.asarray(_averaging_matrix(windows_h, in_hw[0]), dy.dtype)
  a_w = jnp.asarray(_averaging_matrix(windows_w, in_hw[1]), dy.dtype)
  return (jnp.einsum("ih,nijc,jw->nhwc", a_h, dy, a_w),)


_avg_pool_windows.defvjp(_avg_pool_windows_fwd, _avg_pool_windows_bwd)


# ----------------------------------------------------------------- dispatch + checks

def _check_algorithm(algorithm: str | None) -> None:
  if algorithm is not None and (not isinstance(algorithm, str) or algorithm not in ALGORITHMS):
    raise ValueError(f"`algorithm` must be None (automatic) or one of {list(ALGORITHMS)}, "
                     f"got {algorithm!r}")


def _resolve_algorithm(windows_h: Windows, windows_w: Windows, algorithm: str | None,
                       not_blocks: str) -> str:
  """The path to take: ``algorithm``, or for None "blocks" whenever the windows tile the
  input (on every backend, ``hw.backends``). ``not_blocks`` explains why "blocks"
  cannot apply, for the error."""
  tiles = _as_blocks(windows_h) is not None and _as_blocks(windows_w) is not None
  if algorithm == "blocks" and not tiles:
    raise ValueError(f"`algorithm` 'blocks' needs non-overlapping windows that tile the "
                     f"input from the top-left corner; {not_blocks} (use 'windows' or None)")
  if algorithm is None:
    return backends.pool_path(tiles)
  return algorithm


def _pool(x, windows_h: Windows, windows_w: Windows, kind: str, algorithm: str | None,
          not_blocks: str):
  if _resolve_algorithm(windows_h, windows_w, algorithm, not_blocks) == "blocks":
    pool = _max_pool_blocks if kind == "max" else _avg_pool_blocks
    return pool(x, (_as_blocks(windows_h), _as_blocks(windows_w)))
  pool = _max_pool_windows if kind == "max" else _avg_pool_windows
  return pool(x, windows_h, windows_w)


def _check_input(x) -> None:
  _checks.check_rank("x", x, 4, "(N, H, W, C)")
  _checks.check_floating("x", x)


def _regular(x, window, stride, kind: str, algorithm: str | None):
  _check_input(x)
  _check_algorithm(algorithm)
  kh, kw = _checks.check_positive_pair("window", window)
  sh, sw = (kh, kw) if stride is None else _checks.check_positive_pair("stride", stride)
  h, w = x.shape[1:3]
  if kh > h or kw > w:
    raise ValueError(
        f"`window` {window!r} is larger than the spatial size {(h, w)} of `x` "
        f"{_checks.describe(x)}")
  return _pool(x, _regular_windows(h, kh, sh), _regular_windows(w, kw, sw), kind, algorithm,
               f"got window {(kh, kw)} with stride {(sh, sw)} (they must be equal)")


def _adaptive(x, output_size, kind: str, algorithm: str | None):
  _check_input(x)
  _check_algorithm(algorithm)
  oh, ow = _checks.check_positive_pair("output_size", output_size)
  h, w = x.shape[1:3]
  if oh > h or ow > w:
    raise ValueError(
        f"`output_size` {output_size!r} must not exceed the spatial size {(h, w)} of `x` "
        f"{_checks.describe(x)}")
  return _pool(x, _adaptive_windows(h, oh), _adaptive_windows(w, ow), kind, algorithm,
               f"got output_size {(oh, ow)} for input size {(h, w)} (each must divide it)")


def max_pool(x: jax.Array, window: int | tuple[int, int] = 2,
             stride: int | tuple[int, int] | None = None, *,
             algorithm: str | None = None) -> jax.Array:
  """Max pooling, VALID: Y[n,i,j,c] = max_{0≤a<kh, 0≤b<kw} X[n, i·sh + a, j·sw + b, c].

  Backward (custom_vjp): dX[n,h,w,c] = Σ_{(i,j) whose first arg-max is (h,w)} dY[n,i,j,c].
  On ties the FIRST maximal element in row-major window order gets the gradient (as
  autodiff of ``lax.reduce_window`` and PyTorch); trailing rows/columns that do not fit a
  window are dropped (zero gradient). stride == window uses a fast reshape path.

  Args:
    x: (N, H, W, C), float32 or float64.
    window: int k (k × k) or (kh, kw), each >= 1 and <= the input size.
    stride: int or pair, each >= 1; None means stride = window.
    algorithm: None (automatic: "blocks" when stride == window, else "windows") or a
      name of ``ALGORITHMS`` to pin one.

  Returns:
    (N, (H-kh)//sh + 1, (W-kw)//sw + 1, C), dtype of x.

  Raises:
    ValueError: wrong rank or dtype, non-positive window/stride, window larger than x,
      an unknown algorithm, or "blocks" with stride != window.
  """
  return _regular(x, window, stride, "max", algorithm)


def avg_pool(x: jax.Array, window: int | tuple[int, int] = 2,
             stride: int | tuple[int, int] | None = None, *,
             algorithm: str | None = None) -> jax.Array:
  """Average pooling, VALID: Y[n,i,j,c] = (1/(kh·kw)) Σ_{a<kh, b<kw} X[n, i·sh+a, j·sw+b, c].

  Backward (custom_vjp): dX = dY upsampled over each window / (kh·kw), overlapping windows
  adding up; rows/columns outside every window get 0.

  Args:
    x: (N, H, W, C), float32 or float64.
    window: int k (k × k) or (kh, kw), each >= 1 and <= the input size.
    stride: int or pair, each >= 1; None means stride = window.
    algorithm: None (automatic: "blocks" when stride == window, else "windows") or a
      name of ``ALGORITHMS`` to pin one.

  Returns:
    (N, (H-kh)//sh + 1, (W-kw)//sw + 1, C), dtype of x.

  Raises:
    ValueError: wrong rank or dtype, non-positive window/stride, window larger than x,
      an unknown algorithm, or "blocks" with stride != window.
  """
  return _regular(x, window, stride, "avg", algorithm)


def adaptive_avg_pool(x: jax.Array, output_size: int | tuple[int, int], *,
                      algorithm: str | None = None) -> jax.Array:
  """Adaptive average pooling to a fixed output size (PyTorch's AdaptiveAvgPool2d).

  Output row i averages input rows [floor(i·H/OH), ceil((i+1)·H/OH)) (columns likewise);
  windows may differ in size and overlap. Y = A_h X A_wᵀ per (n, c), with
  A[i, h] = 1/|window i| on window i; backward (custom_vjp): dX = A_hᵀ dY A_w.

  Args:
    x: (N, H, W, C), float32 or float64.
    output_size: int (square) or (OH, OW), 1 <= OH <= H, 1 <= OW <= W.
    algorithm: None (automatic: "blocks" when OH divides H and OW divides W, else
      "windows") or a name of ``ALGORITHMS`` to pin one.

  Returns:
    (N, OH, OW, C), dtype of x.

  Raises:
    ValueError: wrong rank or dtype, output_size <= 0 or larger than the input, an
      unknown algorithm, or "blocks" with sizes that do not divide.
  """
  return _adaptive(x, output_size, "avg", algorithm)


def adaptive_max_pool(x: jax.Array, output_size: int | tuple[int, int], *,
                      algorithm: str | None = None) -> jax.Array:
  """Adaptive max pooling to a fixed output size (PyTorch's AdaptiveMaxPool2d).

  Output (i, j) is the max over rows [floor(i·H/OH), ceil((i+1)·H/OH)) × the same rule for
  columns. Backward (custom_vjp): dY[i,j] goes to the first arg-max (row-major) of window
  (i, j); overlapping windows accumulate.

  Args:
    x: (N, H, W, C), float32 or float64.
    output_size: int (square) or (OH, OW), 1 <= OH <= H, 1 <= OW <= W.
    algorithm: None (automatic: "blocks" when OH divides H and OW divides W, else
      "windows") or a name of ``ALGORITHMS`` to pin one.

  Returns:
    (N, OH, OW, C), dtype of x.

  Raises:
    ValueError: wrong rank or dtype, output_size <= 0 or larger than the input, an
      unknown algorithm, or "blocks" with sizes that do not divide.
  """
  return _adaptive(x, output_size, "max", algorithm)
