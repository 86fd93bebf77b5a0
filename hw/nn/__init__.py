"""Thin Flax modules over :mod:`hw.ops` and the models built from them.

``hw.nn.Dense``, ``Conv``, ``BatchNorm``, ``Dropout`` (and the activation and pooling
helpers) own parameters only; their computation is one hand-written op each. The models
(``MLP``, ``ConvNet``, ``GlobalPoolConvNet``, ``VGG``) are registered by name in
:data:`MODELS`, and :func:`create_model` builds one for a config.
"""
from hw.nn.layers import (
                          BatchNorm,
                          Conv,
                          Dense,
                          Dropout,
                          flatten,
                          global_pool,
                          kernel_init,
                          max_pool,
                          relu,
                          sigmoid,
                          tanh,
)
from hw.nn.models import (
                          ACTIVATIONS,
                          HANDOUT_LAYOUT,
                          MLP,
                          MODELS,
                          POOL,
                          VGG,
                          ConvNet,
                          GlobalPoolConvNet,
                          create_model,
)

__all__ = ["ACTIVATIONS", "BatchNorm", "Conv", "ConvNet", "Dense", "Dropout", "GlobalPoolConvNet",
           "HANDOUT_LAYOUT", "MLP", "MODELS", "POOL", "VGG", "create_model", "flatten",
           "global_pool", "kernel_init", "max_pool", "relu", "sigmoid", "tanh"]
