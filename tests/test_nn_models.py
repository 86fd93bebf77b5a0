"""hw.nn layers and the hw.nn.models registry."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hw import nn as hnn
from hw.engine.randomness import init_key
from hw.nn import models


def test_batch_norm_train_updates_running_stats_and_eval_is_affine():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 3)), jnp.float32) * 2.0 + 1.0
  layer = hnn.BatchNorm()
  variables = layer.init(init_key(0), x, train=True)
  y, updates = layer.apply(variables, x, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(y.mean(0), 0.0, atol=1e-5)
  stats = updates["batch_stats"]
  np.testing.assert_allclose(stats["mean"], 0.1 * x.mean(0), rtol=1e-5)
  np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * x.var(0), rtol=1e-5)
  y_eval = layer.apply({"params": variables["params"], "batch_stats": stats}, x, train=False)
  np.testing.assert_allclose(y_eval, (x - stats["mean"]) / jnp.sqrt(stats["var"] + 1e-5),
                             rtol=1e-5, atol=1e-6)


def test_model_registry_and_weight_scale():
  model = models.create_model("mlp", num_outputs=10, weight_scale=1e-3, hidden_sizes=(64,))
  init = jax.jit(lambda x: model.init(init_key(0), x, train=False))
  params = init(jnp.zeros((2, 28, 28, 1)))["params"]
  kernel = params["Dense_0"]["kernel"]
  assert kernel.shape == (784, 64) and 0.5e-3 < float(kernel.std()) < 1.5e-3
  assert float(jnp.abs(params["Dense_0"]["bias"]).max()) == 0.0
  known = ", ".join(models.MODELS)
  assert known.startswith("linear, mlp, cnn, cnn_bn, ")
  with pytest.raises(ValueError, match=f"unknown model 'nope'; known: {known}$"):
    models.create_model("nope", num_outputs=10)
  with pytest.raises(ValueError, match="bad keyword for model 'mlp'"):
    models.create_model("mlp", num_outputs=10, width=3)


@pytest.mark.parametrize("name", list(models.MODELS))
def test_every_model_gives_one_score_per_output(name):
  model = models.create_model(name, num_outputs=3)
  x = jnp.zeros((2, 32, 32, 3) if name in ("cifar_handout", "cifar_improved", "vgg11")
                else (2, 28, 28, 1))
  variables = model.init({"params": init_key(0), "dropout": init_key(1)}, x, train=False)
  assert model.apply(variables, x, train=False).shape == (2, 3)
  single = models.create_model(name, num_outputs=1)
  variables = single.init({"params": init_key(0), "dropout": init_key(1)}, x, train=False)
  assert single.apply(variables, x, train=False).shape == (2,)


def _layers(params, prefix):
  names = sorted((k for k in params if k.startswith(prefix)), key=lambda k: int(k.split("_")[1]))
  return [params[k]["kernel"].shape for k in names]


def test_the_cifar_handout_network_has_the_handout_layers():
  model = models.create_model("cifar_handout", num_outputs=10)
  variables = model.init({"params": init_key(0)}, jnp.zeros((1, 32, 32, 3)), train=False)
  kernels = _layers(variables["params"], "Conv")
  assert [shape[-1] for shape in kernels] == [8, 16, 32, 32, 64, 64, 64, 64]
  assert all(shape[:2] == (3, 3) for shape in kernels)
  dense = _layers(variables["params"], "Dense")
  assert dense == [(64, 64), (64, 10)]
  assert "batch_stats" not in variables  # no batch norm unless asked
  improved = models.create_model("cifar_improved", num_outputs=10, batch_norm=True)
  variables = improved.init({"params": init_key(0)}, jnp.zeros((1, 32, 32, 3)), train=False)
  kernels = [shape[-1] for shape in _layers(variables["params"], "Conv")]
  assert kernels == [32, 64, 128, 128, 256, 256, 256, 256] and "batch_stats" in variables
  vgg = models.create_model("vgg11", num_outputs=10)
  variables = vgg.init({"params": init_key(0)}, jnp.zeros((1, 32, 32, 3)), train=False)
  kernels = [shape[-1] for shape in _layers(variables["params"], "Conv")]
  assert kernels == [64, 128, 256, 256, 512, 512, 512, 512]
