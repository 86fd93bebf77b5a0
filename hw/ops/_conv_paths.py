"""The implementation paths of ``hw.ops.convolution`` (shifted slices, im2col / col2im,
lax convolutions, the channel-major matmul dW): each computes one of the formulas derived
in that module's docstring, on a ``_Geometry`` worked out there. ``hw.ops.convolution``'s
custom_vjp rules pick among them by the layer's algorithm; none calls autodiff.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import jax.numpy as jnp
import numpy as np
from jax import lax

from hw import backends

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
  backend builds faster than interleaving the offsets along the channel axis. Few input
  channels: the slices are stacked as KH stacks of KW (:func:`hw.backends.patches_nested`),
  the same array.
  """
  slices = _shifted_slices(x, g)
  if backends.patches_nested(x.shape[3]):
    kw = g.kernel_hw[1]
    rows = [jnp.stack(slices[kh * kw:(kh + 1) * kw]) for kh in range(g.kernel_hw[0])]
    return jnp.stack(rows).reshape(len(slices), *slices[0].shape)
  return jnp.stack(slices)


def _unused(g: _Geometry) -> tuple[int, int]:
  """Trailing padded rows/columns that no window reaches (stride > 1, sizes that don't fit)."""
  return tuple(size + lo + hi - ((out - 1) * s + k) for size, k, s, out, (lo, hi)
               in zip(g.in_hw, g.kernel_hw, g.stride, g.out_hw, g.pads))


def _forward_shift(x, w, g: _Geometry):
  """Y[n,i,j,:] = Σ_{kh,kw,c} Xp[n, i*sh+kh, j*sw+kw, c] · W[kh,kw,c,:], term by term: one
  fused elementwise loop, which XLA may fuse into Y's consumers."""
  kernel = w.reshape(w.shape[0] * w.shape[1], w.shape[2], w.shape[3])  # ((kh, kw), c, f)
  y = None
  for offset, piece in enumerate(_shifted_slices(x, g)):
    for c in range(w.shape[2]):
      term = piece[..., c:c + 1] * kernel[offset, c]
      y = term if y is None else y + term
  if y is None:  # no input channels: the empty sum
    y = jnp.zeros((x.shape[0], *g.out_hw, w.shape[3]), x.dtype)
  return y, x


def _forward_shift_once(x, w, g: _Geometry):
  """The sum of :func:`_forward_shift`, written once: inside a ``lax.cond`` whose two
  branches are that same sum.

  XLA:CPU does not fuse a conditional's output into its consumers. As a plain expression
  the sum was fused into every consumer and recomputed there: after Q6.1's 3 -> 8 layer,
  a max pool's forward and both halves of its backward computed it three times (the step
  1.39× slower than with the lax forward pass; 1.13× faster with Y written once). The
  predicate (whether every entry of W is finite) is read at run time only so that XLA
  cannot fold the conditional away; either branch gives the same Y. Where a batch norm
  follows (Q6.2's 3 -> 32) the plain sum was faster, so only "shift_lax" takes this
  (``docs/speed.md``).
  """
  def shift_sum(x):
    return _forward_shift(x, w, g)[0]

  return lax.cond(jnp.all(jnp.isfinite(w)), shift_sum, shift_sum, x), x


def _forward_im2col(x, w, g: _Geometry):
  """Y = patches @ W; the patches are the residual that ``_kernel_grad`` reads."""
  saved = _patches(x, g)
  kernel = w.reshape(w.shape[0] * w.shape[1], w.shape[2], w.shape[3])  # ((kh, kw), c, f)
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
  dw = patches.reshape(patches.shape[0] * c, n * oh * ow) @ dy.reshape(n * oh * ow, dy.shape[3])
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
  dpatches = lax.dot_general(dy, w.reshape(kh_size * kw_size * c, f), (((3,), (1,)), ((), ())))
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


