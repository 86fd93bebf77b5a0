"""The networks of the experiments, built from :mod:`hw.nn` layers, and a name registry.

Every model maps a batch ``x`` of shape (N, ...) to scores of shape (N, num_outputs), or
(N,) when ``num_outputs == 1`` (a single score for the logistic / hinge losses), and is
called as ``model.apply(variables, x, train=..., rngs={"dropout": key})``.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax

from hw.named import Registry
from hw.nn import layers as hnn


def _outputs(scores: jax.Array, num_outputs: int) -> jax.Array:
  return scores[:, 0] if num_outputs == 1 else scores


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": hnn.relu, "sigmoid": hnn.sigmoid, "tanh": hnn.tanh}


class MLP(nn.Module):
  """Fully connected net: [Dense–activation(–Dropout)] per hidden size, then
  Dense(num_outputs); the activation is ReLU unless ``activation`` names another one of
  :data:`ACTIVATIONS`.

  With no hidden sizes this is softmax regression (or a linear score when
  ``num_outputs == 1``).
  """
  hidden_sizes: Sequence[int]
  num_classes: int
  dropout_rate: float = 0.0
  weight_scale: float | None = None
  activation: str = "relu"

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    activation = ACTIVATIONS[self.activation]
    x = hnn.flatten(x)
    for width in self.hidden_sizes:
      x = activation(hnn.Dense(int(width), weight_scale=self.weight_scale)(x))
      if self.dropout_rate:
        x = hnn.Dropout(self.dropout_rate)(x, train=train)
    x = hnn.Dense(self.num_classes, weight_scale=self.weight_scale)(x)
    return _outputs(x, self.num_classes)


class ConvNet(nn.Module):
  """Conv blocks then a fully connected head.

  Each block ``(filters, size)``: conv (stride 1, ``padding``) [–BN] –ReLU–maxpool
  ``pool`` [–dropout]; then flatten–fc ``hidden_size``[–BN]–ReLU[–dropout]–fc num_classes.
  Q5.3 is ``conv_blocks=((32, 7),), hidden_size=100``; Q5.4 adds batch norm and dropout.
  """
  conv_blocks: Sequence[tuple[int, int]]
  hidden_size: int
  num_classes: int
  batch_norm: bool = False
  dropout_rate: float = 0.0
  conv_dropout: bool = True          # dropout after each conv block too (when rate > 0)
  padding: str = "VALID"
  pool: int = 2
  weight_scale: float | None = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if x.ndim != 4:
      raise ValueError(f"ConvNet expects NHWC images of rank 4, got shape {x.shape}")
    for filters, size in self.conv_blocks:
      x = hnn.Conv(int(filters), int(size), padding=self.padding,
                   weight_scale=self.weight_scale, use_bias=not self.batch_norm)(x)
      if self.batch_norm:
        x = hnn.BatchNorm()(x, train=train)
      x = hnn.max_pool(hnn.relu(x), self.pool)
      if self.dropout_rate and self.conv_dropout:
        x = hnn.Dropout(self.dropout_rate)(x, train=train)
    x = hnn.flatten(x)
    x = hnn.Dense(int(self.hidden_size), weight_scale=self.weight_scale,
                  use_bias=not self.batch_norm)(x)
    if self.batch_norm:
      x = hnn.BatchNorm()(x, train=train)
    x = hnn.relu(x)
    if self.dropout_rate:
      x = hnn.Dropout(self.dropout_rate)(x, train=train)
    x = hnn.Dense(self.num_classes, weight_scale=self.weight_scale)(x)
    return _outputs(x, self.num_classes)


class GlobalPoolConvNet(nn.Module):
  """Fully convolutional net: per block ``(filters, size)`` a conv (stride 1, ``padding``)
  –ReLU, a ``pool``×``pool`` max pool between blocks, then a global max (or average) pool of
  each channel over the whole map and one fc layer to the scores.

  With 'SAME' zero padding and a zero background every conv output moves with its input,
  and the global pool forgets where it was: the scores do not depend on where a digit
  sits on the canvas, up to the phase of the strided pools (shifts by multiples of
  ``pool ** (len(conv_blocks) - 1)`` are exact).
  """
  conv_blocks: Sequence[tuple[int, int]]
  num_classes: int
  global_pool: str = "max"
  padding: str = "SAME"
  pool: int = 2
  weight_scale: float | None = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if x.ndim != 4:
      raise ValueError(f"GlobalPoolConvNet expects NHWC images of rank 4, got shape {x.shape}")
    for index, (filters, size) in enumerate(self.conv_blocks):
      if index:
        x = hnn.max_pool(x, self.pool)
      x = hnn.relu(hnn.Conv(int(filters), int(size), padding=self.padding,
                            weight_scale=self.weight_scale)(x))
    x = hnn.global_pool(x, self.global_pool)
    x = hnn.Dense(self.num_classes, weight_scale=self.weight_scale)(x)
    return _outputs(x, self.num_classes)


POOL = "M"  # in a VGG layout: a 2×2 max pool (stride 2)

HANDOUT_LAYOUT = (8, POOL, 16, POOL, 32, 32, POOL, 64, 64, POOL, 64, 64, POOL)
VGG11_LAYOUT = (64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL)


class VGG(nn.Module):
  """VGG-style CIFAR net: 3×3 convolutions (stride 1, padding 1) and 2×2 max pools as
  listed in ``layout`` (an int is a conv with that many filters, ``"M"`` a pool), each conv
  optionally followed by batch norm and ReLU; then flatten and a fully connected head:
  one fc per ``hidden_sizes`` entry (ReLU after it when ``relu``, dropout before it when
  ``dropout_rate``) and fc ``num_classes``.

  On 32×32 inputs five pools leave 1×1 maps, so the head sees the last conv's channels.
  """
  layout: Sequence[Any]
  hidden_sizes: Sequence[int]
  num_classes: int
  batch_norm: bool = False
  relu: bool = False
  dropout_rate: float = 0.0
  weight_scale: float | None = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if x.ndim != 4:
      raise ValueError(f"VGG expects NHWC images of rank 4, got shape {x.shape}")
    for layer in self.layout:
      if layer == POOL:
        x = hnn.max_pool(x, 2)
        continue
      x = hnn.Conv(int(layer), 3, padding=1, weight_scale=self.weight_scale,
                   use_bias=not self.batch_norm)(x)
      if self.batch_norm:
        x = hnn.BatchNorm()(x, train=train)
      if self.relu:
        x = hnn.relu(x)
    x = hnn.flatten(x)
    for width in self.hidden_sizes:
      if self.dropout_rate:
        x = hnn.Dropout(self.dropout_rate)(x, train=train)
      x = hnn.Dense(int(width), weight_scale=self.weight_scale)(x)
      if self.relu:
        x = hnn.relu(x)
    if self.dropout_rate:
      x = hnn.Dropout(self.dropout_rate)(x, train=train)
    x = hnn.Dense(self.num_classes, weight_scale=self.weight_scale)(x)
    return _outputs(x, self.num_classes)


def _scaled(layout: Sequence[Any], width: int) -> tuple[Any, ...]:
  return tuple(layer if layer == POOL else int(layer) * int(width) for layer in layout)


def _cifar_handout(*, num_outputs: int, weight_scale: float | None, batch_norm: bool = False,
                   relu: bool = False, width: int = 1, dropout_rate: float = 0.0) -> nn.Module:
  return VGG(layout=_scaled(HANDOUT_LAYOUT, width), hidden_sizes=(64 * int(width),),
             num_classes=num_outputs, batch_norm=bool(batch_norm), relu=bool(relu),
             dropout_rate=float(dropout_rate), weight_scale=weight_scale)


def _cifar_improved(*, num_outputs: int, weight_scale: float | None, batch_norm: bool = False,
                    dropout_rate: float = 0.0, width: int = 4) -> nn.Module:
  return _cifar_handout(num_outputs=num_outputs, weight_scale=weight_scale,
                        batch_norm=batch_norm, relu=True, width=width,
                        dropout_rate=dropout_rate)


def _vgg11(*, num_outputs: int, weight_scale: float | None, batch_norm: bool = True,
           hidden_sizes: Sequence[int] = (), dropout_rate: float = 0.0) -> nn.Module:
  return VGG(layout=VGG11_LAYOUT, hidden_sizes=tuple(int(h) for h in hidden_sizes),
             num_classes=num_outputs, batch_norm=bool(batch_norm), relu=True,
             dropout_rate=float(dropout_rate), weight_scale=weight_scale)




def _linear(*, num_outputs: int, weight_scale: float | None) -> nn.Module:
  return MLP(hidden_sizes=(), num_classes=num_outputs, weight_scale=weight_scale)


def _mlp(*, num_outputs: int, weight_scale: float | None, hidden_sizes: Sequence[int] = (100,),
         dropout_rate: float = 0.0, activation: str = "relu") -> nn.Module:
  if activation not in ACTIVATIONS:
    raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
  return MLP(hidden_sizes=tuple(int(h) for h in hidden_sizes), num_classes=num_outputs,
             dropout_rate=dropout_rate, weight_scale=weight_scale, activation=activation)


def _cnn(*, num_outputs: int, weight_scale: float | None, filters: int = 32,
         filter_size: int = 7, hidden_size: int = 100) -> nn.Module:
  return ConvNet(conv_blocks=((int(filters), int(filter_size)),), hidden_size=int(hidden_size),
                 num_classes=num_outputs, weight_scale=weight_scale)


def _cnn_bn(*, num_outputs: int, weight_scale: float | None,
            conv_blocks: Sequence[Sequence[int]] = ((32, 5),), hidden_size: int = 100,
            dropout_rate: float = 0.25, conv_dropout: bool = True, padding: str = "VALID",
            batch_norm: bool = True) -> nn.Module:
  blocks = tuple((int(f), int(k)) for f, k in conv_blocks)
  return ConvNet(conv_blocks=blocks, hidden_size=int(hidden_size), num_classes=num_outputs,
                 batch_norm=batch_norm, dropout_rate=float(dropout_rate),
                 conv_dropout=conv_dropout, padding=padding, weight_scale=weight_scale)


def _cnn_global_pool(*, num_outputs: int, weight_scale: float | None,
                     conv_blocks: Sequence[Sequence[int]] = ((16, 3), (32, 3), (64, 3)),
                     global_pool: str = "max", padding: str = "SAME") -> nn.Module:
  if global_pool not in ("max", "avg"):
    raise ValueError(f"global_pool must be 'max' or 'avg', got {global_pool!r}")
  return GlobalPoolConvNet(conv_blocks=tuple((int(f), int(k)) for f, k in conv_blocks),
                           num_classes=num_outputs, global_pool=global_pool, padding=padding,
                           weight_scale=weight_scale)


# name -> constructor(*, num_outputs, weight_scale, **model_kwargs)
MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
MODELS.register("linear", _linear, "softmax regression / linear score (no hidden layer)")
MODELS.register("mlp", _mlp, "fc–ReLU (or sigmoid, tanh) per hidden size, then fc (optional dropout)")
MODELS.register("cnn", _cnn, "conv k×k valid–ReLU–maxpool 2–fc–ReLU–fc (Q5.3)")
MODELS.register("cnn_bn", _cnn_bn, "[conv–BN–ReLU–pool–dropout]×n–fc–BN–ReLU–dropout–fc (Q5.4)")
MODELS.register("cnn_global_pool", _cnn_global_pool,
                "[conv SAME–ReLU]×n with max pools between, global max/avg pool, fc (HK6)")

MODELS.register("cifar_handout", _cifar_handout,
                "A6 handout: 3×3 convs 8|M|16|M|32,32|M|64,64|M|64,64|M, fc 64, fc 10; "
                "no activations unless relu=True; batch_norm, width, dropout_rate options")
MODELS.register("cifar_improved", _cifar_improved,
                "A6 improved: the handout layout ×4 channels (32…256), ReLU after every conv "
                "and the hidden fc; batch_norm, dropout_rate options")
MODELS.register("vgg11", _vgg11,
                "VGG11-BN for CIFAR: 64|M|128|M|256,256|M|512,512|M|512,512|M, conv–BN–ReLU, "
                "fc 512→10")

def create_model(name: str, *, num_outputs: int, weight_scale: float | None = None,
                 **model_kwargs: Any) -> nn.Module:
  """The registered model ``name`` with ``num_outputs`` scores per example.

  Raises:
    ValueError: for an unknown name or keyword.
  """
  constructor = MODELS[name]
  try:
    return constructor(num_outputs=num_outputs, weight_scale=weight_scale, **model_kwargs)
  except TypeError as error:
    raise ValueError(f"bad keyword for model {name!r}: {error}") from None
