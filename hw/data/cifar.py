"""Reader and writer for the CIFAR-10 binary batches (``cifar-10-batches-bin``).

Each file is a sequence of 3073-byte records without a header: one label byte (0-9),
then 1024 red, 1024 green and 1024 blue bytes, each plane 32x32 row-major.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hw.data.errors import DataError

RECORD_BYTES = 1 + 3 * 32 * 32
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
NUM_CLASSES = 10


def parse_cifar_batch(data: bytes, *, name: str) -> tuple[np.ndarray, np.ndarray]:
  """Decode the bytes of one batch file.

  Args:
    data: the file contents.
    name: the file's name or path, for error messages.

  Returns:
    (pixels uint8 (N, 32, 32, 3) NHWC, labels uint8 (N,)).
  """
  if len(data) == 0 or len(data) % RECORD_BYTES:
    raise DataError(
        f"{name}: {len(data)} bytes, not a positive multiple of the {RECORD_BYTES}-byte "
        f"CIFAR-10 record (truncated or not a CIFAR-10 binary batch)")
  records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)
  labels = records[:, 0]
  if labels.max() >= NUM_CLASSES:
    bad = int(np.argmax(labels >= NUM_CLASSES))
    raise DataError(f"{name}: record {bad}: label {labels[bad]} outside 0..9 (corrupt?)")
  pixels = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return pixels, labels


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
  """Read one batch file; see :func:`parse_cifar_batch`."""
  path = Path(path)
  try:
    data = path.read_bytes()
  except OSError as error:
    raise DataError(f"cannot read {path}: {error}") from error
  return parse_cifar_batch(data, name=str(path))


def write_cifar_batch(path: str | os.PathLike, pixels: np.ndarray, labels: np.ndarray) -> Path:
  """Write uint8 NHWC (N, 32, 32, 3) pixels and labels as a CIFAR-10 binary batch (tests)."""
  pixels, labels = np.asarray(pixels), np.asarray(labels)
  if pixels.dtype != np.uint8 or pixels.shape[1:] != (32, 32, 3):
    raise ValueError(f"`pixels` must be uint8 (N, 32, 32, 3), got shape {pixels.shape} "
                     f"dtype {pixels.dtype}")
  if labels.shape != pixels.shape[:1]:
    raise ValueError(f"`labels` must have shape ({pixels.shape[0]},), got {labels.shape}")
  planes = pixels.transpose(0, 3, 1, 2).reshape(len(pixels), -1)
  records = np.concatenate([labels.astype(np.uint8)[:, None], planes], axis=1)
  path = Path(path)
  path.write_bytes(records.tobytes())
  return path
