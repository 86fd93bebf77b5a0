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
gradient. The same three formulas have several implementations (none calls autodiff;
they live in ``hw.ops._conv_paths``):
- shifted slices (forward): ``Y = Σ_{kh,kw,c} Xp[:, kh::s, kw::s, c] · W[kh, kw, c, :]``,
  one fused elementwise loop (for "shift_lax" inside a conditional with two equal
  branches, so that XLA writes Y once instead of fusing the sum into each consumer);
- im2col: ``patches[(kh, kw), n, i, j, c] = Xp[n, i*s+kh, j*s+kw, c]`` makes the forward
  pass ``patches @ W``, dW one matmul ``patchesᵀ @ dY``, and dX = ``dY @ Wᵀ`` added back
  where each patch was read ("col2im");
- lax: the forward correlation, the dW correlation and the dX transposed convolution are
  each one ``lax.conv_general_dilated`` call, with the index bookkeeping (dilations,
  flips, axis roles, edge padding) written out from the formulas;
- matmul dW: one matmul of channel-major patches with dY;
- dense: the layer as one matrix, W'[(ih, iw, c), (oh, ow, f)] = W[kh, kw, c, f] where
  ih = oh·sh + kh − pad_top and iw = ow·sw + kw − pad_left (0 where no tap connects them):
  Y = X W', dX = dY W'ᵀ, and dW[kh, kw, c, f] = Σ of the entries of dW' = Xᵀ dY that tap
  was copied to (images flattened to rows); for tiny maps;
- Winograd F(2×2, 3×3), for 3×3 kernels at stride 1 (below).

Winograd F(2×2, 3×3). In one dimension, two outputs y_p = Σ_k d_{p+k} g_k of a 4-sample
input tile d and a 3-tap kernel g are y = Aᵀ [(G g) ⊙ (Bᵀ d)] with

    Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
    G  = [[1, 0, 0], [½, ½, ½], [½, -½, ½], [0, 0, 1]],
    Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]

(4 multiplies instead of 6: e.g. y_0 = m_0 + m_1 + m_2 with m_0 = (d_0 - d_2) g_0,
m_1 = (d_1 + d_2)(g_0 + g_1 + g_2)/2, m_2 = (d_2 - d_1)(g_0 - g_1 + g_2)/2, and
m_0 + m_1 + m_2 = d_0 g_0 + d_1 g_1 + d_2 g_2 exactly). Nesting it on rows and columns, the
output tile (x, y) — outputs 2x, 2x+1 by 2y, 2y+1, reading Xp[2x … 2x+3, 2y … 2y+3] — is,
with ξ = (i, k) one of the 16 entries of a transformed 4×4 tile:

    V[ξ; n,x,y; c] = Σ_{a,b} Bᵀ[i,a] Bᵀ[k,b] Xp[n, 2x+a, 2y+b, c]       (input transform)
    U[ξ; c, f]     = Σ_{a,b} G[i,a] G[k,b] W[a, b, c, f]                 (kernel transform)
    M[ξ; n,x,y; f] = Σ_c V[ξ; n,x,y; c] U[ξ; c, f]                       (16 matmuls)
    Y[n, 2x+p, 2y+q, f] = Σ_{i,k} Aᵀ[p,i] Aᵀ[q,k] M[(i,k); n,x,y; f]     (output transform)

16 multiplies per 4 outputs and channel pair instead of 36 (2.25× fewer). Each step is
linear, so the backward pass is each step's transpose, in reverse order — exact in real
arithmetic because the forward pass is exactly the correlation:

    dM[ξ; n,x,y; f] = Σ_{p,q} Aᵀ[p,i] Aᵀ[q,k] dY[n, 2x+p, 2y+q, f]
    dU[ξ; c, f]     = Σ_{n,x,y} V[ξ; n,x,y; c] dM[ξ; n,x,y; f],
    dW[a, b, c, f]  = Σ_{i,k} G[i,a] G[k,b] dU[(i,k); c, f]
    dV[ξ; n,x,y; c] = Σ_f dM[ξ; n,x,y; f] U[ξ; c, f],
    dXp[n, 2x+a, 2y+b, c] += Σ_{i,k} Bᵀ[i,a] Bᵀ[k,b] dV[(i,k); n,x,y; c]

(neighbouring tiles overlap by two rows/columns, so a pixel gathers up to four tiles'
terms). Outputs past OH × OW in the last tile row/column are computed and dropped; their
cotangent is zero.

