"""``python -m benchmarks.conv_algorithms``: hw.ops.conv2d under each choice of algorithms.

``hw.ops.convolution`` picks, per layer, between lax convolutions, im2col/col2im matmuls,
a shifted-slice forward pass, a matmul dW, Winograd F(2×2, 3×3) and one dense matmul, by
thresholds on the layer's shape (the
CPU row of ``hw.backends``: ``im2col_max_input_channels`` etc.). This sweep sets those thresholds
to force each policy in turn, traces conv2d forward + backward under it, and times the
policies interleaved (CPU time of the process and wall time, median per call), once with
dX and dW and once with dW only (a first layer). It is how the thresholds were chosen;
rerun it when changing them. Every policy computes the same formulas.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from benchmarks import architectures as arch
from benchmarks import op_timings, timing
from hw import backends

KNOBS = ("im2col_max_input_channels", "im2col_forward_max_output_channels",
         "shift_forward_max_macs", "matmul_kernel_grad_max_taps",
         "matmul_kernel_grad_max_positions", "im2col_max_positions",
         "narrow_lax_max_output_channels", "winograd_min_input_channels",
         "dense_max_input_positions", "winograd_small_map_min_channel_product")
BIG = 10**9
# policy name -> values of KNOBS (0 turns an algorithm off, BIG forces it where it applies;
# winograd_min_input_channels and winograd_small_map_min_channel_product the other way
# round: BIG off, 0 on for every 3×3 stride-1 layer)
POLICIES: dict[str, tuple[int, ...]] = {
    "lax": (0, 0, 0, 0, 0, 0, 0, BIG, 0, BIG),
    "lax matmul dW": (0, 0, 0, BIG, BIG, 0, 0, BIG, 0, BIG),
    "lax fwd+im2col bwd": (BIG, 0, 0, 0, 0, 0, 0, BIG, 0, BIG),
    "im2col": (BIG, BIG, 0, 0, 0, BIG, 0, BIG, 0, BIG),
    "shift fwd+im2col bwd": (BIG, 0, BIG, 0, 0, 0, 0, BIG, 0, BIG),
    "shift fwd+lax bwd": (BIG, 0, 0, 0, 0, 0, BIG, BIG, 0, BIG),
    "winograd": (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    "dense": (0, 0, 0, 0, 0, BIG, 0, BIG, BIG, BIG),
}
# (input height = width, input channels, output channels, kernel size, padding)
SHAPES = [(28, 1, 32, 7, "VALID"), (28, 1, 8, 3, "SAME"), (28, 1, 16, 3, "VALID"),
          (28, 1, 32, 5, "VALID"), (28, 1, 32, 3, "SAME"), (14, 8, 8, 3, "SAME"),
          (13, 16, 32, 3, "VALID"), (13, 32, 64, 3, "VALID"), (14, 32, 64, 3, "SAME"),
          (12, 32, 64, 5, "VALID"),
          (32, 3, 32, 3, "SAME"), (16, 32, 32, 3, "SAME"), (8, 64, 64, 3, "SAME"),
          (4, 64, 64, 3, "SAME"), (2, 64, 64, 3, "SAME"), (2, 256, 256, 3, "SAME"),
          (32, 3, 8, 3, "SAME"), (16, 8, 16, 3, "SAME"), (8, 16, 32, 3, "SAME"),
          (8, 32, 32, 3, "SAME"), (4, 32, 64, 3, "SAME"), (16, 32, 64, 3, "SAME"),
          (8, 64, 128, 3, "SAME"), (8, 128, 128, 3, "SAME"), (4, 128, 256, 3, "SAME"),
          (4, 256, 256, 3, "SAME")]


@contextlib.contextmanager
def policy(values: Sequence[int]) -> Iterator[None]:
  """The CPU's conv2d thresholds (hw.backends) set to ``values`` (in KNOBS order)
  inside the block."""
  with backends.replaced("cpu", conv=dict(zip(KNOBS, values))):
    yield


def sweep(shapes: Sequence[tuple[int, int, int, int, str]] = SHAPES, *, batch: int = 100,
          rounds: int = 5, target_s: float = 0.1,
          policies: Mapping[str, Sequence[int]] = POLICIES) -> list[dict[str, Any]]:
  """One row per (shape, dX+dW or dW only): per policy, median CPU and wall ms per call."""
  rng = np.random.default_rng(1)
  rows = []
  for spatial, channels, features, size, padding in shapes:
    x_shape = (batch, spatial, spatial, channels)
    layer = arch.Conv(features, size, padding)
    for input_grad in (True, False):
      case = op_timings.conv_case(x_shape, layer, rng, input_grad=input_grad)
      runners = {}
      for name, values in policies.items():
        with policy(values):   # trace and compile now, under this policy
          _, runners[name] = op_timings.jax_runners(case.jax_impls["hw"])
          runners[name](1)
      cpu: dict[str, list[float]] = {}
      wall = timing.interleaved(runners, rounds=rounds, target_s=target_s, warmup_steps=1,
                                cpu_times=cpu)
      rows.append({"shape": case.shape,
                   "cpu_ms": {k: timing.quartiles(v)[1] * 1e3 for k, v in cpu.items()},
                   "wall_ms": {k: timing.quartiles(v)[1] * 1e3 for k, v in wall.items()}})
  return rows


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m benchmarks.conv_algorithms",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=100, help="batch size (default 100)")
  parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
  parser.add_argument("--seconds", type=float, default=0.1,
                      help="target wall time of one measurement (default 0.1)")
  args = parser.parse_args(argv)
  print("conv2d f+b per policy: CPU ms (wall ms), median per call")
  for row in sweep(batch=args.batch, rounds=args.rounds, target_s=args.seconds):
    cells = "  ".join(f"{name}: {row['cpu_ms'][name]:6.2f} ({row['wall_ms'][name]:6.2f})"
                      for name in row["cpu_ms"])
    print(f"{row['shape']:45s} {cells}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
