"""Convolutions. PLACEHOLDER: plain JAX, to be replaced."""
from jax import lax


def conv1d(x, w, b=None):
  y = lax.conv_general_dilated(x, w, (1,), "VALID", dimension_numbers=("NWC", "WIO", "NWC"))
  return y if b is None else y + b


def conv2d(x, w, b=None, *, stride=1, padding="VALID"):
  if isinstance(padding, int):
    padding = [(padding, padding)] * 2
  y = lax.conv_general_dilated(x, w, (stride, stride), padding,
                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return y if b is None else y + b
