"""What the equivariance and Q7 studies share: MNIST splits, one training run on the
engine (:func:`hw.engine.train`), batched predictions, and figures whose legends sit below
the axes so that they never cover a curve."""
from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import time
from typing import Any, Sequence

import jax
import numpy as np

from hw import metrics, plotting
from hw.engine import loop
from hw.engine.config import ExperimentConfig
from hw.engine.experiment_data import Split, to_device
from hw.engine.results import plain
from hw.engine.steps import Programs, TrainState

NUM_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class MnistSplits:
  train: Split       # the official training set less the validation hold-out
  validation: Split  # 1/10 of the official training set (hw.data.split_validation, seed 0)
  test: Split        # the official test set
  source: str


def load_mnist(data_dir: str | os.PathLike | None, dataset: Any = None) -> MnistSplits:
  """MNIST via :func:`hw.data.load_dataset` (or ``dataset``, anything with ``train`` and
  ``test`` splits of float32 NHWC images in [0, 1]: the tests' tiny stand-ins), with the
  project's validation split."""
  from hw import data
  if dataset is None:
    dataset = data.load_dataset("mnist", data_dir=data_dir)
  train, validation = data.split_validation(
      data.ArraySplit(np.asarray(dataset.train.images, np.float32),
                      np.asarray(dataset.train.labels, np.int32)), fraction=0.1, seed=0)
  as_split = lambda s: Split(np.asarray(s.images, np.float32), np.asarray(s.labels, np.int32))
  return MnistSplits(as_split(train), as_split(validation), as_split(dataset.test),
                     source=str(getattr(dataset, "source", "in-memory arrays")))


def head(split: Split, count: int | None) -> Split:
  """The first ``count`` examples (all when None)."""
  if count is None or count >= len(split.labels):
    return split
  return Split(split.images[:count], split.labels[:count])


@dataclasses.dataclass
class Trained:
  """One model trained by :func:`train_model`."""
  config: ExperimentConfig
  state: TrainState
  history: list[dict[str, Any]]
  programs: Programs
  seconds: float

  @property
  def params(self) -> Any:
    return self.state.params

  def parameter_count(self) -> int:
    return parameter_count(self.state.params)

  def predict(self, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    """(N, 10) scores of the model in inference mode, inputs normalised as in training."""
    return predict(self.programs.model, self.state.variables(), images,
                   self.config.normalize, batch)

  def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(self.correct(images, labels)))

  def correct(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return _arg_max_is(self.predict(images), labels)

  def top_k_errors(self, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``{"top1_error", "top5_error"}`` of the model on (images, labels)."""
    return metrics.top_k_errors(self.predict(images), np.asarray(labels))

  def accuracy_and_top_k(self, images: np.ndarray,
                         labels: np.ndarray) -> tuple[float, dict[str, float]]:
    """:meth:`accuracy` and :meth:`top_k_errors` from one prediction of ``images``."""
    scores, labels = self.predict(images), np.asarray(labels)
    return float(np.mean(_arg_max_is(scores, labels))), metrics.top_k_errors(scores, labels)


def _arg_max_is(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Per sample, whether the highest of its (N, K) scores is its label."""
  return np.argmax(scores, axis=-1) == np.asarray(labels)


def parameter_count(params: Any) -> int:
  return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(params)))


def train_model(config: ExperimentConfig, train: Split, validation: Split, *,
                hooks: Sequence[loop.Hook] = (), state: TrainState | None = None,
                programs: Programs | None = None) -> Trained:
  """``config.epochs`` epochs of :func:`hw.engine.train` on ``train`` (normalised with
  ``config.normalize``), evaluated on ``validation`` after each; with ``programs`` (those of
  :func:`programs_for`, e.g. to make ``state`` first) or programs compiled here."""
  began = time.perf_counter()
  if programs is None:
    programs = programs_for(config, len(train.labels))
  data = loop.TrainingData(to_device(train, config.normalize, 1),
                           to_device(validation, config.normalize, config.eval_batch_size))
  state, history = loop.train(config, data, programs=programs, state=state, hooks=hooks)
  return Trained(config, state, history, programs, time.perf_counter() - began)


def plain_config(config: ExperimentConfig) -> dict[str, Any]:
  """The config as JSON-ready values (tuples become lists)."""
  return plain(config.to_dict())


def programs_for(config: ExperimentConfig, train_size: int) -> Programs:
  """The compiled programs of ``config`` on ``train_size`` MNIST training examples."""
  return loop.programs_for(config, NUM_CLASSES, train_size)


_APPLY: dict[int, Any] = {}


def predict(model: Any, variables: Any, images: np.ndarray, normalize: Any,
            batch: int = 1000) -> np.ndarray:
  """Scores of ``model`` in inference mode for ``images`` (host array), in batches."""
  apply = _APPLY.get(id(model))
  if apply is None:
    apply = _APPLY.setdefault(id(model), jax.jit(lambda v, x: model.apply(v, x, train=False)))
  images = np.asarray(images, np.float32)
  if normalize is not None:
    images = (images - normalize[0]) / normalize[1]
  out = []
  for start in range(0, len(images), batch):
    part = images[start:start + batch]
    if len(part) < batch and len(images) > batch:  # pad the tail: one compiled shape
      padded = np.concatenate([part, np.zeros((batch - len(part),) + part.shape[1:], np.float32)])
      out.append(np.asarray(apply(variables, padded))[:len(part)])
    else:
      out.append(np.asarray(apply(variables, part)))
  return np.concatenate(out)


# ------------------------------------------------------------------------------ figures

# Shared with every figure of hw (hw.plotting); the studies call them by these names.
pyplot = plotting.pyplot
legend_below = plotting.legend_below


def save(fig, workdir: os.PathLike, filename: str) -> str:
  """Save ``fig`` as ``<workdir>/<filename>`` (PNG) and close it; returns the name."""
  plotting.save(fig, pathlib.Path(workdir) / filename, dpi=110)
  return filename


def percent(value: float | None, digits: int = 1) -> str:
  if value is None or not math.isfinite(value):
    return "—"
  return f"{100 * value:.{digits}f}%"
