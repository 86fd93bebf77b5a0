"""The implementation paths of ``hw.ops.convolution`` (shifted slices, im2col / col2im,
lax convolutions, the channel-major matmul dW): each computes one of the formulas derived
in that module's docstring, on a ``_Geometry`` worked out there. ``hw.ops.convolution``'s
custom_vjp rules pick among them by the layer's algorithm; none calls autodiff.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import jax.numpy as jnp
from jax import lax

if TYPE_CHECKING:
  from hw.ops.convolution import _Geometry

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


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
