"""Loading MNIST, Fashion-MNIST and CIFAR-10 from their standard files in a local folder.

A folder is accepted when it holds the files itself, or when one of its known
subfolders does (e.g. ``<dir>/mnist/``, ``<dir>/cifar10/cifar-10-batches-bin/``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hw.data import cifar, idx
from hw.data.containers import Dataset, make_split
from hw.data.errors import DataError

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CIFAR_FILES = cifar.TRAIN_FILES + cifar.TEST_FILES

SUBFOLDERS = {
    "mnist": ("mnist",),
    "fashion_mnist": ("fashion_mnist", "fashion-mnist"),
    "cifar10": ("cifar-10-batches-bin", "cifar10", "cifar10/cifar-10-batches-bin"),
}
DISPLAY_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}

LOSSY_JPEG_NOTE = ("CIFAR-10 pixels decoded from JPEG copies (lossy): accuracies are not "
                   "directly comparable with published CIFAR-10 numbers")


def expected_file_names(name: str) -> tuple[str, ...]:
  """The standard file names of a data set (IDX files may also carry a ``.gz`` suffix)."""
  return CIFAR_FILES if name == "cifar10" else tuple(IDX_FILES.values())


def _find_file(folder: Path, base_name: str) -> Path | None:
  """``folder/base_name``, else ``folder/base_name.gz`` (the raw file reads faster)."""
  for candidate in (folder / base_name, folder / f"{base_name}.gz"):
    if candidate.is_file():
      return candidate
  return None


def _candidate_folders(name: str, root: Path) -> list[Path]:
  folders = [root]
  # A folder named after another data set (".../mnist" when asking for Fashion-MNIST)
  # must not be read as this one: MNIST and Fashion-MNIST share their file names.
  other_names = {sub for other, subs in SUBFOLDERS.items() if other != name for sub in subs}
  if root.name in other_names:
    folders = []
  return folders + [root / sub for sub in SUBFOLDERS[name]]


def find_dataset_folder(name: str, root: Path) -> Path | None:
  """The folder under ``root`` that holds all files of data set ``name``.

  Returns:
    The folder, or None when no candidate folder holds any of the files.

  Raises:
    DataError: a candidate folder holds some of the files but not all.
  """
  for folder in _candidate_folders(name, root):
    if not folder.is_dir():
      continue
    present = [base for base in expected_file_names(name) if _find_file(folder, base)]
    if len(present) == len(expected_file_names(name)):
      return folder
    if present:
      missing = [base for base in expected_file_names(name) if base not in present]
      suffix = " (raw or .gz)" if name != "cifar10" else ""
      raise DataError(
          f"{folder} holds only part of {DISPLAY_NAMES[name]}: missing {', '.join(missing)}"
          f"{suffix}")
  return None


def _lossy_jpeg_readme(folder: Path) -> Path | None:
  """A README.md next to the files, or one level up, that says the pixels went via JPEG."""
  for readme in (folder / "README.md", folder.parent / "README.md"):
    try:
      if readme.is_file() and "jpeg" in readme.read_text(errors="replace").lower():
        return readme
    except OSError:
      continue
  return None


def load_idx_files(name: str, paths: dict[str, Path], *, source: str) -> Dataset:
  """Decode the four IDX files of MNIST or Fashion-MNIST.

  Args:
    name: "mnist" or "fashion_mnist".
    paths: the files, keyed like ``IDX_FILES``; raw or gzip-compressed.
    source: the Dataset's ``source``.
  """
  splits = {}
  for split in ("train", "test"):
    images_path, labels_path = paths[f"{split}_images"], paths[f"{split}_labels"]
    pixels = idx.read_idx(images_path, magic=idx.IMAGES_MAGIC)
    labels = idx.read_idx(labels_path, magic=idx.LABELS_MAGIC)
    if pixels.shape[1:] != (28, 28):
      raise DataError(f"{images_path}: images of size {pixels.shape[1:]}, expected (28, 28)")
    if pixels.shape[0] != labels.shape[0]:
      raise DataError(f"{images_path} holds {pixels.shape[0]} images but {labels_path} holds "
                      f"{labels.shape[0]} labels")
    if labels.size and labels.max() >= 10:
      raise DataError(f"{labels_path}: label {labels.max()} outside 0..9 (corrupt?)")
    splits[split] = make_split(pixels[..., None], labels)
  return Dataset(name=name, train=splits["train"], test=splits["test"], num_classes=10,
                 source=source)


def cifar10_from_batches(batches: dict[str, tuple[np.ndarray, np.ndarray]], *,
                         locations: dict[str, str]) -> tuple[dict, str]:
  """The six CIFAR-10 batches -> ({"train", "test"} splits, text to append to ``source``).

  Args:
    batches: {file name: (pixels, labels)}.
    locations: {file name: the file's path (or archive member) for messages}.

  Raises:
    DataError: the files' record counts do not match (see
      :func:`hw.data.cifar.check_batch_counts`).
  """
  reduced = cifar.check_batch_counts(
      {locations[file]: len(batches[file][1]) for file in CIFAR_FILES})
  splits = {}
  for split, files in (("train", cifar.TRAIN_FILES), ("test", cifar.TEST_FILES)):
    splits[split] = make_split(np.concatenate([batches[file][0] for file in files]),
                               np.concatenate([batches[file][1] for file in files]))
  return splits, reduced


def _load_cifar10(folder: Path) -> Dataset:
  splits, reduced = cifar10_from_batches(
      {file: cifar.read_cifar_batch(folder / file) for file in CIFAR_FILES},
      locations={file: str(folder / file) for file in CIFAR_FILES})
  readme = _lossy_jpeg_readme(folder)
  notes = (f"{LOSSY_JPEG_NOTE} (see {readme})",) if readme else ()
  return Dataset(name="cifar10", train=splits["train"], test=splits["test"], num_classes=10,
                 source=f"local CIFAR-10 binary batches in {folder}{reduced}", notes=notes)


def load_from_folder(name: str, folder: Path) -> Dataset:
  """Decode data set ``name`` from ``folder`` (as returned by :func:`find_dataset_folder`)."""
  if name == "cifar10":
    return _load_cifar10(folder)
  paths = {key: _find_file(folder, base) for key, base in IDX_FILES.items()}
  kinds = sorted({"gzip" if path.suffix == ".gz" else "raw" for path in paths.values()})
  return load_idx_files(name, paths,
                        source=f"local IDX files ({', '.join(kinds)}) in {folder}")
