"""Convolution layers (NHWC images, HWIO kernels) with hand-derived backward passes.

Deep-learning "convolution" is cross-correlation (no kernel flip). With the input padded to
``Xp`` and stride ``s``, a 2-D layer computes

    Y[n, i, j, f] = b[f] + Σ_{kh, kw, c} Xp[n, i*s + kh, j*s + kw, c] · W[kh, kw, c, f].

Backward, from the chain rule on that sum (each term touches one input pixel):

    db[f]             = Σ_{n,i,j} dY[n, i, j, f]
    dW[kh, kw, c, f]  = Σ_{n,i,j} Xp[n, i*s + kh, j*s + kw, c] · dY[n, i, j, f]
                        (a correlation of the input with dY)
    dXp[n, h, w, c]   = Σ_{i*s + kh = h, j*s + kw = w, f} dY[n, i, j, f] · W[kh, kw, c, f]
                        (a full convolution of the stride-dilated dY with the spatially
                        flipped, in/out-swapped kernel), and dX is dXp without the padding.

Input rows/columns that no window reaches (stride > 1, sizes that do not fit) get a zero
gradient. The same three formulas have several implementations (none calls autodiff):
- shifted slices (forward): ``Y = Σ_{kh,kw,c} Xp[:, kh::s, kw::s, c] · W[kh, kw, c, :]``,
  one fused elementwise loop;
- im2col: ``patches[(kh, kw), n, i, j, c] = Xp[n, i*s+kh, j*s+kw, c]`` makes the forward
  pass ``patches @ W``, dW one matmul ``patchesᵀ @ dY``, and dX = ``dY @ Wᵀ`` added back
  where each patch was read ("col2im");
- lax: the forward correlation, the dW correlation and the dX transposed convolution are
  each one ``lax.conv_general_dilated`` call, with the index bookkeeping (dilations,
  flips, axis roles, edge padding) written out from the formulas;
- matmul dW: one matmul of channel-major patches with dY.

An *algorithm* names one combination (forward / dW / dX), see ``ALGORITHMS``:

    "shift"          shifted slices / im2col matmul / col2im
    "im2col"         im2col matmul / im2col matmul (the saved patches) / col2im
    "lax_im2col"     lax conv / im2col matmul / col2im
    "lax"            lax conv / lax conv / lax transposed conv
    "lax_matmul_dw"  lax conv / channel-major patches matmul / lax transposed conv

``conv2d(..., algorithm=None)`` picks one per layer from its shape (``_choose_algorithm``);
``algorithm="<name>"`` pins it (every name applies to every shape), which is how
``hw verify`` proves each path separately.
"""
from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from hw.ops import _checks

# Automatic choice (every algorithm computes the same formulas; speed and rounding differ).
# XLA's CPU convolution is slow when a layer has very few input channels, above all its
# transposed convolution for dX, and fine with many. So layers with at most
# _IM2COL_MAX_INPUT_CHANNELS input channels compute dW and dX by im2col/col2im, wider ones
# use lax convolutions. The forward pass of a narrow layer is an im2col matmul only when
# it also has few output channels (lax is faster for 1 -> 32 channels).
# Chosen with `python -m benchmarks.conv_algorithms` on a 2-core CPU (docs/results/measurements.md).
_IM2COL_MAX_INPUT_CHANNELS = 4
_IM2COL_FORWARD_MAX_OUTPUT_CHANNELS = 15
# A narrow layer with few multiply-adds per output pixel (C·KH·KW·F ≤ this) computes its
# forward pass as KH·KW·C shifted slices of X times a row of W, summed: one fused
# elementwise loop, faster than XLA:CPU's convolution or an im2col matmul for a small
# first layer such as 1 -> 16 channels 3×3; above this size it loses.
_SHIFT_FORWARD_MAX_MACS = 784
# A wide layer with a small kernel (KH·KW ≤ _MATMUL_KERNEL_GRAD_MAX_TAPS) and a small output
# (OH·OW ≤ _MATMUL_KERNEL_GRAD_MAX_POSITIONS) computes dW as one matmul of channel-major
# patches with dY (``_kernel_grad_matmul``): faster than XLA:CPU's dW convolution for 3×3
# kernels on small outputs, slower with larger outputs or 5×5 kernels, where building the
# patches costs more than the convolution loses.
_MATMUL_KERNEL_GRAD_MAX_TAPS = 9
_MATMUL_KERNEL_GRAD_MAX_POSITIONS = 121


