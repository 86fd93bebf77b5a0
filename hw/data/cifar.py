"""Reader and writer for the CIFAR-10 binary batches (``cifar-10-batches-bin``).

Each file is a sequence of 3073-byte records without a header: one label byte (0-9),
then 1024 red, 1024 green and 1024 blue bytes, each plane 32x32 row-major. Each of the
six standard files holds 10,000 records (30,730,000 bytes); :func:`check_batch_counts`
refuses a set of batches in which one file holds fewer (or any file more).
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
RECORDS_PER_BATCH = 10_000


def _records(count: int) -> str:
  return f"{count:,} records ({count * RECORD_BYTES:,} bytes)"


def parse_cifar_batch(data: bytes, *, name: str,
                      expected_records: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Decode the bytes of one batch file.

  Args:
    data: the file contents.
    name: the file's name or path, for error messages.
    expected_records: the number of records the file must hold (e.g.
      ``RECORDS_PER_BATCH`` for a standard batch); None accepts any positive number.

  Returns:
    (pixels uint8 (N, 32, 32, 3) NHWC, labels uint8 (N,)).

  Raises:
    DataError: a size that is not a positive multiple of the record size, another
      number of records than ``expected_records``, or a label outside 0..9.
  """
  if len(data) == 0 or len(data) % RECORD_BYTES:
    whole, extra = divmod(len(data), RECORD_BYTES)
    raise DataError(
        f"{name}: {len(data):,} bytes, not a positive multiple of the {RECORD_BYTES}-byte "
        f"CIFAR-10 record ({whole:,} whole records and {extra:,} bytes more; truncated or "
        f"not a CIFAR-10 binary batch)")
  count = len(data) // RECORD_BYTES
  if expected_records is not None and count != expected_records:
    raise DataError(f"{name}: {_records(count)}, expected {_records(expected_records)} "
                    f"(truncated or not a standard CIFAR-10 batch)")
  records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)
  labels = records[:, 0]
  if labels.max() >= NUM_CLASSES:
    bad = int(np.argmax(labels >= NUM_CLASSES))
    raise DataError(f"{name}: record {bad}: label {labels[bad]} outside 0..9 (corrupt?)")
  pixels = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return pixels, labels


def read_cifar_batch(path: str | os.PathLike, *,
                     expected_records: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Read one batch file; see :func:`parse_cifar_batch`."""
  path = Path(path)
  try:
    data = path.read_bytes()
  except OSError as error:
    raise DataError(f"cannot read {path}: {error}") from error
  return parse_cifar_batch(data, name=str(path), expected_records=expected_records)


def check_batch_counts(counts: dict[str, int]) -> str:
  """Check the record counts of a set of batch files against the standard 10,000.

  A standard copy has 10,000 records in every file. A file with fewer among files of
  10,000 (cut short on a record boundary, so its size alone looks fine), files of
  different sizes, or a file with more than 10,000 records is an error. A set in which
  every file holds the same smaller number is accepted as a deliberately reduced copy
  (test fixtures, smoke-test folders); the returned text says so.

  Args:
    counts: {file name or path: number of records}.

  Returns:
    "" for a standard copy, else " (reduced copy: N records per file instead of
    10,000)" to append to the Dataset's ``source``.

  Raises:
    DataError: naming the odd files and their sizes.
  """
  too_many = {name: count for name, count in counts.items() if count > RECORDS_PER_BATCH}
  distinct = set(counts.values())
  if too_many or len(distinct) > 1:
    reference = (RECORDS_PER_BATCH if RECORDS_PER_BATCH in distinct or too_many
                 else max(distinct, key=list(counts.values()).count))
    odd = {name: count for name, count in counts.items() if count != reference}
    others = len(counts) - len(odd)
    listed = "; ".join(f"{name}: {_records(count)}" for name, count in odd.items())
    raise DataError(
        f"{listed}; a standard CIFAR-10 batch file holds {_records(RECORDS_PER_BATCH)}"
        + (f", and the other {others} file(s) hold {_records(reference)} each" if others
           else "")
        + " (truncated or mixed-up files?)")
  (count,) = distinct
  if count == RECORDS_PER_BATCH:
    return ""
  return f" (reduced copy: {count:,} records per file instead of {RECORDS_PER_BATCH:,})"


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
