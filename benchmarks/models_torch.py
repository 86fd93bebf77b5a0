"""(c): the same layer list as a PyTorch ``nn.Module`` (NCHW), eager, SGD step on the CPU."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from benchmarks import architectures as arch
from benchmarks.models_autodiff import LEARNING_RATE, autodiff_scores, max_difference

try:
  import torch
  from torch import nn
except ImportError:  # the `bench` extra is not installed
  torch = None


def available() -> bool:
  return torch is not None


def thread_settings(spec: str | None) -> list[int]:
  """Thread counts to run PyTorch with: ``spec`` like "2,1"; default the core count and 1.

  The first is the main column (c). On an oversubscribed machine OpenMP's barriers make
  multi-threaded PyTorch far slower than one thread, so one thread is measured as well.
  """
  if spec:
    counts = [int(v) for v in spec.split(",") if v]
  else:
    counts = [os.cpu_count() or 1, 1]
  if not counts or min(counts) < 1:
    raise ValueError(f"--torch-threads must be positive integers, got {spec!r}")
  return list(dict.fromkeys(counts))


def build(layers: Sequence[arch.Layer], image_shape=arch.IMAGE_SHAPE) -> "nn.Module":
  """The layer list as ``nn.Sequential`` on NCHW input of shape (N, C, H, W)."""
  height, width, channels = image_shape
  modules: list[nn.Module] = []
  flat_size = None
  for layer in layers:
    if isinstance(layer, arch.Conv):
      pad = 0 if layer.padding == "VALID" else "same"
      modules.append(nn.Conv2d(channels, layer.features, layer.kernel_size, padding=pad,
                               bias=layer.use_bias))
      if layer.padding == "VALID":
        height, width = height - layer.kernel_size + 1, width - layer.kernel_size + 1
      channels = layer.features
    elif isinstance(layer, arch.Dense):
      modules.append(nn.Linear(flat_size, layer.features, bias=layer.use_bias))
      flat_size = layer.features
    elif isinstance(layer, arch.BatchNorm):
      # torch's momentum weighs the new batch value: 1 - (flax/handout momentum)
      bn = nn.BatchNorm2d if flat_size is None else nn.BatchNorm1d
      modules.append(bn(channels if flat_size is None else flat_size, eps=layer.epsilon,
                        momentum=1 - layer.momentum))
    elif isinstance(layer, arch.ReLU):
      modules.append(nn.ReLU())
    elif isinstance(layer, arch.MaxPool):
      modules.append(nn.MaxPool2d(layer.window))
      height, width = height // layer.window, width // layer.window
    elif isinstance(layer, arch.Dropout):
      modules.append(nn.Dropout(layer.rate))
    elif isinstance(layer, arch.Flatten):
      modules.append(nn.Flatten())
      flat_size = height * width * channels
    else:
      raise ValueError(f"unknown layer {layer!r}")
  return nn.Sequential(*modules)


def load_flax_variables(model: "nn.Sequential", layers: Sequence[arch.Layer], variables,
                        image_shape=arch.IMAGE_SHAPE) -> None:
  """Copy the variables of (b) (``AutodiffNet(layers)``: ``Conv_0``, ``Dense_0``,
  ``BatchNorm_0``, … in layer order) into ``build(layers)``: kernels to torch's layouts
  (HWIO → OIHW; (in, out) → (out, in), the first fc's rows from NHWC to NCHW flattening
  order), batch-norm scale, bias and running statistics."""
  params, stats = variables["params"], variables.get("batch_stats", {})
  seen: dict[str, int] = {}
  flattened = None   # (H, W, C) of the last flatten's input, until a dense layer uses it
  for (layer, shape), module in zip(arch.trace_shapes(layers, 1, image_shape), model):
    if isinstance(layer, arch.Flatten):
      flattened = shape[1:]
    if not isinstance(layer, (arch.Conv, arch.Dense, arch.BatchNorm)):
      continue
    kind = type(layer).__name__
    name = f"{kind}_{seen.get(kind, 0)}"
    seen[kind] = seen.get(kind, 0) + 1
    values = {k: np.asarray(v, np.float32) for k, v in params[name].items()}
    if isinstance(layer, arch.Conv):
      values["weight"] = values.pop("kernel").transpose(3, 2, 0, 1)
    elif isinstance(layer, arch.Dense):
      kernel = values.pop("kernel")
      if flattened is not None and len(flattened) == 3:
        kernel = kernel.reshape(*flattened, -1).transpose(2, 0, 1, 3).reshape(kernel.shape)
      flattened = None
      values["weight"] = kernel.T
    else:
      values["weight"] = values.pop("scale")
      values["running_mean"] = np.asarray(stats[name]["mean"], np.float32)
      values["running_var"] = np.asarray(stats[name]["var"], np.float32)
    with torch.no_grad():
      for key, value in values.items():
        getattr(module, key).copy_(torch.from_numpy(np.array(value, np.float32, order="C")))


def mirror_error(architecture: arch.Architecture, images: np.ndarray, *, train: bool,
                 seed: int = 0) -> float:
  """Largest |difference| of the scores of (c), the layer list in PyTorch, and (b), the
  layer list in Flax, both with the variables initialised for (b); ``train=True`` (batch
  statistics) needs a network without dropout, as ``models_autodiff.mirror_error``."""
  variables, (want,) = autodiff_scores(architecture, images, train=train, seed=seed)
  model = build(architecture.layers, architecture.image_shape)
  load_flax_variables(model, architecture.layers, variables, architecture.image_shape)
  model.train(train)
  with torch.no_grad():
    got = model(torch.from_numpy(np.array(np.asarray(images).transpose(0, 3, 1, 2), order="C")))
  return max_difference(got.numpy(), want)


def parameter_count(module: "nn.Module") -> int:
  return sum(p.numel() for p in module.parameters())


class TorchTrainer:
  """Eager SGD train step on one fixed batch; ``run(steps)`` runs (torch CPU is synchronous).

  Args:
    layers: the layer list. images: (N, 28, 28, 1) NHWC numpy, transposed to NCHW here.
    labels: (N,) integers.
    threads: ``torch.set_num_threads`` while this trainer runs (default: the core count).
  """

  def __init__(self, layers: Sequence[arch.Layer], images: np.ndarray, labels: np.ndarray,
               *, threads: int | None = None, seed: int = 0):
    self.threads = threads or os.cpu_count() or 1
    torch.manual_seed(seed)
    self.model = build(layers, images.shape[1:])
    self.model.train()
    self.num_params = parameter_count(self.model)
    self.images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    self.optimizer = torch.optim.SGD(self.model.parameters(), lr=LEARNING_RATE)
    self.loss_fn = nn.CrossEntropyLoss()
    self.last_loss: float | None = None

  def run(self, steps: int) -> None:
    torch.set_num_threads(self.threads)
    loss = None
    for _ in range(steps):
      self.optimizer.zero_grad(set_to_none=True)
      loss = self.loss_fn(self.model(self.images), self.labels)
      loss.backward()
      self.optimizer.step()
    if loss is not None:
      self.last_loss = float(loss.detach())