class Algorithm(NamedTuple):
  """How one conv algorithm computes each part (a row of the table in the docstring)."""
  forward: str  # "shift" | "im2col" | "lax"
  kernel_grad: str  # "im2col" | "matmul" | "lax"
  input_grad: str  # "col2im" | "lax"


ALGORITHMS: dict[str, Algorithm] = {
    "shift": Algorithm("shift", "im2col", "col2im"),
    "im2col": Algorithm("im2col", "im2col", "col2im"),
    "lax_im2col": Algorithm("lax", "im2col", "col2im"),
    "lax": Algorithm("lax", "lax", "lax"),
    "lax_matmul_dw": Algorithm("lax", "matmul", "lax"),
}

Pads = tuple[tuple[int, int], tuple[int, int]]
_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


class _Geometry(NamedTuple):
  """Static shape facts of one 2-D convolution (hashable: a custom_vjp nondiff arg)."""
  in_hw: tuple[int, int]
  kernel_hw: tuple[int, int]
  stride: tuple[int, int]
  pads: Pads
  out_hw: tuple[int, int]
  algorithm: str  # a key of ALGORITHMS

  @property
  def parts(self) -> Algorithm:
    return ALGORITHMS[self.algorithm]


def _normalize_padding(padding: Any, in_hw, kernel_hw, stride) -> Pads:
  """VALID, SAME (TF/Flax: out = ceil(in/s), the odd pixel of padding at the end), int, pair."""
  if isinstance(padding, str):
    mode = padding.upper()
    if mode == "VALID":
      return ((0, 0), (0, 0))
    if mode == "SAME":
      pads = []
      for size, k, s in zip(in_hw, kernel_hw, stride):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
      return tuple(pads)
  else:
    items = tuple(padding) if isinstance(padding, (tuple, list)) else (padding, padding)
    if len(items) == 2 and all(
        isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in items):
      return ((items[0], items[0]), (items[1], items[1]))
  raise ValueError(
      "`padding` must be 'VALID', 'SAME', a non-negative int or a pair of them, "
      f"got {padding!r}")


def _check_algorithm(algorithm: str | None) -> None:
  if algorithm is not None and (not isinstance(algorithm, str)
                                or algorithm not in ALGORITHMS):
    raise ValueError(f"`algorithm` must be None (automatic) or one of {list(ALGORITHMS)}, "
                     f"got {algorithm!r}")


def _choose_algorithm(w_shape: tuple[int, ...], out_hw: tuple[int, int]) -> str:
  """The automatic choice for a (KH, KW, C, F) kernel and an (OH, OW) output."""
  kernel_hw, channels, filters = w_shape[:2], w_shape[2], w_shape[3]
  if channels <= _IM2COL_MAX_INPUT_CHANNELS:
    if math.prod(w_shape) <= _SHIFT_FORWARD_MAX_MACS:
      return "shift"
    if filters <= _IM2COL_FORWARD_MAX_OUTPUT_CHANNELS:
      return "im2col"
    return "lax_im2col"
  if (math.prod(kernel_hw) <= _MATMUL_KERNEL_GRAD_MAX_TAPS
      and math.prod(out_hw) <= _MATMUL_KERNEL_GRAD_MAX_POSITIONS):
    return "lax_matmul_dw"
  return "lax"