# Winograd F(2×2, 3×3) (derived in hw.ops.convolution's docstring): a 4×4 input tile d and
# a 3×3 kernel g give the 2×2 output tile Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A.
_WINOGRAD_BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
_WINOGRAD_G = ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1))
_WINOGRAD_AT = ((1, 1, 1, 0), (0, 1, -1, -1))
# V (16 tile entries in, 16 out) is built by one broadcast fusion (fewer operations)
# for up to this many tiles N·T², else entry by entry (each fusion reading only its
# non-zero terms). Measured, not derived — forward + backward, broadcast vs entry by entry:
# 100×8×8×32 -> 32 (1600 tiles) 2.5 vs 3.9 ms, 100×8×8×128 -> 128 (1600) 21 vs 26 ms,
# 100×16×16×32 -> 64 (6400) 41-48 vs 18-20 ms.
_WINOGRAD_BROADCAST_MAX_TILES = 4096


def _transposed(matrix):
  return tuple(zip(*matrix))


def _transform_2d(rows, cols, pieces, *, broadcast: bool = True, stack: bool = True):
  """T[i·len(cols) + k] = Σ_{a,b} rows[i][a] · cols[k][b] · pieces[a][b] for constant
  coefficient matrices, stacked on a new leading axis (zero terms skipped).

  ``broadcast``: computed as one broadcast sum Σ_{a,b} c[:, a, b] ⊗ pieces[a][b], which
  XLA builds in one loop fusion (few operations: best when the pieces are slices of one
  small array; a zero coefficient still multiplies, so a non-finite piece makes every
  entry non-finite); else entry by entry, each reading only its non-zero terms, then
  stacked (less memory traffic when the pieces are large) — or, with ``stack=False``,
  returned as the list of entries for a consumer that reads them one by one.
  """
  pieces = [[jnp.asarray(piece) for piece in row] for row in pieces]
  dtype = pieces[0][0].dtype
  if not broadcast:
    entries = []
    for row in rows:
      for col in cols:
        total = None
        for a, r in enumerate(row):
          for b, c in enumerate(col):
            if r * c == 0:
              continue
            term = pieces[a][b] if r * c == 1 else (
                -pieces[a][b] if r * c == -1 else jnp.asarray(r * c, dtype) * pieces[a][b])
            total = term if total is None else total + term
        entries.append(total)
    return jnp.stack(entries) if stack else entries
  total = None
  for a in range(len(rows[0])):
    for b in range(len(cols[0])):
      coefficients = [r[a] * c[b] for r in rows for c in cols]
      if not any(coefficients):
        continue
      piece = pieces[a][b]
      scale = jnp.asarray(coefficients, dtype).reshape((-1,) + (1,) * piece.ndim)
      term = scale * piece[None]
      total = term if total is None else total + term
  return total


def _winograd_tiles(g: _Geometry) -> tuple[int, int]:
  """Output tiles per axis: ceil(OH/2), ceil(OW/2)."""
  return tuple(-(-out // 2) for out in g.out_hw)


def _winograd_input(x, g: _Geometry):
  """V[(i, k), (n, x, y), c] = Σ_{a,b} Bᵀ[i,a] Bᵀ[k,b] Xp[n, 2x+a, 2y+b, c].

  Xp is X padded by the layer's leading padding and enough trailing zeros for whole tiles
  (2·T + 2 rows/columns for T tiles).
  """
  n, h, w, c = x.shape
  th, tw = _winograd_tiles(g)
  (lo_h, _), (lo_w, _) = g.pads
  xp = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (lo_h, 2 * th + 2 - h - lo_h, 0),
                                           (lo_w, 2 * tw + 2 - w - lo_w, 0), (0, 0, 0)))
  tile_entries = [[lax.slice(xp, (0, a, b, 0), (n, a + 2 * th - 1, b + 2 * tw - 1, c),
                             (1, 2, 2, 1)) for b in range(4)] for a in range(4)]
  broadcast = n * th * tw <= _WINOGRAD_BROADCAST_MAX_TILES
  return _transform_2d(_WINOGRAD_BT, _WINOGRAD_BT, tile_entries, broadcast=broadcast).reshape(
      16, n * th * tw, c)


def _winograd_kernel(w):
  """U[(i, k), c, f] = Σ_{a,b} G[i,a] G[k,b] W[a,b,c,f]."""
  taps = [[w[a, b] for b in range(3)] for a in range(3)]
  return _transform_2d(_WINOGRAD_G, _WINOGRAD_G, taps)


