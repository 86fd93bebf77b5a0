"""What the three parts of the Q7 study share: the study's names, its settings (the
profiles), the engine configuration of a training run, the MNIST input scaling, and the
MLP's dense layers."""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hw import ops
from hw.engine.config import ExperimentConfig

NAME = "q7"
TITLE = "Q7 (EECS short answers): deep sigmoid nets, dropout at inference, a diverging loss"
REPORTED = ("short answers, no numbers",)
MNIST_NORMALIZE = (0.1307, 0.3081)
ACTIVATIONS = {"relu": ops.relu, "tanh": ops.tanh, "sigmoid": ops.sigmoid}
SATURATED = 0.05  # a sigmoid unit counts as saturated when σ(z) < 0.05 or σ(z) > 0.95


@dataclasses.dataclass(frozen=True)
class Settings:
  """Sizes of one run of the study (a profile)."""
  # 1. deep sigmoid vs ReLU
  deep_train_size: int | None = 10_000
  deep_hidden: tuple[int, ...] = (128,) * 8
  deep_epochs: int = 10
  deep_learning_rate: float = 0.05
  probe_size: int = 1000            # training images of the gradient / activation probes
  # 2. dropout
  dropout_train_size: int | None = None
  dropout_hidden: tuple[int, ...] = (512, 512)
  dropout_rate: float = 0.5
  dropout_epochs: int = 3
  mask_draws: int = 5               # single masked passes, for the mean and spread
  mc_passes: int = 20               # masked passes averaged (Monte-Carlo dropout)
  # 3. learning rates
  lr_hidden: tuple[int, ...] = (256, 256)
  lr_steps: int = 600
  lr_batch: int = 100
  lr_sweep: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
  lr_large_batch: int = 1000
  lr_clip: float = 1.0
  lr_log_every: int = 10
  validation_size: int | None = 2000
  test_size: int | None = None
  seed: int = 0


SETTINGS = {"quick": Settings(), "full": Settings(deep_train_size=None, deep_epochs=20,
                                                  dropout_epochs=10, lr_steps=2000)}


def _config(name: str, model_kwargs: dict[str, Any], *, epochs: int, optimizer: str,
            learning_rate: float, settings: Settings, profile: str) -> ExperimentConfig:
  return ExperimentConfig(
      name=f"{NAME}_{name}", title=f"Q7 {name}", dataset="mnist", model="mlp",
      model_kwargs=model_kwargs, optimizer=optimizer, learning_rate=learning_rate,
      momentum=0.9, batch_size=100, epochs=epochs, weight_scale=None,
      normalize=MNIST_NORMALIZE, seed=settings.seed, profile=profile)


def _normalized(images: np.ndarray) -> jax.Array:
  return jnp.asarray((np.asarray(images, np.float32) - MNIST_NORMALIZE[0]) / MNIST_NORMALIZE[1])


def layer_names(params: Any) -> list[str]:
  """The MLP's dense layers in order: Dense_0 (first hidden) … Dense_L (output)."""
  return [f"Dense_{i}" for i in range(len(params)) if f"Dense_{i}" in params]