def _geometry(x, w, b, stride, padding, algorithm: str | None = None) -> _Geometry:
  """Validate a conv2d call (on shapes only, at trace time) and work out its geometry."""
  _checks.check_rank("x", x, 4, "(N, H, W, C)")
  _checks.check_rank("w", w, 4, "(KH, KW, C, F)")
  _checks.check_floating("x", x)
  _checks.check_floating("w", w)
  _check_algorithm(algorithm)
  _checks.check_dim("w", w, 2, x.shape[3], "input channels C of `x`")
  if b is not None:
    _checks.check_floating("b", b)
    _checks.check_shape("b", b, (w.shape[3],), "one bias per output channel F of `w`")
  stride = _checks.check_positive_pair("stride", stride)
  in_hw, kernel_hw = tuple(x.shape[1:3]), tuple(w.shape[:2])
  if min(kernel_hw) < 1:
    raise ValueError(f"`w` must have a non-empty kernel, got {_checks.describe(w)}")
  pads = _normalize_padding(padding, in_hw, kernel_hw, stride)
  out_hw = []
  for axis, (size, k, s, (lo, hi)) in enumerate(zip(in_hw, kernel_hw, stride, pads)):
    if size + lo + hi < k:
      raise ValueError(
          f"`w` kernel size {k} (spatial axis {axis}) exceeds the padded input size "
          f"{size + lo + hi} of `x` {_checks.describe(x)} with padding {padding!r}")
    out_hw.append((size + lo + hi - k) // s + 1)
  out_hw = tuple(out_hw)
  if algorithm is None:
    algorithm = _choose_algorithm(tuple(w.shape), out_hw)
  return _Geometry(in_hw, kernel_hw, stride, pads, out_hw, algorithm)


def _promote(*arrays):
  """Cast to the common floating dtype (the output dtype); None stays None."""
  dtype = jnp.result_type(*(a for a in arrays if a is not None))
  return tuple(None if a is None else a.astype(dtype) for a in arrays)


def _shifted_slices(x, g: _Geometry):
  """For each kernel offset (kh, kw) in row-major order: Xp[:, i*sh + kh, j*sw + kw, :]."""
  (lo_h, hi_h), (lo_w, hi_w) = g.pads
  xp = x
  if any(g.pads[0]) or any(g.pads[1]):
    xp = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (lo_h, hi_h, 0), (lo_w, hi_w, 0), (0, 0, 0)))
  n, c = x.shape[0], x.shape[3]
  (oh, ow), (sh, sw) = g.out_hw, g.stride
  return [lax.slice(xp, (0, kh, kw, 0), (n, kh + (oh - 1) * sh + 1, kw + (ow - 1) * sw + 1, c),
                    (1, sh, sw, 1))
          for kh in range(g.kernel_hw[0]) for kw in range(g.kernel_hw[1])]


def _patches(x, g: _Geometry):
  """im2col: patches[(kh, kw), n, i, j, c] = Xp[n, i*sh + kh, j*sw + kw, c].

  The kernel offset leads: each (kh, kw) slice is one contiguous block, which XLA's CPU
  backend builds faster than interleaving the offsets along the channel axis.
  """
  return jnp.stack(_shifted_slices(x, g))


def _unused(g: _Geometry) -> tuple[int, int]:
  """Trailing padded rows/columns that no window reaches (stride > 1, sizes that don't fit)."""
  return tuple(size + lo + hi - ((out - 1) * s + k) for size, k, s, out, (lo, hi)
               in zip(g.in_hw, g.kernel_hw, g.stride, g.out_hw, g.pads))


def _forward_shift(x, w, g: _Geometry):
  """Y[n,i,j,:] = Σ_{kh,kw,c} Xp[n, i*sh+kh, j*sw+kw, c] · W[kh,kw,c,:], term by term."""
  kernel = w.reshape(-1, w.shape[2], w.shape[3])  # ((kh, kw), c, f)
  y = None
  for offset, piece in enumerate(_shifted_slices(x, g)):
    for c in range(w.shape[2]):
      term = piece[..., c:c + 1] * kernel[offset, c]
      y = term if y is None else y + term
  return y, x


def _forward_im2col(x, w, g: _Geometry):
  """Y = patches @ W; the patches are the residual that ``_kernel_grad`` reads."""
  saved = _patches(x, g)
  kernel = w.reshape(-1, w.shape[2], w.shape[3])  # ((kh, kw), c, f)
  return lax.dot_general(saved, kernel, (((0, 4), (0, 1)), ((), ()))), saved


