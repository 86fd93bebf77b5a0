"""The arrays one experiment trains, selects and tests on, on the host and on the device."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Split:
  images: np.ndarray  # float32 (N, ...): images NHWC or features (N, D)
  labels: np.ndarray  # int32 (N,)


@dataclasses.dataclass(frozen=True)
class Splits:
  """Train / validation / test arrays of one experiment."""
  train: Split
  validation: Split
  test: Split
  num_classes: int
  source: str = "in-memory arrays"
  stand_in: bool = False  # made-up data in place of the real set: targets do not apply
  notes: tuple[str, ...] = ()  # caveats to print beside every number (hw.data.Dataset.notes)

  @functools.cached_property
  def identity(self) -> str:
    """A SHA-256 of every array (dtype, shape, bytes), for fingerprints: results and
    checkpoints made from other data (other files, split or seed) are never reused, while
    the same data moved to another folder still is."""
    digest = hashlib.sha256(str(self.num_classes).encode())
    for split in (self.train, self.validation, self.test):
      for array in (split.images, split.labels):
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).data)
    return f"sha256:{digest.hexdigest()[:16]}"


@dataclasses.dataclass(frozen=True)
class DeviceSplit:
  images: jax.Array  # padded with zeros to a multiple of the evaluation batch
  labels: jax.Array
  size: int          # number of real examples


STANDARDIZE = "standardize"


def normalization(normalize: Any, train: Split) -> tuple[Any, Any] | None:
  """The (mean, std) a config's ``normalize`` stands for: a given pair, or for
  ``"standardize"`` each feature's mean and standard deviation over the training split
  (features (N, D) only)."""
  if normalize != STANDARDIZE:
    return normalize
  if train.images.ndim != 2:
    raise ValueError(f"normalize={STANDARDIZE!r} is for (N, D) features, got training "
                     f"images of shape {train.images.shape}")
  std = train.images.std(axis=0)
  return train.images.mean(axis=0), np.where(std > 0, std, 1.0).astype(np.float32)


def to_device(split: Split, normalize: tuple[Any, Any] | None, pad_to: int) -> DeviceSplit:
  """``(images − mean) / std`` on the host, zero-padded to a multiple of ``pad_to``."""
  images = split.images.astype(np.float32)
  if normalize is not None:
    mean, std = normalize
    images = (images - mean) / std
  size = len(images)
  padded = -(-size // pad_to) * pad_to
  labels = split.labels
  if padded != size:
    images = np.concatenate([images, np.zeros((padded - size,) + images.shape[1:], np.float32)])
    labels = np.concatenate([labels, np.zeros(padded - size, np.int32)])
  return DeviceSplit(jnp.asarray(images), jnp.asarray(labels, jnp.int32), size)


def load_splits(config: Any, *, data_dir: str | os.PathLike | None = None,
                binary_data: str | os.PathLike | None = None) -> Splits:
  """The experiment's splits via :mod:`hw.data` (raises ``hw.data.DataError`` if missing).

  MNIST-like sets: the official test set, and ``validation_fraction`` of the official
  training set held out for model selection. ``"binary"``: ``hw.data.binary_task``
  (500 / 250 / 250, labels in {0, 1}) of ``binary_data``, else of the course's file when
  :func:`hw.data.find_binary_data` finds it under the data folder, else of the
  deterministic stand-in. Both use ``config.data_seed``, so ``config.seed``
  changes the training only.
  """
  from hw import data  # lazily: training on given arrays needs no data module
  if config.dataset == "binary":
    path = binary_data if binary_data is not None else data.find_binary_data(data_dir)
    task = data.binary_task(path, seed=config.data_seed)
    return Splits(_split(task.train), _split(task.validation), _split(task.test), num_classes=2,
                  source=f"binary task: {task.source}", stand_in=task.path is None)
  dataset = data.load_dataset(config.dataset, data_dir=data_dir)
  train, validation = data.split_validation(
      dataset.train, fraction=config.validation_fraction, seed=config.data_seed)
  train = _split(train)
  subset = getattr(config, "train_subset", None)
  if subset is not None and subset < len(train.labels):
    train = Split(train.images[:subset], train.labels[:subset])
    source = f"{dataset.source}; training on the first {subset} training-split examples"
  else:
    source = dataset.source
  return Splits(train, _split(validation), _split(dataset.test),
                num_classes=dataset.num_classes, source=source,
                notes=tuple(dataset.notes))


def _split(array_split: Any) -> Split:
  return Split(np.asarray(array_split.images, np.float32), np.asarray(array_split.labels, np.int32))
