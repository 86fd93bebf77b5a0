"""The benchmarked networks as one plain layer list, shared by all three implementations.

The architecture of each experiment is taken from ``experiments/<name>.py`` (its
``get_config("full")``) and ``hw.models`` when those import; otherwise from the built-in
defaults below. The layer list (the "IR") is what the autodiff (b) and PyTorch (c)
versions are built from, so all three run the same shapes.
"""
from __future__ import annotations

import dataclasses
import importlib
import math
from typing import Any, Mapping, Sequence

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
class BatchNorm:
  momentum: float = 0.9
  epsilon: float = 1e-5


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
    model: name registered in ``hw.models.MODELS``.
    model_kwargs: keywords for ``hw.models.create_model``.
    layers: the same network as a layer list (input NHWC 28x28x1, output 10 scores).
    source: where the architecture came from (experiment config or built-in default).
    image_shape: input (H, W, C).
    epoch_images: training images in one epoch.
  """
  name: str
  title: str
  model: str
  model_kwargs: Mapping[str, Any]
  layers: tuple[Layer, ...]
  source: str
  image_shape: tuple[int, int, int] = IMAGE_SHAPE
  epoch_images: int = 54_000


# Built-in defaults, used only when experiments/<name>.py does not import.
DEFAULTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "q4_4": ("Q4.4 MLP 784-1000-ReLU-10", "mlp", {"hidden_sizes": (1000,)}),
    "q5_3": ("Q5.3 CNN conv32x7x7-ReLU-pool2-fc100-ReLU-fc10", "cnn",
             {"filters": 32, "filter_size": 7, "hidden_size": 100}),
    "q5_4": ("Q5.4 CNN with batch norm and dropout", "cnn_bn", {}),
}


def mlp_layers(hidden_sizes: Sequence[int], dropout_rate: float = 0.0) -> tuple[Layer, ...]:
  """Mirror of ``hw.models.MLP``."""
  layers: list[Layer] = [Flatten()]
  for width in hidden_sizes:
    layers += [Dense(int(width)), ReLU()]
    if dropout_rate:
      layers.append(Dropout(dropout_rate))
  return tuple(layers + [Dense(NUM_CLASSES)])


def convnet_layers(conv_blocks: Sequence[Sequence[int]], hidden_size: int, *,
                   batch_norm: bool = False, dropout_rate: float = 0.0,
                   conv_dropout: bool = True, padding: str = "VALID",
                   pool: int = 2) -> tuple[Layer, ...]:
  """Mirror of ``hw.models.ConvNet``: conv [–BN] –ReLU–pool [–dropout] per block, then
  flatten–fc [–BN]–ReLU [–dropout]–fc."""
  layers: list[Layer] = []
  for filters, size in conv_blocks:
    layers.append(Conv(int(filters), int(size), padding, use_bias=not batch_norm))
    if batch_norm:
      layers.append(BatchNorm())
    layers += [ReLU(), MaxPool(pool)]
    if dropout_rate and conv_dropout:
      layers.append(Dropout(dropout_rate))
  layers += [Flatten(), Dense(int(hidden_size), use_bias=not batch_norm)]
  if batch_norm:
    layers.append(BatchNorm())
  layers.append(ReLU())
  if dropout_rate:
    layers.append(Dropout(dropout_rate))
  return tuple(layers + [Dense(NUM_CLASSES)])


def layers_from_module(module: Any) -> tuple[Layer, ...]:
  """The layer list of an ``hw.models`` instance (MLP or ConvNet), read from its fields."""
  kind = type(module).__name__
  if kind == "MLP":
    return mlp_layers(module.hidden_sizes, module.dropout_rate)
  if kind == "ConvNet":
    return convnet_layers(module.conv_blocks, module.hidden_size, batch_norm=module.batch_norm,
                          dropout_rate=module.dropout_rate, conv_dropout=module.conv_dropout,
                          padding=module.padding, pool=module.pool)
  raise ValueError(f"no layer-list mirror for hw.models.{kind}; add one in {__name__}")


def _fallback_layers(model: str, kwargs: Mapping[str, Any]) -> tuple[Layer, ...]:
  """Layer lists for when ``hw.models`` does not import (same defaults as hw.models)."""
  if model == "mlp":
    return mlp_layers(kwargs.get("hidden_sizes", (100,)), kwargs.get("dropout_rate", 0.0))
  if model == "cnn":
    return convnet_layers([(kwargs.get("filters", 32), kwargs.get("filter_size", 7))],
                          kwargs.get("hidden_size", 100))
  if model == "cnn_bn":
    return convnet_layers(kwargs.get("conv_blocks", ((32, 5),)), kwargs.get("hidden_size", 100),
                          batch_norm=kwargs.get("batch_norm", True),
                          dropout_rate=kwargs.get("dropout_rate", 0.25),
                          conv_dropout=kwargs.get("conv_dropout", True),
                          padding=kwargs.get("padding", "VALID"))
  raise ValueError(f"unknown model {model!r}")


def _hw_models():
  try:
    return importlib.import_module("hw.models")
  except ImportError:
    return None


def load(name: str) -> Architecture:
  """The architecture of experiment ``name`` ("q4_4", "q5_3", "q5_4", ...)."""
  title, model, kwargs = DEFAULTS.get(name, (name, "", {}))
  source = "built-in default (benchmarks/architectures.py)"
  dataset = "mnist"
  try:
    config = importlib.import_module(f"experiments.{name}").get_config("full")
  except ImportError:
    if name not in DEFAULTS:
      raise ValueError(f"unknown model {name!r}: no experiments/{name}.py and no built-in "
                       f"default (known: {sorted(DEFAULTS)})") from None
  else:
    if config.dataset not in DATASETS:
      raise ValueError(f"experiment {name!r} uses dataset {config.dataset!r}; only image "
                       f"models are benchmarked ({sorted(DATASETS)})")
    dataset = config.dataset
    title, model, kwargs = config.title, config.model, dict(config.model_kwargs)
    source = f"experiments/{name}.py get_config('full')"
  models = _hw_models()
  if models is not None:
    module = models.create_model(model, num_outputs=NUM_CLASSES, **kwargs)
    layers = layers_from_module(module)
  else:
    layers = _fallback_layers(model, kwargs)
  image_shape, epoch_images = DATASETS[dataset]
  return Architecture(name, title, model, kwargs, layers, source, image_shape, epoch_images)


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