def _forward_lax(x, w, g: _Geometry):
  return lax.conv_general_dilated(x, w, g.stride, g.pads, dimension_numbers=_DIMENSIONS), x


def _forward(x, w, b, g: _Geometry):
  """Y = correlation of Xp with W (+ b); also returns what ``_kernel_grad`` will read."""
  kind = g.parts.forward
  if kind == "shift":
    y, saved = _forward_shift(x, w, g)
  elif kind == "im2col":
    y, saved = _forward_im2col(x, w, g)
  else:
    y, saved = _forward_lax(x, w, g)
  return (y if b is None else y + b), saved


def _kernel_grad(saved, dy, w_shape, g: _Geometry):
  """dW[kh, kw, c, f] = Σ_{n,i,j} Xp[n, i*sh + kh, j*sw + kw, c] · dY[n, i, j, f]."""
  kind = g.parts.kernel_grad
  if kind == "im2col":
    patches = saved if g.parts.forward == "im2col" else _patches(saved, g)
    return _kernel_grad_im2col(patches, dy, w_shape)
  if kind == "matmul":
    return _kernel_grad_matmul(saved, dy, w_shape, g)
  return _kernel_grad_lax(saved, dy, g)


def _kernel_grad_im2col(patches, dy, w_shape):
  """dW = patchesᵀ @ dY, contracting (n, i, j)."""
  dw = lax.dot_general(patches, dy, (((1, 2, 3), (0, 1, 2)), ((), ())))  # ((kh, kw), c, f)
  return dw.reshape(w_shape)


def _kernel_grad_lax(x, dy, g: _Geometry):
  """dW as a lax correlation that treats C as the batch and N as the contracted feature
  axis, with dY as a kernel dilated by the stride; the padding edges pad X and crop its
  unused trailing rows/columns."""
  edges = [(lo, hi - unused) for (lo, hi), unused in zip(g.pads, _unused(g))]
  return lax.conv_general_dilated(
      x, dy, window_strides=(1, 1), padding=edges, rhs_dilation=g.stride,
      dimension_numbers=("CHWN", "IHWO", "HWNC"))


def _kernel_grad_matmul(x, dy, w_shape, g: _Geometry):
  """dW[(kh, kw, c), f] = Σ_m P[(kh, kw, c), m] · dY[m, f] over m = (n, i, j).

  P[(kh, kw, c), (n, i, j)] = Xp[n, i*sh + kh, j*sw + kw, c]: the patches with the
  channel axis ahead of the positions (X transposed to (C, N, H, W) first), so each row of
  P is contiguous and the product is one plain (KH·KW·C × M) @ (M × F) matmul.
  """
  (lo_h, hi_h), (lo_w, hi_w) = g.pads
  xt = jnp.transpose(x, (3, 0, 1, 2))
  if any(g.pads[0]) or any(g.pads[1]):
    xt = lax.pad(xt, jnp.zeros((), x.dtype), ((0, 0, 0), (0, 0, 0), (lo_h, hi_h, 0), (lo_w, hi_w, 0)))
  c, n = xt.shape[:2]
  (oh, ow), (sh, sw) = g.out_hw, g.stride
  patches = jnp.stack([
      lax.slice(xt, (0, 0, kh, kw), (c, n, kh + (oh - 1) * sh + 1, kw + (ow - 1) * sw + 1),
                (1, 1, sh, sw))
      for kh in range(g.kernel_hw[0]) for kw in range(g.kernel_hw[1])])
  dw = patches.reshape(-1, n * oh * ow) @ dy.reshape(-1, dy.shape[3])
  return dw.reshape(w_shape)


