"""Train-step throughput of hw.ops before vs after the dropout-mask and conv changes.

``python -m benchmarks.before_after [--rounds 6] [--seconds 0.3]``: for Q5.3 and Q5.4 (the
experiment's architecture and its grid's conv blocks), times interleaved, per round:
(a_old) the hw.models network traced with the previous implementations patched back in
(dropout keep-mask from ``jax.random.bernoulli``; conv dX read through "HWOI" dimension
numbers; no shifted-slice conv forward, no matmul dW), (a_new) the current hw.ops, (c1t)
PyTorch with one thread. Prints the medians of the per-round ratios, on wall time and on
process CPU time.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib

import jax
import numpy as np
from jax import lax

from benchmarks import architectures as arch
from benchmarks import models_autodiff, models_torch, timing
from hw.ops import convolution
dropout_module = importlib.import_module("hw.ops.dropout")


def old_keep_mask(key, rate, shape):
  return jax.random.bernoulli(key, np.float32(1.0 - rate), shape)


def old_input_grad_transposed_conv(dy, w, g):
  edges = [(k - 1 - lo, k - 1 + unused - hi)
           for k, (lo, hi), unused in zip(g.kernel_hw, g.pads, convolution._unused(g))]
  return lax.conv_general_dilated(
      dy, w[::-1, ::-1], window_strides=(1, 1), padding=edges, lhs_dilation=g.stride,
      dimension_numbers=("NHWC", "HWOI", "NHWC"))


class Patched:
  """Context manager: the previous implementations, active while a step is traced."""

  def __enter__(self):
    self.saved = (dropout_module.keep_mask, convolution._input_grad_transposed_conv,
                  convolution._SHIFT_FORWARD_MAX_MACS, convolution._MATMUL_KERNEL_GRAD_MAX_TAPS)
    dropout_module.keep_mask = old_keep_mask
    convolution._input_grad_transposed_conv = old_input_grad_transposed_conv
    convolution._SHIFT_FORWARD_MAX_MACS = 0
    convolution._MATMUL_KERNEL_GRAD_MAX_TAPS = 0

  def __exit__(self, *exc):
    (dropout_module.keep_mask, convolution._input_grad_transposed_conv,
     convolution._SHIFT_FORWARD_MAX_MACS, convolution._MATMUL_KERNEL_GRAD_MAX_TAPS) = self.saved


def variants():
  yield arch.load("q5_3")
  base = arch.load("q5_4")
  yield base
  config = importlib.import_module("experiments.q5_4").get_config("full")
  blocks = [tuple(map(tuple, b)) for b in config.grid.get("model.conv_blocks", [])]
  seen = {tuple(map(tuple, base.model_kwargs.get("conv_blocks", ())))}
  for conv_blocks in blocks:
    if conv_blocks in seen:
      continue
    seen.add(conv_blocks)
    kwargs = dict(base.model_kwargs, conv_blocks=conv_blocks)
    module = importlib.import_module("hw.models").create_model(
        base.model, num_outputs=arch.NUM_CLASSES, **kwargs)
    yield dataclasses.replace(base, name=f"q5_4 {conv_blocks}", model_kwargs=kwargs,
                              layers=arch.layers_from_module(module))


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--rounds", type=int, default=6)
  parser.add_argument("--seconds", type=float, default=0.3)
  args = parser.parse_args()
  for architecture in variants():
    rng = np.random.default_rng(0)
    images = rng.random((100, *architecture.image_shape), dtype=np.float32)
    labels = rng.integers(0, arch.NUM_CLASSES, 100).astype(np.int32)
    module, _ = models_autodiff.hw_network(architecture)
    x, y = jax.numpy.asarray(images), jax.numpy.asarray(labels)
    old = models_autodiff.JaxTrainer(module, models_autodiff.hw_loss, x, y)
    with Patched():
      old.run(1)  # traced and compiled with the previous implementations
    new = models_autodiff.JaxTrainer(module, models_autodiff.hw_loss, x, y)
    new.run(1)
    runners = {"a_old": old.run, "a_new": new.run}
    if models_torch.available():
      runners["c1t"] = models_torch.TorchTrainer(architecture.layers, images, labels,
                                                 threads=1).run
    cpu: dict[str, list[float]] = {}
    times = timing.interleaved(runners, rounds=args.rounds, target_s=args.seconds,
                               cpu_times=cpu)
    line = [f"{architecture.name} [{arch.describe(architecture.layers)}]"]
    for num, den in (("a_old", "a_new"), ("c1t", "a_old"), ("c1t", "a_new")):
      if num in times:
        wall = np.median(timing.ratio_per_round(times[num], times[den]))
        cpu_ratio = np.median(timing.ratio_per_round(cpu[num], cpu[den]))
        line.append(f"speed {den}/{num}: wall {wall:.2f} cpu {cpu_ratio:.2f}")
    line.append("ms/step " + " ".join(f"{k} {np.median(v) * 1e3:.1f}" for k, v in times.items()))
    print("\n  ".join(line), flush=True)


if __name__ == "__main__":
  main()