def _winograd_output_grad(dy, g: _Geometry):
  """dM[(i, k), (n, x, y), f] = Σ_{p,q} Aᵀ[p,i] Aᵀ[q,k] dY[n, 2x+p, 2y+q, f], dY zero
  beyond OH × OW (the transpose of the output transform)."""
  n, oh, ow, f = dy.shape
  th, tw = _winograd_tiles(g)
  dyp = lax.pad(dy, jnp.zeros((), dy.dtype),
                ((0, 0, 0), (0, 2 * th - oh, 0), (0, 2 * tw - ow, 0), (0, 0, 0)))
  phases = [[dyp[:, p::2, q::2, :] for q in range(2)] for p in range(2)]
  at_t = _transposed(_WINOGRAD_AT)
  return _transform_2d(at_t, at_t, phases).reshape(16, n * th * tw, f)  # 4 inputs: broadcast


def _forward_winograd(x, w, g: _Geometry):
  """M = V ⊙ U summed over c (16 batched matmuls), then Y[n, 2x+p, 2y+q] =
  Σ_{i,k} Aᵀ[p,i] Aᵀ[q,k] M[(i, k), (n, x, y)], cropped to OH × OW. V is the residual."""
  n, f = x.shape[0], w.shape[3]
  th, tw = _winograd_tiles(g)
  v = _winograd_input(x, g)
  m = lax.dot_general(v, _winograd_kernel(w), (((2,), (1,)), ((0,), (0,))))
  m = m.reshape(4, 4, n, th, tw, f)
  y = _transform_2d(_WINOGRAD_AT, _WINOGRAD_AT, [[m[i, k] for k in range(4)] for i in range(4)],
                    broadcast=False)
  y = y.reshape(2, 2, n, th, tw, f).transpose(2, 3, 0, 4, 1, 5)
  (oh, ow) = g.out_hw
  return y.reshape(n, 2 * th, 2 * tw, f)[:, :oh, :ow], v


def _kernel_grad_winograd(v, dm, w_shape):
  """dU[(i, k), c, f] = Σ_{n,x,y} V[(i, k), (n, x, y), c] dM[(i, k), (n, x, y), f];
  dW[a, b] = Σ_{i,k} G[i,a] G[k,b] dU[(i, k)]. ``dm``: :func:`_winograd_output_grad`."""
  du = lax.dot_general(v, dm, (((1,), (1,)), ((0,), (0,))))
  du = [[du[4 * i + k] for k in range(4)] for i in range(4)]
  g_t = _transposed(_WINOGRAD_G)
  return _transform_2d(g_t, g_t, du).reshape(w_shape)


def _input_grad_winograd(dm, w, g: _Geometry):
  """dV[(i, k), (n, x, y), c] = Σ_f dM[(i, k), (n, x, y), f] U[(i, k), c, f]; each tile's
  dd[a, b] = Σ_{i,k} Bᵀ[i,a] Bᵀ[k,b] dV[(i, k)] is added back at Xp[n, 2x+a, 2y+b].
  ``dm``: :func:`_winograd_output_grad` of dY.

  Tiles overlap by two rows and columns: Xp[2x'+r, 2y'+s] (r, s ∈ {0, 1}) gathers
  dd[r, s] of tile (x', y'), dd[r+2, s] of (x'-1, y'), dd[r, s+2] of (x', y'-1) and
  dd[r+2, s+2] of (x'-1, y'-1). dX is Xp's gradient without the padding.
  """
  th, tw = _winograd_tiles(g)
  n, h, wd, c = dm.shape[1] // (th * tw), *g.in_hw, w.shape[2]
  dv = lax.dot_general(dm, _winograd_kernel(w), (((2,), (2,)), ((0,), (0,))))
  dv = dv.reshape(4, 4, n, th, tw, c)
  bt_t = _transposed(_WINOGRAD_BT)
  dd = _transform_2d(bt_t, bt_t, [[dv[i, k] for k in range(4)] for i in range(4)],
                      broadcast=False, stack=False)
  zero = jnp.zeros((), dm.dtype)

  def from_tile(a, b):  # dd[a, b] where tile (x', y') of the result reads tile (x'-a//2, y'-b//2)
    down, right = a // 2, b // 2
    return lax.pad(dd[4 * a + b], zero, ((0, 0, 0), (down, 1 - down, 0),
                                         (right, 1 - right, 0), (0, 0, 0)))

  phases = jnp.stack([from_tile(r, s) + from_tile(r + 2, s) + from_tile(r, s + 2)
                      + from_tile(r + 2, s + 2) for r in range(2) for s in range(2)])
  dxp = phases.reshape(2, 2, n, th + 1, tw + 1, c).transpose(2, 3, 0, 4, 1, 5)
  dxp = dxp.reshape(n, 2 * th + 2, 2 * tw + 2, c)
  (lo_h, _), (lo_w, _) = g.pads
  return dxp[:, lo_h:lo_h + h, lo_w:lo_w + wd]


