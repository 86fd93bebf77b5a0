"""Per-op timing of hw.ops conv/pool (forward + hand-written backward) vs autodiff of lax.

Usage: python benchmarks/ops_scratch.py [--reps 20] [--algorithm-sweep]

Each case times, under jit with block_until_ready, one forward + backward of the hw op and
of the plain lax op differentiated by jax.vjp (what flax.linen's Conv / max_pool give),
alternating the two so machine load affects both alike; prints median and min in ms and
the ratio ref/hw (> 1: hw is faster). "dW only" rows differentiate with respect to the
kernel alone, as a training step does for a first layer (XLA then drops the dX work).
Indicative only on a shared CPU.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from hw import ops
from hw.ops import convolution

DN = ("NHWC", "HWIO", "NHWC")


def lax_conv(x, w, padding):
  return lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=DN)


def lax_max_pool(x):
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def fwd_bwd(op, wrt):
  """jit(args -> (op output, cotangents of the args in `wrt` for an upstream dy))."""
  def run(dy, *args):
    def partial_op(*diff):
      full = list(args)
      for i, v in zip(wrt, diff):
        full[i] = v
      return op(*full)
    y, pullback = jax.vjp(partial_op, *[args[i] for i in wrt])
    return y, pullback(dy)
  return jax.jit(run)


def time_many(fns, args, reps):
  """Per function: (median wall ms, min wall ms, median process-CPU ms), calls interleaved.

  Process CPU time (all threads) is less sensitive than wall time to other jobs sharing
  the cores, so it is the better guide for choosing between algorithms.
  """
  for fn in fns:
    jax.block_until_ready(fn(*args))
  wall, cpu = [[] for _ in fns], [[] for _ in fns]
  for _ in range(reps):
    for i, fn in enumerate(fns):
      start, start_cpu = time.perf_counter(), time.process_time()
      jax.block_until_ready(fn(*args))
      wall[i].append((time.perf_counter() - start) * 1e3)
      cpu[i].append((time.process_time() - start_cpu) * 1e3)
  return [(float(np.median(w)), float(np.min(w)), float(np.median(c))) for w, c in zip(wall, cpu)]


def time_pair(fn_hw, fn_ref, args, reps):
  hw, ref = time_many([fn_hw, fn_ref], args, reps)
  return {"hw": hw, "ref": ref}


def cases():
  rng = np.random.default_rng(0)
  arr = lambda *s: jnp.asarray(rng.standard_normal(s), jnp.float32)
  for xs, ws, pad in [((100, 28, 28, 1), (7, 7, 1, 32), "VALID"),
                      ((100, 28, 28, 1), (3, 3, 1, 8), "SAME"),
                      ((100, 14, 14, 8), (3, 3, 8, 8), "SAME")]:
    x, w = arr(*xs), arr(*ws)
    out = lax_conv(x, w, pad).shape
    hw_op = lambda x, w, pad=pad: ops.conv2d(x, w, padding=pad)
    ref_op = lambda x, w, pad=pad: lax_conv(x, w, pad)
    label = f"conv2d x{xs} w{ws} {pad}"
    yield label + " dX+dW", hw_op, ref_op, (0, 1), (arr(*out), x, w)
    if xs[-1] == 1:  # first layer of a net: the train step needs dW only
      yield label + " dW only", hw_op, ref_op, (1,), (arr(*out), x, w)
  for xs in [(100, 22, 22, 32), (100, 28, 28, 8)]:
    x = arr(*xs)
    out = lax_max_pool(x).shape
    yield f"max_pool 2x2 x{xs}", ops.max_pool, lax_max_pool, (0,), (arr(*out), x)


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--reps", type=int, default=20)
  parser.add_argument("--algorithm-sweep", action="store_true",
                      help="time conv2d under each choice of algorithms (lax conv vs im2col)")
  args = parser.parse_args()
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}; ms median (min), ratio = ref/hw")
  for label, hw_op, ref_op, wrt, call_args in cases():
    t = time_pair(fwd_bwd(hw_op, wrt), fwd_bwd(ref_op, wrt), call_args, args.reps)
    print(f"{label:50s} hw {t['hw'][0]:7.2f} ({t['hw'][1]:6.2f}) cpu {t['hw'][2]:7.2f} | "
          f"ref {t['ref'][0]:7.2f} ({t['ref'][1]:6.2f}) cpu {t['ref'][2]:7.2f} | "
          f"ratio wall {t['ref'][0] / t['hw'][0]:5.2f} cpu {t['ref'][2] / t['hw'][2]:5.2f}")
  if args.algorithm_sweep:
    algorithm_sweep(args.reps)


POLICIES = {  # (_IM2COL_MAX_INPUT_CHANNELS, _IM2COL_FORWARD_MAX_OUTPUT_CHANNELS,
              #  _SHIFT_FORWARD_MAX_MACS, _MATMUL_KERNEL_GRAD_MAX_TAPS, ..._MAX_POSITIONS)
    "lax": (0, 0, 0, 0, 0), "lax matmul dW": (0, 0, 0, 10**9, 10**9),
    "lax fwd+im2col bwd": (10**6, 0, 0, 0, 0), "im2col": (10**6, 10**6, 0, 0, 0),
    "shift fwd+im2col bwd": (10**6, 0, 10**9, 0, 0)}
_KNOBS = ("_IM2COL_MAX_INPUT_CHANNELS", "_IM2COL_FORWARD_MAX_OUTPUT_CHANNELS",
          "_SHIFT_FORWARD_MAX_MACS", "_MATMUL_KERNEL_GRAD_MAX_TAPS",
          "_MATMUL_KERNEL_GRAD_MAX_POSITIONS")


def _set_policy(policy) -> None:
  for knob, value in zip(_KNOBS, policy):
    setattr(convolution, knob, value)


def algorithm_sweep(reps: int) -> None:
  """conv2d forward + backward under each algorithm policy; cpu ms (wall median)."""
  rng = np.random.default_rng(1)
  saved = tuple(getattr(convolution, knob) for knob in _KNOBS)
  shapes = [(28, 1, 32, 7, "VALID"), (28, 1, 8, 3, "SAME"), (28, 1, 16, 3, "VALID"),
            (28, 1, 32, 5, "VALID"), (28, 1, 32, 3, "SAME"), (14, 8, 8, 3, "SAME"),
            (13, 16, 32, 3, "VALID"), (13, 32, 64, 3, "VALID"), (14, 32, 64, 3, "SAME"),
            (12, 32, 64, 5, "VALID"),
            (32, 3, 32, 3, "SAME"), (16, 32, 32, 3, "SAME"), (8, 64, 64, 3, "SAME")]
  for spatial, c, f, k, pad in shapes:
    x = jnp.asarray(rng.standard_normal((100, spatial, spatial, c)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((k, k, c, f)), jnp.float32)
    out = lax_conv(x, w, pad).shape
    dy = jnp.asarray(rng.standard_normal(out), jnp.float32)
    for wrt in ((0, 1), (1,)):
      fns = []
      for policy in POLICIES.values():
        _set_policy(policy)
        fns.append(fwd_bwd(lambda x, w, pad=pad: ops.conv2d(x, w, padding=pad), wrt))
        jax.block_until_ready(fns[-1](dy, x, w))  # trace now, under this policy
      _set_policy(saved)
      times = time_many(fns, (dy, x, w), reps)
      cells = "  ".join(f"{name}: {t[2]:6.2f} ({t[0]:6.2f})" for name, t in zip(POLICIES, times))
      print(f"{spatial}x{spatial}x{c} {k}x{k}->{f} {pad} {'dX+dW' if wrt == (0, 1) else 'dW':5s} {cells}")


if __name__ == "__main__":
  main()
