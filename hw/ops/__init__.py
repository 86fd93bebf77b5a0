"""Every layer as a pure function whose backward pass is written by hand.

Images are NHWC and kernels HWIO, as in Flax. Each op is a ``jax.custom_vjp`` whose
backward rule implements the derivation in its docstring; none of them calls autodiff
(``jax.grad``/``vjp``/``jvp``/``linearize``/``linear_transpose``) inside a backward rule.

Ops with more than one implementation take ``algorithm=None`` (an automatic choice by
shape) or the name of one implementation path; ``ALGORITHMS`` lists them per op.
"""
from hw.ops import convolution as _convolution
from hw.ops import pooling as _pooling
from hw.ops.activations import relu, sigmoid, softmax, tanh
from hw.ops.convolution import conv1d, conv2d
from hw.ops.dense import linear
from hw.ops.dropout import dropout
from hw.ops.losses import hinge_loss, logistic_loss, softmax_cross_entropy, squared_error
from hw.ops.normalization import batch_norm
from hw.ops.pooling import adaptive_avg_pool, adaptive_max_pool, avg_pool, max_pool

# op name -> the names its ``algorithm`` argument accepts (besides None, automatic).
ALGORITHMS: dict[str, tuple[str, ...]] = {
    "conv1d": _convolution.CONV1D_ALGORITHMS,
    "conv2d": tuple(_convolution.ALGORITHMS),
    "max_pool": tuple(_pooling.ALGORITHMS),
    "avg_pool": tuple(_pooling.ALGORITHMS),
    "adaptive_avg_pool": tuple(_pooling.ALGORITHMS),
    "adaptive_max_pool": tuple(_pooling.ALGORITHMS),
}

__all__ = [
    "adaptive_avg_pool", "adaptive_max_pool", "avg_pool", "batch_norm", "conv1d",
    "conv2d", "dropout", "hinge_loss", "linear", "logistic_loss", "max_pool", "relu",
    "sigmoid", "softmax", "softmax_cross_entropy", "squared_error", "tanh",
]
