"""The roofline column: nominal FLOPs of a train step or an op, and the machine's measured
float32 matmul peak to divide them by.

Nominal FLOPs count the arithmetic of the textbook formulation — a convolution as its
direct sum (2·N·OH·OW·KH·KW·C·F per pass), a dense layer as its matmul (2·N·Din·Dout per
pass) — for the passes a train step needs: forward, dW, and dX except for the first layer
(the images need no gradient). Pooling, batch norm, dropout, activations and the loss are
memory-bound and left out. A path that does less arithmetic (Winograd: 2.25× fewer
multiplies on 3×3 layers) can so exceed the peak in this nominal rate; the column shows how
much work per second a pass delivers, against what the matrix unit can do.

The peak is a 2048 × 2048 float32 matmul (XLA, and PyTorch when installed), timed
interleaved in the same run as everything it is compared with.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import architectures as arch
from benchmarks import timing

PEAK_SIZE = 2048


def layer_flops(layer: Any, in_shape: Sequence[int], *, input_grad: bool) -> float:
  """Nominal FLOPs of one conv/dense layer's forward + backward (0 for other layers)."""
  if isinstance(layer, arch.Conv):
    n, h, w, c = in_shape
    k = layer.kernel_size
    oh, ow = (h, w) if layer.padding != "VALID" else (h - k + 1, w - k + 1)
    one_pass = 2.0 * n * oh * ow * k * k * c * layer.features
  elif isinstance(layer, arch.Dense):
    one_pass = 2.0 * in_shape[0] * math.prod(in_shape[1:]) * layer.features
  else:
    return 0.0
  return one_pass * (3 if input_grad else 2)


def train_step_flops(architecture: arch.Architecture, batch: int) -> float:
  """Nominal FLOPs of one train step (forward, dW, dX below the first parameter layer)."""
  return sum(layer_flops(layer, shape, input_grad=input_grad)
             for layer, shape, input_grad in arch.trace_with_input_grads(architecture, batch)
             if layer != "loss")


def measure_peak(*, rounds: int, target_s: float, with_torch: bool) -> dict[str, Any]:
  """Median GFLOP/s of a PEAK_SIZE² float32 matmul by XLA (and PyTorch), interleaved.

  Returns:
    {"size", "gflops": {"xla": ..., "torch": ...}, "peak_gflops": the faster median}.
  """
  rng = np.random.default_rng(0)
  a = rng.standard_normal((PEAK_SIZE, PEAK_SIZE), dtype=np.float32)
  b = rng.standard_normal((PEAK_SIZE, PEAK_SIZE), dtype=np.float32)
  matmul = jax.jit(jnp.matmul)
  xa, xb = jnp.asarray(a), jnp.asarray(b)

  def run_xla(steps: int) -> None:
    out = None
    for _ in range(steps):
      out = matmul(xa, xb)
    jax.block_until_ready(out)

  runners = {"xla": run_xla}
  if with_torch:
    import torch
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)

    def run_torch(steps: int) -> None:
      for _ in range(steps):
        torch.mm(ta, tb)

    runners["torch"] = run_torch
  times = timing.interleaved(runners, rounds=rounds, target_s=target_s, warmup_steps=1)
  flops = 2.0 * PEAK_SIZE ** 3
  gflops = {k: flops / timing.quartiles(v)[1] / 1e9 for k, v in times.items()}
  return {"size": PEAK_SIZE, "gflops": gflops, "peak_gflops": max(gflops.values())}


def rate(flops: float | None, seconds: float | None, peak_gflops: float | None
         ) -> tuple[float | None, float | None]:
  """(GFLOP/s, fraction of the peak) of ``flops`` done in ``seconds``; None where unknown."""
  if not flops or not seconds:
    return None, None
  gflops = flops / seconds / 1e9
  return gflops, (gflops / peak_gflops if peak_gflops else None)