def _input_grad_col2im(dy, w, g: _Geometry):
  """dX: dpatches = dY Wᵀ, then each (kh, kw) slice is added back where it was read from.

  dpatches[n, i, j, kh, kw, c] lands on Xp[n, i*sh + kh, j*sw + kw, c]; ``lax.pad`` with
  interior padding sh-1 (sw-1) places a whole (kh, kw) slice at once, and its (possibly
  negative) edge padding drops the padding rows/columns so the result is dX directly.
  """
  kh_size, kw_size, c, f = w.shape
  n, (oh, ow), (sh, sw) = dy.shape[0], g.out_hw, g.stride
  (lo_h, _), (lo_w, _) = g.pads
  h, wd = g.in_hw
  dpatches = lax.dot_general(dy, w.reshape(-1, f), (((3,), (1,)), ((), ())))
  dpatches = dpatches.reshape(n, oh, ow, kh_size, kw_size, c)
  zero = jnp.zeros((), dy.dtype)
  dx = None
  for kh in range(kh_size):
    for kw in range(kw_size):
      low_h, low_w = kh - lo_h, kw - lo_w
      placed = lax.pad(dpatches[:, :, :, kh, kw, :], zero, (
          (0, 0, 0),
          (low_h, h - low_h - ((oh - 1) * sh + 1), sh - 1),
          (low_w, wd - low_w - ((ow - 1) * sw + 1), sw - 1),
          (0, 0, 0)))
      dx = placed if dx is None else dx + placed
  return dx


def _input_grad_transposed_conv(dy, w, g: _Geometry):
  """dX = full correlation of the stride-dilated dY with the flipped kernel, I/O swapped.

  With D = dY dilated by the stride, dXp[h] = Σ_kh D[h - kh] W[kh]
  = Σ_k' D_padded[h + k'] W[KH-1-k'] with KH-1 zeros before D: a correlation with the
  flipped kernel. The far edge pads KH-1 plus the unused trailing rows; both edges then
  drop the forward padding (negative edge padding crops).
  """
  edges = [(k - 1 - lo, k - 1 + unused - hi)
           for k, (lo, hi), unused in zip(g.kernel_hw, g.pads, _unused(g))]
  # The flipped kernel with its in/out axes swapped, materialised in HWIO order (a tiny
  # copy): XLA:CPU runs the convolution faster than when it reads W through "HWOI"
  # dimension numbers, and was never slower in the shapes measured.
  flipped = jnp.swapaxes(w[::-1, ::-1], 2, 3)
  return lax.conv_general_dilated(
      dy, flipped, window_strides=(1, 1), padding=edges, lhs_dilation=g.stride,
      dimension_numbers=_DIMENSIONS)


def _input_grad(dy, w, g: _Geometry):
  if g.parts.input_grad == "col2im":
    return _input_grad_col2im(dy, w, g)
  return _input_grad_transposed_conv(dy, w, g)


