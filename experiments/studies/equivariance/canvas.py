"""Shifts and canvases of the HK6 equivariance study: digits moved with zero fill, pasted
into a larger zero canvas (in the centre or at random positions), and the aligned overlap
of two maps one of which should be the other moved.

The zero fill equals the background because inputs are divided by the MNIST pixel std but
not centred (:data:`~experiments.studies.equivariance.shared.SCALE`)."""
from __future__ import annotations

import numpy as np

from experiments.studies.equivariance.shared import DIGIT


def shift(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
  """NHWC ``images`` translated by ``dy`` rows down and ``dx`` columns right (negative:
  up / left), zero fill: ``out[:, i, j] = images[:, i − dy, j − dx]`` where that exists."""
  images = np.asarray(images)
  out = np.zeros_like(images)
  h, w = images.shape[1:3]
  if abs(dy) >= h or abs(dx) >= w:
    return out
  out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = (
      images[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)])
  return out


def place(images: np.ndarray, offsets: np.ndarray, size: int) -> np.ndarray:
  """Each image pasted into a zero ``size``×``size`` canvas with its top-left corner at its
  row of ``offsets`` (N, 2)."""
  images = np.asarray(images, np.float32)
  n, h, w, c = images.shape
  offsets = np.asarray(offsets, np.int64).reshape(n, 2)
  if offsets.min(initial=0) < 0 or (offsets + [h, w]).max(initial=0) > size:
    raise ValueError(f"offsets put a {h}×{w} image outside the {size}×{size} canvas")
  out = np.zeros((n, size, size, c), np.float32)
  for offset in np.unique(offsets, axis=0):
    rows = np.all(offsets == offset, axis=1)
    out[rows, offset[0]:offset[0] + h, offset[1]:offset[1] + w] = images[rows]
  return out


def centre_offset(size: int, digit: int = DIGIT) -> int:
  return (size - digit) // 2


def random_offsets(count: int, size: int, seed: int, digit: int = DIGIT) -> np.ndarray:
  """Top-left corners uniform over every position where the digit fits the canvas."""
  return np.random.default_rng(seed).integers(0, size - digit + 1, size=(count, 2))


def overlap(a: np.ndarray, b: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
  """Aligned views of maps ``a`` and ``b`` (N, H, W, C) where ``b`` should be ``a`` moved
  by (dy, dx): ``b[:, i, j]`` against ``a[:, i − dy, j − dx]`` wherever both exist."""
  h, w = a.shape[1:3]
  rows_b, rows_a = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
  cols_b, cols_a = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
  return a[:, rows_a, cols_a], b[:, rows_b, cols_b]