An *algorithm* names one combination (forward / dW / dX), see ``ALGORITHMS``:

    "shift"          shifted slices / im2col matmul / col2im
    "shift_lax"      shifted slices, written once / lax conv / lax transposed conv
    "im2col"         im2col matmul / im2col matmul (the saved patches) / col2im
    "lax_im2col"     lax conv / im2col matmul / col2im
    "lax"            lax conv / lax conv / lax transposed conv
    "lax_matmul_dw"  lax conv / channel-major patches matmul / lax transposed conv
    "winograd"       Winograd F(2×2, 3×3) / its transpose for dW / its transpose for dX
                     (3×3 kernels at stride 1 only)
    "dense"          X W' / Xᵀ dY gathered per tap / dY W'ᵀ

``conv2d(..., algorithm=None)`` picks one per layer from its shape and the backend
(``hw.backends``: a shape rule on the CPU, "lax" on GPU/TPU);
``algorithm="<name>"`` pins it (every name but "winograd" applies to every shape; a pinned
"winograd" on another kernel size or stride is refused), which is how ``hw verify`` proves
each path separately.
"""
from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from hw import backends
from hw.ops import _checks
# The paths live in hw.ops._conv_paths; the dispatchers below (_forward, _kernel_grad,
# _input_grad) look them up here, in this module's namespace.
from hw.ops._conv_paths import (_forward_dense, _forward_im2col, _input_grad_dense,
                                _kernel_grad_dense, _forward_lax, _forward_shift,
                                _forward_shift_once,
                                _input_grad_col2im, _input_grad_transposed_conv,
                                _forward_winograd, _input_grad_winograd,
                                _kernel_grad_im2col, _kernel_grad_lax, _kernel_grad_matmul,
                                _kernel_grad_winograd, _patches,
                                _winograd_output_grad)

# Automatic choice (every algorithm computes the same formulas; speed and rounding differ):
# looked up per backend in hw.backends (the CPU's shape thresholds and their
# measurements are stated there; GPU and TPU take lax convolutions for every pass).


class Algorithm(NamedTuple):
  """How one conv algorithm computes each part (a row of the table in the docstring)."""
  forward: str  # "shift" | "shift_once" | "im2col" | "lax" | "winograd" | "dense"
  kernel_grad: str  # "im2col" | "matmul" | "lax" | "winograd"
  input_grad: str  # "col2im" | "lax" | "winograd"


ALGORITHMS: dict[str, Algorithm] = {
    "shift": Algorithm("shift", "im2col", "col2im"),
    "shift_lax": Algorithm("shift_once", "lax", "lax"),
    "im2col": Algorithm("im2col", "im2col", "col2im"),
    "lax_im2col": Algorithm("lax", "im2col", "col2im"),
    "lax": Algorithm("lax", "lax", "lax"),
    "lax_matmul_dw": Algorithm("lax", "matmul", "lax"),
    "winograd": Algorithm("winograd", "winograd", "winograd"),
    "dense": Algorithm("dense", "dense", "dense"),
}
WINOGRAD_KERNEL = (3, 3)  # the one kernel size (at stride 1) "winograd" computes
CONV1D_ALGORITHMS = tuple(name for name in ALGORITHMS if name != "winograd")  # 1 × K kernels

Pads = tuple[tuple[int, int], tuple[int, int]]


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


def _choose_algorithm(w_shape: tuple[int, ...], out_hw: tuple[int, int],
                      stride: tuple[int, int], in_hw: tuple[int, int]) -> str:
  """The automatic choice for a (KH, KW, C, F) kernel, an (OH, OW) output, a stride and an
  (H, W) input on the backend being traced for (:func:`hw.backends.conv2d_algorithm`)."""
  return backends.conv2d_algorithm(w_shape, out_hw, stride=stride, in_hw=in_hw)


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
    algorithm = _choose_algorithm(tuple(w.shape), out_hw, stride, in_hw)
  elif algorithm == "winograd" and (kernel_hw != WINOGRAD_KERNEL or stride != (1, 1)):
    raise ValueError(
        f"`algorithm` 'winograd' computes 3×3 kernels at stride 1 (F(2×2, 3×3)), got a "
        f"{kernel_hw[0]}×{kernel_hw[1]} kernel (`w` {_checks.describe(w)}) at stride "
        f"{stride}; pin another algorithm or leave it None")
  return _Geometry(in_hw, kernel_hw, stride, pads, out_hw, algorithm)


def _promote(*arrays):
  """Cast to the common floating dtype (the output dtype); None stays None."""
  dtype = jnp.result_type(*(a for a in arrays if a is not None))
  return tuple(None if a is None else a.astype(dtype) for a in arrays)


def _forward(x, w, b, g: _Geometry):
  """Y = correlation of Xp with W (+ b); also returns what ``_kernel_grad`` will read."""
  kind = g.parts.forward
  if kind == "shift":
    y, saved = _forward_shift(x, w, g)
  elif kind == "shift_once":
    y, saved = _forward_shift_once(x, w, g)
  elif kind == "im2col":
    y, saved = _forward_im2col(x, w, g)
  elif kind == "winograd":
    y, saved = _forward_winograd(x, w, g)
  elif kind == "dense":
    y, saved = _forward_dense(x, w, g)
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
  if kind == "dense":
    return _kernel_grad_dense(saved, dy, w_shape, g)
  return _kernel_grad_lax(saved, dy, g)


def _input_grad(dy, w, g: _Geometry):
  if g.parts.input_grad == "col2im":
    return _input_grad_col2im(dy, w, g)
  if g.parts.input_grad == "dense":
    return _input_grad_dense(dy, w, g)
  return _input_grad_transposed_conv(dy, w, g)


def _bias_grad(dy, b):
  """db[f] = Σ_{n,i,j} dY[n,i,j,f], as the matmul 1ᵀ · dY(M × F): XLA:CPU's reduction,
  fused behind a max pool's backward, ran ~2.5× slower than the whole rest of that
  layer's backward (UCL model 4's first conv: 11.3 vs 4.4 CPU-ms; measurements.md)."""
  if b is None:
    return None
  rows = dy.reshape(math.prod(dy.shape[:-1]), dy.shape[-1])
  return lax.dot(jnp.ones((rows.shape[0],), dy.dtype), rows, precision=lax.Precision.HIGHEST)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _conv2d(x, w, b, g: _Geometry):
  return _forward(x, w, b, g)[0]


def _conv2d_fwd(x, w, b, g):
  y, saved = _forward(x, w, b, g)
  return y, (saved, w, b)


def _conv2d_bwd(g, residuals, dy):
  saved, w, b = residuals
  if g.parts.forward == "winograd":  # ``saved`` is V; dM, the transformed dY, serves dW and dX
    dm = _winograd_output_grad(dy, g)
    return (_input_grad_winograd(dm, w, g), _kernel_grad_winograd(saved, dm, w.shape),
            _bias_grad(dy, b))
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
    algorithm: None (default) picks the implementation for the layer's shape and the
      backend (``hw.backends``);
      a name of ``ALGORITHMS`` ("shift", "shift_lax", "im2col", "lax_im2col", "lax",
      "lax_matmul_dw", "winograd", "dense", see the module docstring) pins one. Every algorithm
      computes the same derivatives (only speed and rounding differ) and applies to every
      shape, except "winograd": 3×3 kernels at stride 1 only.

  Returns:
    (N, OH, OW, F) with OH = (H + pad_h - KH) // sh + 1, in the common dtype of the inputs.

  Raises:
    ValueError: on a wrong rank or dtype, channel mismatch, bias shape, bad stride,
      padding or algorithm name, "winograd" pinned for a kernel other than 3×3 or a
      stride other than 1, or a kernel larger than the padded input.
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
  """1-D convolution layer, valid, stride 1 (the pen-and-paper layer of assignment C).

  Forward:  ŷ[n,i,f] = b[f] + Σ_{j,c} w[j,c,f] · x[n, i+j, c]   (correlation, no flip),
  i = 0 … L-K. Backward (custom_vjp):
  db[f] = Σ_{n,i} dŷ[n,i,f];  dw[j,c,f] = Σ_{n,i} x[n,i+j,c] dŷ[n,i,f];
  dx[n,l,c] = Σ_{j,f} dŷ[n, l-j, f] w[j,c,f]  (full convolution; terms with l-j outside
  0 … L-K vanish). Computed as conv2d's formulas on a height-1 image.

  Args:
    x: input (N, L, C), float32 or float64.
    w: kernel (K, C, F).
    b: optional bias (F,).
    algorithm: None (automatic) or a name of ``CONV1D_ALGORITHMS``: those of :func:`conv2d`
      but "winograd" (3×3 kernels only).

  Returns:
    (N, L-K+1, F), in the common dtype of the inputs.

  Raises:
    ValueError: wrong rank or dtype, channel mismatch, bias shape, algorithm name, or
      K > L.
  """
  _checks.check_rank("x", x, 3, "(N, L, C)")
  _checks.check_rank("w", w, 3, "(K, C, F)")
  if algorithm is not None and algorithm not in CONV1D_ALGORITHMS:
    raise ValueError(f"`algorithm` must be None (automatic) or one of "
                     f"{list(CONV1D_ALGORITHMS)}, got {algorithm!r}")
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