def _bias_grad(dy, b):
  return None if b is None else jnp.sum(dy, axis=tuple(range(dy.ndim - 1)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _conv2d(x, w, b, g: _Geometry):
  return _forward(x, w, b, g)[0]


def _conv2d_fwd(x, w, b, g):
  y, saved = _forward(x, w, b, g)
  return y, (saved, w, b)


def _conv2d_bwd(g, residuals, dy):
  saved, w, b = residuals
  return _input_grad(dy, w, g), _kernel_grad(saved, dy, w.shape, g), _bias_grad(dy, b)


_conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


def conv2d(x: jax.Array, w: jax.Array, b: jax.Array | None = None, *,
           stride: int | tuple[int, int] = 1,
           padding: str | int | tuple[int, int] = "VALID",
           algorithm: str | None = None) -> jax.Array:
  """2-D convolution layer (cross-correlation), NHWC input, HWIO kernel.

  Forward:  Y[n,i,j,f] = b[f] + Σ_{kh,kw,c} Xp[n, i·sh+kh, j·sw+kw, c] · W[kh,kw,c,f],
  Xp = X zero-padded. Backward (custom_vjp, derived in the module docstring):
  db = Σ_{n,i,j} dY;  dW[kh,kw,c,f] = Σ_{n,i,j} Xp[n, i·sh+kh, j·sw+kw, c] dY[n,i,j,f];
  dX = full convolution of the stride-dilated dY with the flipped, in/out-swapped W,
  cropped to X (pixels no window reads get 0).

  Args:
    x: input (N, H, W, C), float32 or float64.
    w: kernel (KH, KW, C, F).
    b: optional bias (F,).
    stride: int or (sh, sw), each >= 1.
    padding: "VALID"; "SAME" (output ceil(H/sh) × ceil(W/sw); an odd total padding puts the
      extra pixel at the end, as TF/Flax); a non-negative int p or pair (ph, pw) for
      symmetric zero padding.
    algorithm: None (default) picks the fastest implementation for the layer's shape;
      a name of ``ALGORITHMS`` ("shift", "im2col", "lax_im2col", "lax",
      "lax_matmul_dw", see the module docstring) pins one. Every algorithm computes the
      same formulas and applies to every shape; only speed and rounding differ.

  Returns:
    (N, OH, OW, F) with OH = (H + pad_h - KH) // sh + 1, in the common dtype of the inputs.

  Raises:
    ValueError: on a wrong rank or dtype, channel mismatch, bias shape, bad stride,
      padding or algorithm name, or a kernel larger than the padded input.
  """
  g = _geometry(x, w, b, stride, padding, algorithm)
  x, w, b = _promote(x, w, b)
  return _conv2d(x, w, b, g)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _conv1d(x, w, b, g: _Geometry):
  return _forward(x[:, None], w[None], b, g)[0][:, 0]


def _conv1d_fwd(x, w, b, g):
  y, saved = _forward(x[:, None], w[None], b, g)
  return y[:, 0], (saved, w, b)


def _conv1d_bwd(g, residuals, dy):
  saved, w, b = residuals
  dy_2d, w_2d = dy[:, None], w[None]
  dx = _input_grad(dy_2d, w_2d, g)[:, 0]
  dw = _kernel_grad(saved, dy_2d, w_2d.shape, g)[0]
  return dx, dw, _bias_grad(dy, b)


_conv1d.defvjp(_conv1d_fwd, _conv1d_bwd)


def conv1d(x: jax.Array, w: jax.Array, b: jax.Array | None = None, *,
           algorithm: str | None = None) -> jax.Array:
  """1-D convolution layer, valid, stride 1 (the pen-and-paper layer of SPEC C).

  Forward:  ŷ[n,i,f] = b[f] + Σ_{j,c} w[j,c,f] · x[n, i+j, c]   (correlation, no flip),
  i = 0 … L-K. Backward (custom_vjp):
  db[f] = Σ_{n,i} dŷ[n,i,f];  dw[j,c,f] = Σ_{n,i} x[n,i+j,c] dŷ[n,i,f];
  dx[n,l,c] = Σ_{j,f} dŷ[n, l-j, f] w[j,c,f]  (full convolution; terms with l-j outside
  0 … L-K vanish). Computed as conv2d's formulas on a height-1 image.

  Args:
    x: input (N, L, C), float32 or float64.
    w: kernel (K, C, F).
    b: optional bias (F,).
    algorithm: None (automatic) or a name of ``ALGORITHMS``, as for :func:`conv2d`.

  Returns:
    (N, L-K+1, F), in the common dtype of the inputs.

  Raises:
    ValueError: wrong rank or dtype, channel mismatch, bias shape, algorithm name, or
      K > L.
  """
  _checks.check_rank("x", x, 3, "(N, L, C)")
  _checks.check_rank("w", w, 3, "(K, C, F)")
  _checks.check_dim("w", w, 1, x.shape[2], "input channels C of `x`")
  if w.shape[0] > x.shape[1]:
    raise ValueError(
        f"`w` kernel size {w.shape[0]} exceeds the length {x.shape[1]} of `x` "
        f"{_checks.describe(x)}")
  n, length, c = x.shape
  g = _geometry(jax.ShapeDtypeStruct((n, 1, length, c), x.dtype),
                jax.ShapeDtypeStruct((1,) + tuple(w.shape), w.dtype), b, 1, "VALID",
                algorithm)
  x, w, b = _promote(x, w, b)
  return _conv1d(x, w, b, g)
