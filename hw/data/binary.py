"""The binary classification task of the logistic-regression and SVM exercises (Q2, Q3).

The course's pickle ``(features, targets)`` (1000 x 20, split 500/250/250 in file
order) is not public. ``binary_task()`` builds a deterministic stand-in of the same
shape with a generic recipe in the style of scikit-learn's ``make_classification``
(nothing here was tuned towards the accuracies the course reports):

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

``binary_task(path)`` loads a user's pickle of the course's form instead.
"""
from __future__ import annotations

import functools
import os
import pickle
from pathlib import Path

import numpy as np

from hw.data.containers import ArraySplit, frozen
from hw.data.errors import DataError

NUM_EXAMPLES = 1000
NUM_INFORMATIVE, NUM_REDUNDANT, NUM_NOISE = 5, 5, 10
CLUSTERS_PER_CLASS = 1
CLASS_SEP = 1.0
FLIP_FRACTION = 0.01


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
def _standin_splits(seed: int):
  return _split_in_order(*make_binary_standin(seed))


def _unpickle(path: Path):
  try:
    with path.open("rb") as file:
      try:
        return pickle.load(file)
      except UnicodeDecodeError:  # A Python 2 pickle of numpy arrays.
        file.seek(0)
        return pickle.load(file, encoding="latin1")
  except OSError as error:
    raise DataError(f"cannot read {path}: {error}") from error
  except Exception as error:  # pylint: disable=broad-except  # unpickling raises anything
    raise DataError(f"{path} is not a readable pickle: {type(error).__name__}: {error}") from error


def load_binary_pickle(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
  """Read and check a pickle ``(features, targets)``.

  Only unpickle files you trust: a pickle can run arbitrary code when loaded.

  Args:
    path: the pickle; features (N, D) numbers, targets (N,) (or (N, 1)) in {0, 1} or
      {-1, +1}, N >= 4.

  Returns:
    (features float32 (N, D), labels int32 (N,) in {0, 1}; -1 mapped to 0).
  """
  path = Path(path)
  content = _unpickle(path)
  if not isinstance(content, (tuple, list)) or len(content) != 2:
    kind = f"{type(content).__name__} of length {len(content)}" if isinstance(
        content, (tuple, list)) else type(content).__name__
    raise DataError(f"{path}: expected a pickled pair (features, targets), got a {kind}")
  try:
    features = np.asarray(content[0], dtype=np.float64)
    targets = np.asarray(content[1], dtype=np.float64)
  except (TypeError, ValueError) as error:
    raise DataError(f"{path}: features and targets must be numeric arrays: {error}") from error
  if targets.ndim == 2 and targets.shape[1] == 1:
    targets = targets[:, 0]
  if features.ndim != 2 or targets.ndim != 1 or len(features) != len(targets):
    raise DataError(f"{path}: expected features (N, D) and targets (N,), got shapes "
                    f"{features.shape} and {targets.shape}")
  if len(targets) < 4 or features.shape[1] < 1:
    raise DataError(f"{path}: need N >= 4 examples and D >= 1 features to split "
                    f"train/validation/test, got features of shape {features.shape}")
  if not np.all(np.isfinite(features)):
    raise DataError(f"{path}: features contain NaN or infinite values")
  values = set(np.unique(targets).tolist())
  if not (values <= {0.0, 1.0} or values <= {-1.0, 1.0}):
    raise DataError(f"{path}: targets must all be in {{0, 1}} or all in {{-1, +1}}, got "
                    f"values {sorted(values)[:10]}")
  return features.astype(np.float32), (targets > 0).astype(np.int32)


def binary_task(path: str | os.PathLike | None = None, *,
                seed: int = 0) -> tuple[ArraySplit, ArraySplit, ArraySplit]:
  """The binary data set of Q2/Q3 as (train, validation, test).

  The examples are split in file order like the course: the first N//2 for training,
  the next N//4 for validation, the rest for testing (500/250/250 for N = 1000).

  Args:
    path: a pickle ``(features, targets)`` (see :func:`load_binary_pickle`); None for
      the deterministic stand-in described in the module docstring.
    seed: seed of the stand-in; unused when ``path`` is given.

  Returns:
    (train, validation, test); ``images`` holds the features float32 (n, D), ``labels``
    int32 in {0, 1}. The arrays are read-only.
  """
  if path is None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
      raise ValueError(f"`seed` must be an integer, got {seed!r}")
    return _standin_splits(int(seed))
  return _split_in_order(*load_binary_pickle(path))
