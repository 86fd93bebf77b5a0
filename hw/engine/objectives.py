"""The training losses by name: each a hand-written :mod:`hw.ops` loss and the number of
scores per example it needs."""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax

from hw import ops
from hw.named import Registry


@dataclasses.dataclass(frozen=True)
class Loss:
  """A loss of scores (N, K) or (N,) and integer labels.

  Attributes:
    fn: ``fn(scores, labels, *, reduction)`` with reduction "mean", "sum" or "none".
    binary: one score per example (labels {0, 1} or {−1, +1}); else one per class.
  """
  fn: Callable[..., jax.Array]
  binary: bool = False

  def num_outputs(self, num_classes: int) -> int:
    """How many scores per example the model must produce."""
    return 1 if self.binary else num_classes


LOSSES: Registry[Loss] = Registry("loss")
LOSSES.register("softmax_cross_entropy", Loss(ops.softmax_cross_entropy),
                "−log softmax(z)_y over the classes")
LOSSES.register("logistic", Loss(ops.logistic_loss, binary=True),
                "log(1 + e^{−ts}), one score per example")
LOSSES.register("hinge", Loss(ops.hinge_loss, binary=True),
                "max(0, 1 − ts) (binary SVM), one score per example")


def compute_loss(name: str, scores: jax.Array, labels: jax.Array,
                 reduction: str = "mean") -> jax.Array:
  """The registered loss ``name`` of ``scores`` against ``labels``."""
  return LOSSES[name].fn(scores, labels, reduction=reduction)
