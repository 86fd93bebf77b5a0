"""Equivariance itself (part 3 of the HK6 study): the first conv layer's feature maps of an
image and of its shifted copy differ by the same shift (up to float rounding); deeper maps
only for shifts that are multiples of their stride; the MLP's hidden layer has no such
structure. The maps are recomputed from the trained parameters with hw.ops."""
from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from experiments.studies.equivariance.canvas import centre_offset, overlap, place
from experiments.studies.equivariance.shared import CHECK_SHIFTS, SCALE
from hw import ops


def canvas_maps(params: Any, images: jax.Array, pool: int = 2) -> list[jax.Array]:
  """The feature maps of ``GlobalPoolConvNet`` (after each conv's ReLU), then its global
  max-pooled features and its scores, recomputed from its parameters with hw.ops."""
  return _canvas_maps(params, images, pool)


@functools.partial(jax.jit, static_argnums=2)
def _canvas_maps(params: Any, images: jax.Array, pool: int) -> list[jax.Array]:
  x, maps, index = images, [], 0
  while f"Conv_{index}" in params:
    if index:
      x = ops.max_pool(x, pool)
    layer = params[f"Conv_{index}"]
    x = ops.relu(ops.conv2d(x, layer["kernel"], layer["bias"], padding="SAME"))
    maps.append(x)
    index += 1
  pooled = ops.adaptive_max_pool(x, 1).reshape((x.shape[0], x.shape[-1]))
  dense = params["Dense_0"]
  return maps + [pooled, ops.linear(pooled, dense["kernel"], dense["bias"])]


@jax.jit
def mlp_hidden(params: Any, images: jax.Array) -> jax.Array:
  """The first hidden layer (after ReLU) of an ``MLP``."""
  layer = params["Dense_0"]
  return ops.relu(ops.linear(images.reshape((images.shape[0], -1)), layer["kernel"],
                             layer["bias"]))


def equivariance_check(cnn_params: Any, mlp_params: Any, digits: np.ndarray, size: int,
                       shifts: Sequence[tuple[int, int]] = CHECK_SHIFTS,
                       edge: int = 2) -> dict[str, Any]:
  """For each shift T: how far each CNN stage is from moving with the input, and how much
  the MLP's hidden layer changes.

  Digits are placed in the canvas centre (x) and moved by (dy, dx) (Tx). A map of stride
  r (1 for the first conv, 2 after one pool, …) is compared with the same map of x moved
  by (dy/r, dx/r) where r divides the shift, on the positions both maps have:
  relative error = max |φ(Tx) − Tφ(x)| / max |φ(x)|, over the whole overlap and over its
  interior (``edge`` positions in from the canvas edge: there the zero padding of the
  deeper convs differs from the background's own features, relu(bias), which move with
  the digit). The global-pooled features and the MLP's hidden layer are compared without
  a shift: ‖g(Tx) − g(x)‖ / ‖g(x)‖.
  """
  centre = centre_offset(size)
  scaled = lambda a: a / SCALE[1]
  base = place(digits, np.full((len(digits), 2), centre), size)
  base_maps = [np.asarray(m) for m in canvas_maps(cnn_params, jnp.asarray(scaled(base)))]
  base_hidden = np.asarray(mlp_hidden(mlp_params, jnp.asarray(scaled(base))))
  strides = [2 ** i for i in range(len(base_maps) - 2)]
  rows = []
  for dy, dx in shifts:
    moved = place(digits, np.full((len(digits), 2), centre) + [dy, dx], size)
    moved_maps = [np.asarray(m) for m in canvas_maps(cnn_params, jnp.asarray(scaled(moved)))]
    stages = []
    for stride, a, b in zip(strides, base_maps, moved_maps):
      if dy % stride or dx % stride:
        stages.append({"stride": stride, "relative_error": None})
        continue
      a_part, b_part = overlap(a, b, dy // stride, dx // stride)
      error = np.abs(b_part - a_part)
      scale = float(np.max(np.abs(a)))
      inner = error[:, edge:error.shape[1] - edge, edge:error.shape[2] - edge]
      stages.append({"stride": stride, "max_abs_error": float(np.max(error)),
                     "relative_error": float(np.max(error)) / scale,
                     "relative_error_interior": float(np.max(inner)) / scale if inner.size else None})
    pooled_change = _relative_change(base_maps[-2], moved_maps[-2])
    hidden = np.asarray(mlp_hidden(mlp_params, jnp.asarray(scaled(moved))))
    rows.append({
        "shift": [dy, dx], "conv_stages": stages,
        "pooled_relative_change": pooled_change,
        "cnn_same_prediction": float(np.mean(np.argmax(base_maps[-1], -1)
                                             == np.argmax(moved_maps[-1], -1))),
        "mlp_hidden_relative_change": _relative_change(base_hidden, hidden)})
  return {"images": len(digits), "strides": strides, "edge": edge, "shifts": rows}


def _relative_change(before: np.ndarray, after: np.ndarray) -> float:
  """Mean over examples of ‖after − before‖ / ‖before‖."""
  before, after = before.reshape(len(before), -1), after.reshape(len(after), -1)
  norms = np.maximum(np.linalg.norm(before, axis=1), 1e-12)
  return float(np.mean(np.linalg.norm(after - before, axis=1) / norms))
