"""The binary classification task of the logistic-regression and SVM exercises (Q2, Q3).

The course's data set, EECS 598 (Winter 2019) HW1 ``data.pkl``, is a pickle
``(features float64 (1000, 20), targets int64 (1000,))`` split 500/250/250 in file
order. :func:`find_binary_data` finds it in a data folder
(``<HW_DATA_DIR>/eecs598-hw1/data.pkl``) and :func:`binary_task` reads it, or any file of
the same form (a pickle or an ``.npz``), through a restricted unpickler that builds numpy
arrays and nothing else (unpickling an arbitrary file runs code).

Without a file, ``binary_task(None)`` builds a deterministic stand-in of the same shape
with a generic recipe in the style of scikit-learn's ``make_classification`` (nothing
here was tuned towards the accuracies the course reports):

* labels: exactly half 0 and half 1, in random order;
* 5 informative features: each class is one unit-variance Gaussian, centred on one of
  2 distinct random vertices of the hypercube {-1, +1}^5 (class_sep = 1, one cluster
  per class);
* 5 redundant features: random linear combinations (weights uniform in [-1, 1]) of the
  informative ones;
* 10 noise features: independent N(0, 1);
* 1 % of the labels flipped at random.

How hard the task is depends on the seed through the Hamming distance h between the
two vertices: the class means are 2 sqrt(h) apart, so the Bayes accuracy is
Phi(sqrt(h)), about 0.99 Phi(sqrt(h)) + 0.01 (1 - Phi(sqrt(h))) after the label flips.
The default seed 0 draws h = 1 (Bayes accuracy about 83 %); seeds 1-5 draw h = 3, 2, 2,
2, 2 (about 95 %, 91 %, ...).
"""
from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import pickle
import pickletools
import zipfile
from pathlib import Path

import numpy as np

from hw.data.containers import ArraySplit, content_sha256, frozen
from hw.data.errors import DataError

NUM_EXAMPLES = 1000
NUM_INFORMATIVE, NUM_REDUNDANT, NUM_NOISE = 5, 5, 10
CLUSTERS_PER_CLASS = 1
CLASS_SEP = 1.0
FLIP_FRACTION = 0.01

DATA_DIR_ENV = "HW_DATA_DIR"
SUBFOLDER = "eecs598-hw1"
FILE_NAMES = ("data.pkl", "data.npz")
# SHA-256 of the course's data.pkl (as in shared/data/eecs598-hw1/SHA256SUMS): a file
# with these bytes is reported as the course's data, any other as a user's file.
KNOWN_FILES = {
    "06c4d243c94f145105cf8e6d5959c4848f7935957401e6f6c6dc50aa39cb7061":
        "EECS 598 HW1 data.pkl",
}
STANDIN_SOURCE = "deterministic stand-in"
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class BinaryTask(tuple):
  """``(train, validation, test)`` of the binary task, plus where it came from.

  Unpacks like the plain 3-tuple ``binary_task`` always returned.

  Attributes:
    train, validation, test: the splits (``images`` = features float32 (n, D),
      ``labels`` int32 in {0, 1}); read-only arrays.
    source: for reports, e.g. ``"EECS 598 HW1 data.pkl (/path/data.pkl)"``,
      ``"binary data file /path/x.npz"`` or ``"deterministic stand-in (seed 0)"``.
    identity: ``"binary:sha256:<16 hex>"``, a hash of the features and labels (in order)
      that the splits hold; equal iff the data are equal, wherever they were read from.
    path: the file read, or None for the stand-in.
  """

  def __new__(cls, splits, *, source: str, path: Path | None):
    task = super().__new__(cls, splits)
    task.source = source
    task.path = path
    digest = content_sha256(*(array for split in splits
                              for array in (split.images, split.labels)))
    task.identity = f"binary:sha256:{digest[:16]}"
    return task

  def __getnewargs_ex__(self):  # pickle and copy: rebuild with the same source and path
    return (tuple(self),), {"source": self.source, "path": self.path}

  train = property(lambda self: self[0])
  validation = property(lambda self: self[1])
  test = property(lambda self: self[2])

  def __repr__(self) -> str:
    sizes = "/".join(str(len(split)) for split in self)
    return f"BinaryTask({sizes}, source={self.source!r}, identity={self.identity!r})"


