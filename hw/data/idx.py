"""Reader and writer for IDX files (the MNIST / Fashion-MNIST format), raw or gzip.

Layout (big-endian): two zero bytes, a type byte (0x08 = uint8, the only one used by
MNIST), a byte with the number of dimensions d, then d uint32 sizes, then the
prod(sizes) values in row-major order. Images have magic 0x00000803 = 2051 (d = 3),
labels 0x00000801 = 2049 (d = 1).
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from hw.data.errors import DataError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_UINT8_TYPE_CODE = 0x08


_GZIP_MAGIC = b"\x1f\x8b"


def read_file_bytes(path: Path) -> bytes:
  """The contents of ``path``, gunzipped when they start with the gzip magic bytes.

  IDX files start with two zero bytes, so the content, not the name, tells the formats
  apart (tensorflow-datasets stores downloads under hashed names).
  """
  try:
    data = path.read_bytes()
  except OSError as error:
    raise DataError(f"cannot read {path}: {error}") from error
  if not data.startswith(_GZIP_MAGIC):
    return data
  try:
    return gzip.decompress(data)
  except (OSError, EOFError, zlib.error) as error:
    raise DataError(f"{path} is not a valid gzip file (truncated or corrupt?): {error}") from error


def read_idx(path: str | os.PathLike, *, magic: int) -> np.ndarray:
  """Read a uint8 IDX file and check its header against its size.

  Args:
    path: the file, raw or gzip-compressed.
    magic: the expected magic number (``IMAGES_MAGIC`` or ``LABELS_MAGIC``).

  Returns:
    A read-only uint8 array with the shape from the header.

  Raises:
    DataError: wrong magic number, truncated header, or a body whose size differs from
      the one the header promises.
  """
  path = Path(path)
  data = read_file_bytes(path)
  if len(data) < 4:
    raise DataError(f"{path}: only {len(data)} bytes, too short for an IDX header")
  found = int.from_bytes(data[:4], "big")
  if found != magic:
    raise DataError(
        f"{path}: magic number {found} (0x{found:08x}), expected {magic} (0x{magic:08x}); "
        f"not an IDX {'image' if magic == IMAGES_MAGIC else 'label'} file")
  ndim = data[3]
  header_size = 4 + 4 * ndim
  if len(data) < header_size:
    raise DataError(f"{path}: {len(data)} bytes, too short for its {header_size}-byte header")
  shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  expected = header_size + int(np.prod(shape, dtype=np.int64))
  if len(data) != expected:
    problem = "truncated" if len(data) < expected else "has trailing bytes"
    raise DataError(
        f"{path}: {problem}: {len(data)} bytes (uncompressed), but its header (shape "
        f"{shape}) needs {expected}")
  return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
  """Write a uint8 array as an IDX file (gzip-compressed when ``path`` ends in ``.gz``).

  Used by the tests to build tiny data sets; images are (N, rows, cols), labels (N,).

  Args:
    path: destination file.
    array: uint8 array with 1 to 3 dimensions.

  Returns:
    The path written.
  """
  array = np.asarray(array)
  if array.dtype != np.uint8 or not 1 <= array.ndim <= 3:
    raise ValueError(
        f"`array` must be uint8 with 1 to 3 dimensions, got shape {array.shape} dtype "
        f"{array.dtype}")
  header = bytes([0, 0, _UINT8_TYPE_CODE, array.ndim])
  header += b"".join(int(size).to_bytes(4, "big") for size in array.shape)
  payload = header + np.ascontiguousarray(array).tobytes()
  path = Path(path)
  path.write_bytes(gzip.compress(payload, mtime=0) if path.suffix == ".gz" else payload)
  return path
