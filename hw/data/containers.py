"""The arrays a loader hands out: one split, and a data set with train and test splits."""
from __future__ import annotations

import dataclasses
import functools
import hashlib

import numpy as np


def content_sha256(*arrays: np.ndarray) -> str:
  """SHA-256 (hex) of the arrays' dtypes, shapes and bytes (C order), in the given order."""
  digest = hashlib.sha256()
  for array in arrays:
    array = np.ascontiguousarray(array)
    digest.update(f"{array.dtype.str}{array.shape};".encode())
    digest.update(array.reshape(-1).view(np.uint8))
  return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class ArraySplit:
  """Examples and their labels.

  Attributes:
    images: float32, NHWC, scaled to [0, 1]; for the binary task the features (N, D).
    labels: int32, shape (N,).
  """
  images: np.ndarray
  labels: np.ndarray

  def __post_init__(self):
    if np.ndim(self.labels) != 1:
      raise ValueError(f"`labels` must have shape (N,), got shape {np.shape(self.labels)}")
    if np.ndim(self.images) < 1 or np.shape(self.images)[0] != np.shape(self.labels)[0]:
      raise ValueError(
          f"`images` and `labels` must have the same leading size N, got images shape "
          f"{np.shape(self.images)} and labels shape {np.shape(self.labels)}")

  def __len__(self) -> int:
    return int(self.labels.shape[0])

  @functools.cached_property
  def content_sha256(self) -> str:
    """SHA-256 of ``images`` and ``labels`` (dtype, shape, bytes); computed once, then cached.

    Costs about a second per GB of images (0.2 s for MNIST, 0.6 s for CIFAR-10).
    """
    return content_sha256(self.images, self.labels)


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A classification data set with a train and a test split.

  Attributes:
    name: "mnist", "fashion_mnist" or "cifar10".
    train: the training split.
    test: the test split.
    num_classes: number of classes (labels are 0 .. num_classes-1).
    source: where the data came from, for reports, e.g. "local IDX files in /path".
    notes: caveats a report should repeat, e.g. that the pixels are lossy JPEG decodes
      (see :func:`hw.data.cifar_lossy_note`). Empty when there is nothing to say.

  ``identity`` (a property) names the content, for fingerprints of trained models.
  """
  name: str
  train: ArraySplit
  test: ArraySplit
  num_classes: int
  source: str
  notes: tuple[str, ...] = ()

  @functools.cached_property
  def identity(self) -> str:
    """``"<name>:sha256:<16 hex>"``: a hash of the name, the class count and the arrays.

    Depends on the content only (every pixel and label, in order), not on where it was
    read from: a copy of the folder elsewhere, or gzip instead of raw IDX files, gives
    the same identity; a different copy (e.g. CIFAR-10 rebuilt from JPEGs instead of the
    original pixels, or a tfds copy in its shuffled order) a different one. Computed on
    first use (see :attr:`ArraySplit.content_sha256`) and cached with the Dataset.
    """
    digest = hashlib.sha256(
        f"{self.name}|{self.num_classes}|{self.train.content_sha256}|"
        f"{self.test.content_sha256}".encode()).hexdigest()
    return f"{self.name}:sha256:{digest[:16]}"


def to_unit_float(pixels: np.ndarray) -> np.ndarray:
  """uint8 pixels -> float32 pixels / 255 in [0, 1], in a single pass."""
  return np.divide(pixels, np.float32(255.0), dtype=np.float32, order="C")


def frozen(array: np.ndarray) -> np.ndarray:
  """Mark an array read-only: loaders cache their arrays and share them between callers."""
  array.flags.writeable = False
  return array


def make_split(pixels: np.ndarray, labels: np.ndarray) -> ArraySplit:
  """uint8 NHWC pixels and integer labels -> a read-only float32/int32 ArraySplit."""
  return ArraySplit(images=frozen(to_unit_float(pixels)),
                    labels=frozen(np.asarray(labels, dtype=np.int32)))