def _dense_taps(g: _Geometry):
  """S[(ih, iw), (oh, ow), (kh, kw)] = 1 where output (oh, ow) reads input (ih, iw) through
  tap (kh, kw) — ih = oh·sh + kh − pad_top, iw likewise — else 0 (a NumPy constant)."""
  (h, w), (kh_size, kw_size), (sh, sw) = g.in_hw, g.kernel_hw, g.stride
  (lo_h, _), (lo_w, _) = g.pads
  (oh_size, ow_size) = g.out_hw
  taps = np.zeros((h * w, oh_size * ow_size, kh_size * kw_size), np.float32)
  for oh in range(oh_size):
    for ow in range(ow_size):
      for kh in range(kh_size):
        for kw in range(kw_size):
          ih, iw = oh * sh + kh - lo_h, ow * sw + kw - lo_w
          if 0 <= ih < h and 0 <= iw < w:
            taps[ih * w + iw, oh * ow_size + ow, kh * kw_size + kw] = 1
  return taps


def _dense_kernel(w, g: _Geometry):
  """W'[(ih, iw, c), (oh, ow, f)] = Σ_k S[(ih, iw), (oh, ow), k] W[k, c, f]: the layer as one
  (H·W·C) × (OH·OW·F) matrix (each entry one tap of W, or 0)."""
  kh, kw, c, f = w.shape
  taps = jnp.asarray(_dense_taps(g), w.dtype)
  expanded = jnp.einsum("iok,kcf->icof", taps, w.reshape(kh * kw, c, f))
  return expanded.reshape(taps.shape[0] * c, taps.shape[1] * f)


def _forward_dense(x, w, g: _Geometry):
  """Y[n, (oh, ow, f)] = Σ_{(ih, iw, c)} X[n, (ih, iw, c)] W'[(ih, iw, c), (oh, ow, f)]."""
  n = x.shape[0]
  y = x.reshape(n, -1) @ _dense_kernel(w, g)
  return y.reshape(n, *g.out_hw, w.shape[3]), x


def _kernel_grad_dense(x, dy, w_shape, g: _Geometry):
  """dW' = Xᵀ dY (both flattened per image), then dW[k, c, f] = Σ_{i,o} S[i, o, k]
  dW'[(i, c), (o, f)]: each tap gathers the entries it was copied to."""
  kh, kw, c, f = w_shape
  n = x.shape[0]
  taps = jnp.asarray(_dense_taps(g), x.dtype)
  dw_dense = (x.reshape(n, -1).T @ dy.reshape(n, -1)).reshape(taps.shape[0], c,
                                                             taps.shape[1], f)
  return jnp.einsum("iok,icof->kcf", taps, dw_dense).reshape(w_shape)


def _input_grad_dense(dy, w, g: _Geometry):
  """dX[n, (ih, iw, c)] = Σ_{(oh, ow, f)} dY[n, (oh, ow, f)] W'[(ih, iw, c), (oh, ow, f)]."""
  n = dy.shape[0]
  dx = dy.reshape(n, -1) @ _dense_kernel(w, g).T
  return dx.reshape(n, *g.in_hw, w.shape[2])
