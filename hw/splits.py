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


def to_device(split: Split, normalize: tuple[float, float] | None, pad_to: int) -> DeviceSplit:
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
  (500 / 250 / 250), labels in {0, 1}. Both use ``config.data_seed``, so ``config.seed``
  changes the training only.
  """
  from hw import data  # lazily: training on given arrays needs no data module
  if config.dataset == "binary":
    train, validation, test = data.binary_task(binary_data, seed=config.data_seed)
    source = f"binary task ({binary_data or 'deterministic stand-in'})"
    return Splits(_split(train), _split(validation), _split(test), num_classes=2, source=source)
  dataset = data.load_dataset(config.dataset, data_dir=data_dir)
  train, validation = data.split_validation(
      dataset.train, fraction=config.validation_fraction, seed=config.data_seed)
  return Splits(_split(train), _split(validation), _split(dataset.test),
                num_classes=dataset.num_classes, source=dataset.source)


def _split(array_split: Any) -> Split:
  return Split(np.asarray(array_split.images, np.float32), np.asarray(array_split.labels, np.int32))
