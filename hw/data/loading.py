"""``load_dataset``: find MNIST / Fashion-MNIST / CIFAR-10 locally or through tfds.

Where the data comes from, in order:
1. ``data_dir`` when given (never falls back to anything else);
2. the folder in the environment variable ``HW_DATA_DIR``, when it holds the data set;
3. tensorflow-datasets (see :mod:`hw.data.tfds_source`), which fails within seconds
   with instructions when it would need the network and the network is unreachable.
Decoded data sets are cached in memory, so a second call costs nothing; the cached
arrays are read-only because every caller shares them.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

from hw.data import local, tfds_source
from hw.data.containers import Dataset
from hw.data.errors import DataError

DATASET_NAMES = ("mnist", "fashion_mnist", "cifar10")
DATA_DIR_ENV = "HW_DATA_DIR"
_CACHE_SIZE = 6


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _load_local(name: str, folder: str) -> Dataset:
  return local.load_from_folder(name, Path(folder))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _load_tfds(name: str, tfds_dir: str, searched: str) -> Dataset:
  del tfds_dir  # Only part of the cache key: load_with_tfds reads it again.
  return tfds_source.load_with_tfds(name, searched=searched)


def clear_cache() -> None:
  """Forget the decoded data sets (e.g. after the files changed on disk)."""
  _load_local.cache_clear()
  _load_tfds.cache_clear()


def _folder_or_none(name: str, root: Path, what: str) -> Path | None:
  if not root.is_dir():
    raise DataError(f"{what} {root} is not an existing folder")
  return local.find_dataset_folder(name, root)


def _nothing_found(name: str, root: Path, what: str) -> DataError:
  subfolders = ", ".join(f"{sub}/" for sub in local.SUBFOLDERS[name])
  files = ", ".join(local.expected_file_names(name))
  gz = " (each raw or .gz)" if name != "cifar10" else ""
  return DataError(f"no {local.DISPLAY_NAMES[name]} files in {what} {root} or its subfolders "
                   f"{subfolders}: expected {files}{gz}")


def load_dataset(name: str, *, data_dir: str | os.PathLike | None = None) -> Dataset:
  """Load a data set as float32 NHWC images in [0, 1] and int32 labels.

  Args:
    name: "mnist", "fashion_mnist" or "cifar10".
    data_dir: a folder holding the standard files (the four IDX files, raw or .gz; the
      six CIFAR-10 binary batches), or its parent with a subfolder ``mnist/``,
      ``fashion_mnist/`` (or ``fashion-mnist/``), ``cifar10/``, ``cifar-10-batches-bin/``
      or ``cifar10/cifar-10-batches-bin/``. None: ``$HW_DATA_DIR``, then tfds.

  Returns:
    The Dataset; ``source`` says where it came from, ``notes`` lists caveats.

  Raises:
    ValueError: unknown ``name``.
    DataError: missing, partial, truncated or corrupt files; offline without data.
  """
  if name not in DATASET_NAMES:
    raise ValueError(f"`name` must be one of {', '.join(DATASET_NAMES)}, got {name!r}")
  if data_dir is not None:
    root = Path(data_dir).expanduser().resolve()
    folder = _folder_or_none(name, root, "data_dir")
    if folder is None:
      raise _nothing_found(name, root, "data_dir")
    return _load_local(name, str(folder))
  searched = ""
  env_dir = os.environ.get(DATA_DIR_ENV)
  if env_dir:
    root = Path(env_dir).expanduser().resolve()
    folder = _folder_or_none(name, root, DATA_DIR_ENV)
    if folder is not None:
      return _load_local(name, str(folder))
    searched = f" in {DATA_DIR_ENV}={root} (nor its subfolders)"
  return _load_tfds(name, str(tfds_source.tfds_data_dir()), searched)


def cifar_lossy_note(dataset: Dataset) -> str | None:
  """The note to print with CIFAR-10 results when its pixels are lossy JPEG decodes.

  Detected from a README.md next to the batch files (or one level up) that mentions
  JPEG; None for other data sets and for copies without such a README.
  """
  for note in dataset.notes:
    if note.startswith(local.LOSSY_JPEG_NOTE):
      return note
  return None
