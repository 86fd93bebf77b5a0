"""The benchmarked networks: the ``hw.nn.models`` network and the same network as a layer list.

The architecture of each experiment is the ``model`` and ``model_kwargs`` of
``experiments/<name>.py`` (profile "full"). Column (a) runs the ``hw.nn.models`` network
itself; the layer list read from its fields is what the autodiff (b) and PyTorch (c)
versions are built from, so all three run the same shapes.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import flax.linen as nn

import experiments
from hw import nn as hnn
from hw.engine import steps
from hw.nn import models

IMAGE_SHAPE = (28, 28, 1)   # MNIST, NHWC without the batch axis
NUM_CLASSES = 10
# dataset -> (image shape, training images per epoch after the 10% validation hold-out)
DATASETS = {"mnist": ((28, 28, 1), 54_000), "fashion_mnist": ((28, 28, 1), 54_000),
            "cifar10": ((32, 32, 3), 45_000)}


@dataclasses.dataclass(frozen=True)
class Conv:
  features: int
  kernel_size: int
  padding: str = "VALID"     # "VALID" | "SAME"
  use_bias: bool = True


@dataclasses.dataclass(frozen=True)
class Dense:
  features: int
  use_bias: bool = True


@dataclasses.dataclass(frozen=True)
class BatchNorm:   # hw.nn.BatchNorm's defaults, which hw.nn.models uses
  momentum: float = hnn.BatchNorm.momentum
  epsilon: float = hnn.BatchNorm.epsilon


@dataclasses.dataclass(frozen=True)
class ReLU:
  pass


@dataclasses.dataclass(frozen=True)
class MaxPool:
  window: int = 2


@dataclasses.dataclass(frozen=True)
class Dropout:
  rate: float


@dataclasses.dataclass(frozen=True)
class Flatten:
  pass


Layer = Any


@dataclasses.dataclass(frozen=True)
class Architecture:
  """One benchmarked network.

  Attributes:
    name: experiment id, e.g. "q5_3".
    title: short human description.
    model: name registered in ``hw.nn.models.MODELS``.
    model_kwargs: keywords for ``hw.nn.models.create_model``.
    module: the ``hw.nn.models`` network (every layer an ``hw.ops`` custom VJP): column (a).
    layers: the same network as a layer list, read from ``module``'s fields: what the
      autodiff (b) and PyTorch (c) versions are built from.
    image_shape: input (H, W, C).
    epoch_images: training images in one epoch.
    batch_halves: the training engine computes this experiment's steps on the CPU as two
      half-batch gradients side by side (:func:`hw.engine.steps.steps_in_halves`), so (a)
      and (b) do.
  """
  name: str
  title: str
  model: str
  model_kwargs: Mapping[str, Any]
  module: nn.Module
  layers: tuple[Layer, ...]
  image_shape: tuple[int, int, int] = IMAGE_SHAPE
  epoch_images: int = 54_000
  batch_halves: bool = False


def layers_from_module(module: nn.Module) -> tuple[Layer, ...]:
  """The layer list of an ``hw.nn.models`` instance (MLP or ConvNet), read from its fields.

  MLP: flatten, [fc–ReLU(–dropout)] per hidden size, fc. ConvNet: conv [–BN] –ReLU–pool
  [–dropout] per block, then flatten–fc [–BN]–ReLU [–dropout]–fc. VGG (the CIFAR-10
  nets): per layout entry a 3×3 conv with padding 1 (= "SAME") [–BN] [–ReLU] or a 2×2
  pool, then flatten, [(dropout–) fc (–ReLU)] per hidden size, (dropout–) fc.
  """
  layers: list[Layer] = []
  if isinstance(module, models.MLP):
    layers.append(Flatten())
    for width in module.hidden_sizes:
      layers += [Dense(int(width)), ReLU()]
      if module.dropout_rate:
        layers.append(Dropout(module.dropout_rate))
  elif isinstance(module, models.ConvNet):
    bn, rate = module.batch_norm, module.dropout_rate
    for filters, size in module.conv_blocks:
      layers.append(Conv(int(filters), int(size), module.padding, use_bias=not bn))
      layers += [BatchNorm()] if bn else []
      layers += [ReLU(), MaxPool(module.pool)]
      layers += [Dropout(rate)] if rate and module.conv_dropout else []
    layers += [Flatten(), Dense(int(module.hidden_size), use_bias=not bn)]
    layers += [BatchNorm()] if bn else []
    layers.append(ReLU())
    layers += [Dropout(rate)] if rate else []
  elif isinstance(module, models.VGG):
    bn, relu, rate = module.batch_norm, module.relu, module.dropout_rate
    for entry in module.layout:
      if entry == models.POOL:
        layers.append(MaxPool(2))
        continue
      layers.append(Conv(int(entry), 3, "SAME", use_bias=not bn))   # padding 1 = SAME for 3×3
      layers += [BatchNorm()] if bn else []
      layers += [ReLU()] if relu else []
    layers.append(Flatten())
    for width in module.hidden_sizes:
      layers += [Dropout(rate)] if rate else []
      layers.append(Dense(int(width)))
      layers += [ReLU()] if relu else []
    layers += [Dropout(rate)] if rate else []
  else:
    raise ValueError(f"no layer-list mirror for hw.nn.models.{type(module).__name__}; "
                     f"add one in {__name__}")
  return tuple(layers + [Dense(module.num_classes)])


def from_model(name: str, title: str, model: str, model_kwargs: Mapping[str, Any],
               dataset: str = "mnist") -> Architecture:
  """The architecture of ``hw.nn.models.create_model(model, **model_kwargs)`` on ``dataset``."""
  if dataset not in DATASETS:
    raise ValueError(f"{name!r} uses dataset {dataset!r}; only image models are "
                     f"benchmarked ({sorted(DATASETS)})")
  module = models.create_model(model, num_outputs=NUM_CLASSES, **model_kwargs)
  image_shape, epoch_images = DATASETS[dataset]
  return Architecture(name, title, model, dict(model_kwargs), module,
                      layers_from_module(module), image_shape, epoch_images)


def load(name: str) -> Architecture:
  """The architecture of experiment ``name`` ("q4_4", "q5_3", "q5_4", ...): the ``model``
  and ``model_kwargs`` of ``experiments/<name>.py`` under the "full" profile."""
  config = experiments.get_config(name, "full")
  architecture = from_model(config.name, config.title, config.model, config.model_kwargs,
                            config.dataset)
  return dataclasses.replace(architecture,
                             batch_halves=steps.steps_in_halves(config, architecture.module))


def describe(layers: Sequence[Layer]) -> str:
  """A compact one-line description, e.g. 'conv32x7 relu pool2 flat fc100 relu fc10'."""
  parts = []
  for layer in layers:
    if isinstance(layer, Conv):
      pad = "" if layer.padding == "VALID" else f"/{layer.padding.lower()}"
      parts.append(f"conv{layer.features}x{layer.kernel_size}{pad}")
    elif isinstance(layer, Dense):
      parts.append(f"fc{layer.features}")
    elif isinstance(layer, BatchNorm):
      parts.append("bn")
    elif isinstance(layer, ReLU):
      parts.append("relu")
    elif isinstance(layer, MaxPool):
      parts.append(f"pool{layer.window}")
    elif isinstance(layer, Dropout):
      parts.append(f"drop{layer.rate:g}")
    elif isinstance(layer, Flatten):
      parts.append("flat")
  return " ".join(parts)


def trace_shapes(layers: Sequence[Layer], batch: int,
                 image_shape: tuple[int, int, int] = IMAGE_SHAPE) -> list[tuple[Layer, tuple[int, ...]]]:
  """Each layer with the (NHWC or N×D) shape of its input, for a batch of ``batch``."""
  shape: tuple[int, ...] = (batch, *image_shape)
  traced = []
  for layer in layers:
    traced.append((layer, shape))
    if isinstance(layer, Conv):
      n, h, w, _ = shape
      if layer.padding == "VALID":
        h, w = h - layer.kernel_size + 1, w - layer.kernel_size + 1
      shape = (n, h, w, layer.features)
    elif isinstance(layer, MaxPool):
      n, h, w, c = shape
      shape = (n, h // layer.window, w // layer.window, c)
    elif isinstance(layer, Flatten):
      shape = (shape[0], math.prod(shape[1:]))
    elif isinstance(layer, Dense):
      shape = (shape[0], layer.features)
  traced.append(("loss", shape))
  return traced


def trace_with_input_grads(architecture: Architecture, batch: int
                           ) -> list[tuple[Layer | str, tuple[int, ...], bool]]:
  """:func:`trace_shapes` of an architecture, each layer with whether a train step needs
  its input gradient: not below the first conv or dense layer (nothing there to train)."""
  traced, after_parameters = [], False
  for layer, shape in trace_shapes(architecture.layers, batch, architecture.image_shape):
    traced.append((layer, shape, after_parameters))
    after_parameters = after_parameters or isinstance(layer, (Conv, Dense))
  return traced