def make_binary_standin(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """The stand-in data: (features float32 (1000, 20), labels int32 in {0, 1})."""
  rng = np.random.default_rng(seed)
  labels = rng.permutation(np.arange(NUM_EXAMPLES) % 2)
  num_clusters = 2 * CLUSTERS_PER_CLASS
  vertex_ids = rng.choice(2 ** NUM_INFORMATIVE, size=num_clusters, replace=False)
  bits = (vertex_ids[:, None] >> np.arange(NUM_INFORMATIVE)) & 1
  centroids = CLASS_SEP * (2.0 * bits - 1.0)
  cluster = CLUSTERS_PER_CLASS * labels + rng.integers(CLUSTERS_PER_CLASS, size=NUM_EXAMPLES)
  informative = centroids[cluster] + rng.standard_normal((NUM_EXAMPLES, NUM_INFORMATIVE))
  redundant = informative @ rng.uniform(-1.0, 1.0, (NUM_INFORMATIVE, NUM_REDUNDANT))
  noise = rng.standard_normal((NUM_EXAMPLES, NUM_NOISE))
  flipped = rng.random(NUM_EXAMPLES) < FLIP_FRACTION
  labels = np.where(flipped, 1 - labels, labels)
  features = np.concatenate([informative, redundant, noise], axis=1)
  return features.astype(np.float32), labels.astype(np.int32)


def _split_in_order(features: np.ndarray, labels: np.ndarray):
  """First half train, next quarter validation, the rest test (500/250/250 for 1000)."""
  count = len(labels)
  bounds = (0, count // 2, count // 2 + count // 4, count)
  return tuple(
      ArraySplit(images=frozen(features[start:stop].copy()),
                 labels=frozen(labels[start:stop].copy()))
      for start, stop in zip(bounds[:-1], bounds[1:]))


@functools.lru_cache(maxsize=4)
def _standin_task(seed: int) -> BinaryTask:
  return BinaryTask(_split_in_order(*make_binary_standin(seed)),
                    source=f"{STANDIN_SOURCE} (seed {seed})", path=None)


# --- reading files --------------------------------------------------------------------------


class _RefusedGlobal(Exception):
  """A pickle asked for a global outside the allow-list (never imported or called)."""


def _latin1_encode(text, encoding="latin1", errors="strict"):
  """``_codecs.encode`` as Python 3 pickles of bytes (protocols 0-2) use it: latin-1 only."""
  if not isinstance(text, str) or encoding.lower().replace("_", "-") not in (
      "latin1", "latin-1") or errors != "strict":
    raise _RefusedGlobal(f"_codecs.encode with {type(text).__name__}, {encoding!r}, "
                         f"{errors!r} (only latin-1 text is accepted)")
  return text.encode("latin1")


def _numpy_internal(*candidates: str):
  """The first importable ``module:attribute`` (numpy 2 renamed numpy.core to numpy._core)."""
  import importlib  # pylint: disable=import-outside-toplevel
  for candidate in candidates:
    module, name = candidate.split(":")
    try:
      return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
      continue
  raise _RefusedGlobal(f"{candidates[0]} is not available in this numpy")


def _numpy_reconstruct():
  return _numpy_internal("numpy._core.multiarray:_reconstruct",
                         "numpy.core.multiarray:_reconstruct")


# An array in a pickle is made from bytes in the file (one file byte or two, latin-1 text,
# per array byte) or, of dtype object, from one pickled object (at least one byte) per
# 8-byte element; so no honest array needs more memory than this many times the file.
ARRAY_BYTES_PER_FILE_BYTE = 8
_ARRAY_SLACK_BYTES = 4096  # headers: an empty or tiny array in a tiny file


class _Oversized(Exception):
  """A pickle declares an array (or memo) out of proportion to the file's size."""


def _declared_bytes(shape, dtype) -> int:
  """Bytes an array of ``shape`` and ``dtype`` would take (exact integers, no overflow)."""
  if isinstance(shape, int):
    shape = (shape,)
  if not isinstance(shape, (tuple, list)) or not all(
      isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
    raise _Oversized(f"an array shape {shape!r} that is not a tuple of sizes")
  return math.prod(shape) * np.dtype(dtype).itemsize


class _PendingArray:
  """What the unpickler makes for numpy's ``_reconstruct(ndarray, shape, dtype)``: the
  array itself is made only when its declared size is in proportion to the file (checked
  again for the shape, dtype and data its state declares, before numpy allocates)."""

  def __init__(self, shape, dtype, limit: int):
    self.limit = limit
    self._check(shape, dtype)
    self.array = np.ndarray(shape, dtype)

  def _check(self, shape, dtype) -> None:
    size = _declared_bytes(shape, dtype)
    if size > self.limit:
      raise _Oversized(f"an array of shape {tuple(shape) if not isinstance(shape, int) else shape}"
                       f" and dtype {np.dtype(dtype)}, {size:,} bytes (at most {self.limit:,} "
                       f"allowed)")

  def __setstate__(self, state) -> None:
    if not isinstance(state, tuple) or len(state) not in (4, 5):
      raise _Oversized(f"an array state that is not numpy's: {type(state).__name__}")
    shape, dtype, data = state[-4], state[-3], state[-1]
    if not isinstance(dtype, np.dtype):
      raise _Oversized(f"an array state with dtype {dtype!r}")
    self._check(shape, dtype)
    if not dtype.hasobject and isinstance(data, (bytes, bytearray)):
      if len(data) != _declared_bytes(shape, dtype):
        raise _Oversized(f"an array of shape {tuple(shape)} and dtype {dtype} with "
                         f"{len(data):,} bytes of data")
    array = _numpy_reconstruct()(np.ndarray, (0,), b"b")
    array.__setstate__(state)
    self.array = array


def _resolve(content):
  """The unpickled content with every pending array replaced by the array."""
  if isinstance(content, _PendingArray):
    return content.array
  if isinstance(content, (tuple, list)):
    return type(content)(_resolve(item) for item in content)
  return content


def _check_memo(data: bytes, path: Path) -> None:
  """Refuse a pickle whose memo indices exceed its size (the unpickler would allocate a
  table of that many entries first), without running anything. A file that does not parse
  as a pickle is left to the unpickler to report."""
  largest = 0
  try:
    for opcode, argument, _ in pickletools.genops(io.BytesIO(data)):
      if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT"):
        largest = max(largest, int(argument))
  except Exception:  # pylint: disable=broad-except  # unparsable: the unpickler says why
    return
  if largest > len(data):
    raise DataError(f"{path}: refused to unpickle: it declares memo entry {largest:,}, out "
                    f"of proportion to the file's {len(data):,} bytes")


def _frombuffer():
  return _numpy_internal("numpy._core.numeric:_frombuffer", "numpy.core.numeric:_frombuffer")


# (module, name) -> a function returning the object. What numpy arrays pickle to: protocol
# 0-4 `_reconstruct(ndarray, ...)` + `dtype(...)` (+ latin-1 `_codecs.encode` for bytes
# with Python 3's protocols 0-2); protocol 5 `_frombuffer(...)`. Module paths of numpy 1
# (numpy.core) and numpy 2 (numpy._core) both occur in files.
_RECONSTRUCT = "_reconstruct"  # made by _ArraysOnlyUnpickler.find_class, bounded
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): lambda: _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): lambda: _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1_encode,
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
  """Builds tuples, lists and numpy arrays; refuses every other global.

  A pickle names the callables it wants (``module.name``) and the unpickler imports and
  calls them; refusing all but the few that rebuild arrays means a crafted file cannot
  run ``os.system`` or anything else. An array is made only when its declared size is at
  most ``limit`` bytes (:class:`_PendingArray`).
  """

  def __init__(self, file, *, limit: int, **kwargs):
    super().__init__(file, **kwargs)
    self.limit = limit

  def find_class(self, module: str, name: str):
    getter = _ALLOWED_GLOBALS.get((module, name))
    if getter is None:
      raise _RefusedGlobal(f"{module}.{name}")
    found = getter()
    if found is _RECONSTRUCT:
      limit = self.limit

      def reconstruct(subtype, shape, dtype):
        if subtype is not np.ndarray:
          raise _RefusedGlobal(f"_reconstruct of {subtype!r}")
        return _PendingArray(shape, dtype, limit)
      return reconstruct
    return found

  def persistent_load(self, pid):
    raise _RefusedGlobal(f"persistent id {pid!r}")


def _unpickle(data: bytes, path: Path):
  """The pickle's content, arrays only; an array (or memo) declared out of proportion to
  the file's size (more than ``ARRAY_BYTES_PER_FILE_BYTE`` bytes per file byte) is refused
  before anything is allocated for it."""
  _check_memo(data, path)
  limit = ARRAY_BYTES_PER_FILE_BYTE * len(data) + _ARRAY_SLACK_BYTES
  try:
    # latin-1 decodes the byte strings of Python 2 pickles (numpy's array data) unchanged.
    return _resolve(_ArraysOnlyUnpickler(io.BytesIO(data), encoding="latin1",
                                         limit=limit).load())
  except _Oversized as oversized:
    raise DataError(f"{path}: refused to unpickle: it declares {oversized}, out of "
                    f"proportion to the file's {len(data):,} bytes (nothing was "
                    f"allocated for it)") from None
  except _RefusedGlobal as refused:
    raise DataError(
        f"{path}: refused to unpickle: the file asks for {refused}, but only numpy arrays "
        f"in a tuple or list are accepted (unpickling can run code; nothing was run)") from None
  except RecursionError as error:
    raise DataError(f"{path}: not a readable pickle: nested too deeply") from error
  except Exception as error:  # pylint: disable=broad-except  # unpickling raises anything
    raise DataError(f"{path}: not a readable pickle (truncated or corrupt?): "
                    f"{type(error).__name__}: {error}") from error


def _read_npz(data: bytes, path: Path):
  try:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
      keys = sorted(archive.files)
      for pair in (("features", "targets"), ("features", "labels"), ("arr_0", "arr_1")):
        if set(pair) <= set(keys) and len(keys) == 2:
          return archive[pair[0]], archive[pair[1]]
  except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as error:
    raise DataError(f"{path}: not a readable .npz archive of numeric arrays (truncated or "
                    f"corrupt?): {type(error).__name__}: {error}") from error
  raise DataError(f"{path}: expected an .npz with exactly the arrays 'features' and "
                  f"'targets' (or two unnamed arrays), got {keys}")


def _numeric(array, path: Path, what: str) -> np.ndarray:
  try:
    array = np.asarray(array)
    if array.dtype.kind not in "biufO":
      raise TypeError(f"dtype {array.dtype}")
    return array.astype(np.float64)
  except (TypeError, ValueError) as error:
    raise DataError(f"{path}: features and targets must be numeric arrays; the {what} are "
                    f"not: {error}") from error


def _check_pair(content, path: Path) -> tuple[np.ndarray, np.ndarray]:
  if not isinstance(content, (tuple, list)) or len(content) != 2:
    kind = f"{type(content).__name__} of length {len(content)}" if isinstance(
        content, (tuple, list)) else type(content).__name__
    raise DataError(f"{path}: expected a pickled pair (features, targets), got a {kind}")
  features = _numeric(content[0], path, "features")
  targets = _numeric(content[1], path, "targets")
  if targets.ndim == 2 and targets.shape[1] == 1:
    targets = targets[:, 0]
  if features.ndim != 2 or targets.ndim != 1 or len(features) != len(targets):
    raise DataError(f"{path}: expected features (N, D) and targets (N,), got shapes "
                    f"{features.shape} and {targets.shape}")
  if len(targets) < 4 or features.shape[1] < 1:
    raise DataError(f"{path}: need N >= 4 examples and D >= 1 features to split "
                    f"train/validation/test, got features of shape {features.shape}")
  finite = np.isfinite(features)
  if not finite.all():
    row, column = np.argwhere(~finite)[0]
    raise DataError(f"{path}: features contain NaN or infinite values ({(~finite).sum()} "
                    f"of them; the first, {features[row, column]}, at row {row}, column "
                    f"{column})")
  too_large = np.abs(features) > _FLOAT32_MAX
  if too_large.any():
    row, column = np.argwhere(too_large)[0]
    raise DataError(f"{path}: feature {features[row, column]:.6g} at row {row}, column "
                    f"{column} exceeds the float32 range (+-{_FLOAT32_MAX:.6g}) the models "
                    f"compute in; {too_large.sum()} values do")
  if not np.isfinite(targets).all():
    raise DataError(f"{path}: targets contain NaN or infinite values")
  values = set(np.unique(targets).tolist())
  if not (values <= {0.0, 1.0} or values <= {-1.0, 1.0}):
    raise DataError(f"{path}: targets must all be in {{0, 1}} or all in {{-1, +1}}, got "
                    f"values {sorted(values)[:10]}")
  return features.astype(np.float32), (targets > 0).astype(np.int32)


def _read_bytes(path: Path) -> bytes:
  if not path.exists():
    raise DataError(f"binary data file {path} does not exist")
  if path.is_dir():
    raise DataError(f"binary data path {path} is a folder, not a file (pass the file, or "
                    f"use find_binary_data({str(path)!r}))")
  try:
    return path.read_bytes()
  except OSError as error:
    raise DataError(f"cannot read {path}: {error}") from error


def _load(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
  """(features, labels, sha256 of the file's bytes)."""
  data = _read_bytes(path)
  if not data:
    raise DataError(f"{path}: empty file")
  if data.startswith(b"PK"):
    content = _read_npz(data, path)
  elif data.startswith(b"\x93NUMPY"):
    raise DataError(f"{path}: a single .npy array; expected a pickle or an .npz holding "
                    f"features and targets")
  else:
    content = _unpickle(data, path)
  return (*_check_pair(content, path), hashlib.sha256(data).hexdigest())


def load_binary_file(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
  """Read and check a binary data set ``(features, targets)``: a pickle or an ``.npz``.

  The format is told by the content. A pickle (any protocol, Python 2 ones included) is
  read with an unpickler that only builds numpy arrays in a tuple or list: a file that
  names any other global (``os.system``, ``builtins.eval``, ...) is refused with a
  DataError before anything is called, and so is one that declares an array (or a memo
  table) larger than ``ARRAY_BYTES_PER_FILE_BYTE`` (8) bytes per byte of the file, before
  anything is allocated for it. An ``.npz`` is read with ``allow_pickle=False``
  and must hold the arrays ``features`` and ``targets`` (or ``labels``), or exactly two
  unnamed ones (``np.savez(path, features, targets)``).

  Args:
    path: the file; features (N, D) numbers, finite and within the float32 range,
      targets (N,) (or (N, 1)) all in {0, 1} or all in {-1, +1}, N >= 4.

  Returns:
    (features float32 (N, D), labels int32 (N,) in {0, 1}; -1 mapped to 0).

  Raises:
    DataError: a missing, empty, truncated or corrupt file; a refused pickle (other
      globals, sizes out of proportion to the file); wrong
      shapes; non-finite or float32-overflowing features; other labels. The message
      names the file.
  """
  features, labels, _ = _load(Path(path))
  return features, labels


load_binary_pickle = load_binary_file  # The name of earlier releases.


def find_binary_data(data_dir: str | os.PathLike | None = None) -> Path | None:
  """The course's binary data file in a data folder, or None when there is none.

  Looks for ``<root>/eecs598-hw1/data.pkl`` (then ``data.npz``), and for ``<root>/data.pkl``
  when ``root`` is itself the ``eecs598-hw1`` folder. ``root`` is ``data_dir``, else
  ``$HW_DATA_DIR``; a ``root`` that is a file is returned as it is.

  Args:
    data_dir: the data folder (as for :func:`hw.data.load_dataset`), or the file; None:
      ``$HW_DATA_DIR``, and None when that is unset.

  Returns:
    The file (absolute), or None.

  Raises:
    DataError: ``data_dir`` (or ``$HW_DATA_DIR``) names neither a folder nor a file.
  """
  if data_dir is None:
    value = os.environ.get(DATA_DIR_ENV)
    if not value:
      return None
    root, what = Path(value), DATA_DIR_ENV
  else:
    root, what = Path(data_dir), "data_dir"
  root = root.expanduser().resolve()
  if root.is_file():
    return root
  if not root.is_dir():
    raise DataError(f"{what} {root} is not an existing folder")
  candidates = [root / SUBFOLDER / name for name in FILE_NAMES]
  if root.name == SUBFOLDER:
    candidates = [root / name for name in FILE_NAMES] + candidates
  return next((candidate for candidate in candidates if candidate.is_file()), None)


def binary_task(path: str | os.PathLike | None = None, *, seed: int = 0) -> BinaryTask:
  """The binary data set of Q2/Q3 as (train, validation, test).

  The examples are split in file order like the course: the first N//2 for training,
  the next N//4 for validation, the rest for testing (500/250/250 for N = 1000).

  Args:
    path: a pickle or ``.npz`` ``(features, targets)`` (see :func:`load_binary_file`),
      e.g. the one :func:`find_binary_data` finds; None for the deterministic stand-in
      described in the module docstring (no search: pass ``find_binary_data()``).
    seed: seed of the stand-in; unused when ``path`` is given.

  Returns:
    A :class:`BinaryTask`: unpacks as (train, validation, test); ``images`` holds the
    features float32 (n, D), ``labels`` int32 in {0, 1}; the arrays are read-only.
    ``source`` says which data these are ("EECS 598 HW1 data.pkl (<path>)" for the
    course's file, recognised by its SHA-256; "binary data file <path>" for another
    file; "deterministic stand-in (seed <seed>)"), ``identity`` hashes their content.
  """
  if path is None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
      raise ValueError(f"`seed` must be an integer, got {seed!r}")
    return _standin_task(int(seed))
  path = Path(path).expanduser().absolute()
  features, labels, file_sha256 = _load(path)
  known = KNOWN_FILES.get(file_sha256)
  source = f"{known} ({path})" if known else f"binary data file {path}"
  return BinaryTask(_split_in_order(features, labels), source=source, path=path)
