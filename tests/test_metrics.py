"""hw.metrics: top-k error against a direct count."""
from __future__ import annotations

import numpy as np
import pytest

from hw.metrics import correct_predictions, top_k_error


def test_top_k_error():
  scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.1, 0.3]])
  labels = np.array([1, 1, 0, 1])
  assert float(top_k_error(scores, labels, 1)) == pytest.approx(0.75)
  assert float(top_k_error(scores, labels, 2)) == pytest.approx(0.5)
  assert float(top_k_error(scores, labels, 3)) == 0.0
  # top-1 error equals the argmax error rate
  rng = np.random.default_rng(1)
  s, y = rng.standard_normal((50, 7)), rng.integers(0, 7, 50)
  assert float(top_k_error(s, y, 1)) == pytest.approx(np.mean(s.argmax(1) != y))
  with pytest.raises(ValueError, match="`k`"):
    top_k_error(scores, labels, 4)
  with pytest.raises(ValueError, match="`labels`"):
    top_k_error(scores, labels[:2], 1)


def _direct_top_k_error(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
  """Count, sample by sample, whether the label is among the k best classes (a class tied
  with the k-th best score counts as among them)."""
  misses = 0
  for row, label in zip(scores, labels):
    kth_best = sorted(row, reverse=True)[k - 1]
    misses += row[label] < kth_best
  return misses / len(labels)


@pytest.mark.parametrize("k", [1, 2, 5, 10])
@pytest.mark.parametrize("ties", [False, True])
def test_top_k_error_equals_a_direct_count(k, ties):
  rng = np.random.default_rng(k + 10 * ties)
  scores = rng.standard_normal((257, 10)).astype(np.float32)
  if ties:  # coarse scores: many ties, also at the k-th place
    scores = np.round(scores)
  labels = rng.integers(0, 10, 257)
  assert float(top_k_error(scores, labels, k)) == pytest.approx(
      _direct_top_k_error(scores, labels, k), abs=1e-7)


def test_batch_of_one():
  assert float(top_k_error(np.array([[0.0, 1.0, 2.0]]), np.array([0]), 2)) == 1.0
  assert float(top_k_error(np.array([[0.0, 1.0, 2.0]]), np.array([1]), 2)) == 0.0


def test_correct_predictions_of_one_score_and_of_class_scores():
  np.testing.assert_array_equal(
      correct_predictions(np.array([0.5, -0.5, 2.0]), np.array([1, 1, -1])), [1.0, 0.0, 0.0])
  np.testing.assert_array_equal(
      correct_predictions(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1])), [1.0, 0.0])
