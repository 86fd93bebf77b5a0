"""Every op refuses bad arguments with a ``ValueError`` that names the argument (and, where
listed, what it got): one parametrised test over the bad calls of every op family.

A call marked ``traced`` is run under ``jax.eval_shape``: its error must come while
tracing, before anything runs. The others run eagerly (label values, for one, are checked
only when concrete: tests/test_ops_losses.py).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import pytest

from hw import ops
from helpers import normal


@dataclasses.dataclass(frozen=True)
class BadCall:
  call: Callable[[], object]
  argument: str          # the argument's name as the message quotes it, e.g. "`x`"
  got: str = ""          # what the message must say was given ("" when not checked)
  traced: bool = False   # raised while tracing (checked under jax.eval_shape)


X = normal(0, (4, 3))
W = normal(1, (3, 2))
B = normal(2, (2,))
LOGITS = normal(3, (4, 5))
SCORES = normal(4, (4,))
INT_LABELS = jnp.array([0, 1, 4, 2], jnp.int32)
BIN_LABELS = jnp.array([0, 1, 1, 0], jnp.int32)
KEY = jax.random.key(0)
X4 = jnp.zeros((2, 6, 6, 3), jnp.float32)
W4 = jnp.zeros((3, 3, 3, 4), jnp.float32)

ACTIVATIONS = {
    "relu int": BadCall(lambda: ops.relu(jnp.arange(3)), "`x`"),
    "sigmoid int": BadCall(lambda: ops.sigmoid(jnp.arange(3)), "`x`"),
    "tanh list": BadCall(lambda: ops.tanh([1.0]), "`x`"),
    "softmax rank 0": BadCall(lambda: ops.softmax(jnp.float32(1.0)), "`x`"),
    "softmax beta str": BadCall(lambda: ops.softmax(X, beta="2"), "`beta`"),
    "softmax beta inf": BadCall(lambda: ops.softmax(X, beta=float("inf")), "`beta`"),
    "softmax beta array": BadCall(lambda: ops.softmax(X, beta=jnp.float32(2.0)), "`beta`"),
}

DENSE = {
    "linear x rank 0": BadCall(lambda: ops.linear(jnp.float32(1.0), W), "`x`"),
    "linear x int": BadCall(lambda: ops.linear(jnp.ones((4, 3), jnp.int32), W), "`x`"),
    "linear w rank": BadCall(lambda: ops.linear(X, W[0]), "`w`"),
    "linear w mismatch": BadCall(lambda: ops.linear(X, normal(1, (4, 2))), "`w`"),
    "linear w dtype": BadCall(lambda: ops.linear(X, W.astype(jnp.bfloat16)), "`w`"),
    "linear b shape": BadCall(lambda: ops.linear(X, W, jnp.ones((3,))), "`b`"),
    "linear b rank": BadCall(lambda: ops.linear(X, W, jnp.ones((1, 2))), "`b`"),
    "linear x list": BadCall(lambda: ops.linear([[1.0, 2.0, 3.0]], W), "`x`"),
}

DROPOUT = {
    "dropout rate 1": BadCall(lambda: ops.dropout(X, key=KEY, rate=1.0, train=True), "`rate`"),
    "dropout rate <0": BadCall(lambda: ops.dropout(X, key=KEY, rate=-0.1, train=True),
                               "`rate`"),
    "dropout rate bool": BadCall(lambda: ops.dropout(X, key=KEY, rate=True, train=True),
                                 "`rate`"),
    "dropout train int": BadCall(lambda: ops.dropout(X, key=KEY, rate=0.5, train=1), "`train`"),
    "dropout train array": BadCall(
        lambda: ops.dropout(X, key=KEY, rate=0.5, train=jnp.bool_(True)), "`train`"),
    "dropout key None": BadCall(lambda: ops.dropout(X, key=None, rate=0.5, train=True),
                                "`key`"),
    "dropout key float": BadCall(lambda: ops.dropout(X, key=jnp.ones(2), rate=0.5, train=True),
                                 "`key`"),
    "dropout key batch": BadCall(
        lambda: ops.dropout(X, key=jax.random.split(KEY), rate=0.5, train=True), "`key`"),
    "dropout x int": BadCall(lambda: ops.dropout(jnp.arange(3), key=KEY, rate=0.5, train=True),
                             "`x`"),
}

NORMALIZATION = {
    "batch_norm x rank 1": BadCall(lambda: ops.batch_norm(B, B, B), "`x`"),
    "batch_norm gamma shape": BadCall(lambda: ops.batch_norm(X, B, jnp.ones(3)), "`gamma`"),
    "batch_norm beta shape": BadCall(lambda: ops.batch_norm(X, jnp.ones(3), B), "`beta`"),
    "batch_norm gamma dtype": BadCall(
        lambda: ops.batch_norm(X, jnp.ones(3, jnp.bfloat16), jnp.ones(3)), "`gamma`"),
    "batch_norm eps negative": BadCall(
        lambda: ops.batch_norm(X, jnp.ones(3), jnp.ones(3), eps=-1.0), "`eps`"),
}

LOSSES = {
    "sce labels float": BadCall(lambda: ops.softmax_cross_entropy(LOGITS, INT_LABELS * 1.0),
                                "`labels`"),
    "sce labels shape": BadCall(lambda: ops.softmax_cross_entropy(LOGITS, INT_LABELS[:3]),
                                "`labels`"),
    "sce labels rank": BadCall(lambda: ops.softmax_cross_entropy(LOGITS, INT_LABELS[:, None]),
                               "`labels`"),
    "sce labels too big": BadCall(
        lambda: ops.softmax_cross_entropy(LOGITS, INT_LABELS.at[0].set(5)), "`labels`"),
    "sce labels negative": BadCall(
        lambda: ops.softmax_cross_entropy(LOGITS, INT_LABELS.at[0].set(-1)), "`labels`"),
    "sce logits int": BadCall(lambda: ops.softmax_cross_entropy(INT_LABELS[:, None], INT_LABELS),
                              "`logits`"),
    "sce reduction": BadCall(
        lambda: ops.softmax_cross_entropy(LOGITS, INT_LABELS, reduction="avg"), "`reduction`"),
    "logistic labels shape": BadCall(lambda: ops.logistic_loss(SCORES, BIN_LABELS[:, None]),
                                     "`labels`"),
    "logistic labels 2": BadCall(lambda: ops.logistic_loss(SCORES, BIN_LABELS.at[0].set(2)),
                                 "`labels`"),
    "logistic labels mixed": BadCall(
        lambda: ops.logistic_loss(SCORES, jnp.array([-1, 0, 1, 1])), "`labels`"),
    "logistic labels 0.5": BadCall(lambda: ops.logistic_loss(SCORES, jnp.full(4, 0.5)),
                                   "`labels`"),
    "logistic scores int": BadCall(lambda: ops.logistic_loss(BIN_LABELS, BIN_LABELS),
                                   "`scores`"),
    "logistic reduction": BadCall(
        lambda: ops.logistic_loss(SCORES, BIN_LABELS, reduction=None), "`reduction`"),
    "hinge labels shape": BadCall(lambda: ops.hinge_loss(SCORES, BIN_LABELS[:3]), "`labels`"),
    "hinge labels -2": BadCall(lambda: ops.hinge_loss(SCORES, jnp.array([-2, 1, 1, -1])),
                               "`labels`"),
    "hinge reduction": BadCall(lambda: ops.hinge_loss(SCORES, BIN_LABELS, reduction="max"),
                               "`reduction`"),
    "squared_error shape": BadCall(lambda: ops.squared_error(X, X[:2]), "`target`"),
    "squared_error dtype": BadCall(lambda: ops.squared_error(X, X.astype(jnp.bfloat16)),
                                   "`target`"),
    "squared_error int": BadCall(lambda: ops.squared_error(INT_LABELS, INT_LABELS), "`pred`"),
}

CONVOLUTION = {
    "conv2d x rank": BadCall(lambda: ops.conv2d(X4[0], W4), "`x`", "(6, 6, 3)", traced=True),
    "conv2d w rank": BadCall(lambda: ops.conv2d(X4, W4[0]), "`w`", "(3, 3, 4)", traced=True),
    "conv2d channels": BadCall(lambda: ops.conv2d(X4, jnp.zeros((3, 3, 2, 4))), "`w`",
                               "(3, 3, 2, 4)", traced=True),
    "conv2d bias shape": BadCall(lambda: ops.conv2d(X4, W4, jnp.zeros(3)), "`b`", "(3,)",
                                 traced=True),
    "conv2d kernel too big": BadCall(lambda: ops.conv2d(X4, jnp.zeros((7, 3, 3, 4))), "`w`", "7",
                                     traced=True),
    "conv2d padding name": BadCall(lambda: ops.conv2d(X4, W4, padding="FULL"), "`padding`",
                                   "FULL", traced=True),
    "conv2d padding negative": BadCall(lambda: ops.conv2d(X4, W4, padding=-1), "`padding`",
                                       "-1", traced=True),
    "conv2d stride zero": BadCall(lambda: ops.conv2d(X4, W4, stride=0), "`stride`", "0",
                                  traced=True),
    "conv2d integer x": BadCall(lambda: ops.conv2d(X4.astype(jnp.int32), W4), "`x`", "int32",
                                traced=True),
    "conv2d algorithm name": BadCall(lambda: ops.conv2d(X4, W4, algorithm="fft"), "`algorithm`",
                                     "'fft'", traced=True),
    "conv2d algorithm list": BadCall(lambda: ops.conv2d(X4, W4, algorithm=["lax"]),
                                     "`algorithm`", "['lax']", traced=True),
    "conv1d x rank": BadCall(lambda: ops.conv1d(X4, W4[0]), "`x`", "(2, 6, 6, 3)", traced=True),
    "conv1d channels": BadCall(lambda: ops.conv1d(X4[0], jnp.zeros((2, 4, 1))), "`w`",
                               "(2, 4, 1)", traced=True),
    "conv1d kernel too long": BadCall(lambda: ops.conv1d(X4[0], jnp.zeros((7, 3, 1))), "`w`",
                                      "7", traced=True),
    "conv1d bias shape": BadCall(lambda: ops.conv1d(X4[0], W4[0], jnp.zeros((1, 4))), "`b`",
                                 "(1, 4)", traced=True),
    "conv1d algorithm name": BadCall(lambda: ops.conv1d(X4[0], W4[0], algorithm="Lax"),
                                     "`algorithm`", "'Lax'", traced=True),
}

POOLING = {
    "max_pool x rank": BadCall(lambda: ops.max_pool(X4[0]), "`x`", "(6, 6, 3)", traced=True),
    "max_pool window zero": BadCall(lambda: ops.max_pool(X4, 0), "`window`", "0", traced=True),
    "max_pool stride negative": BadCall(lambda: ops.max_pool(X4, 2, -1), "`stride`", "-1",
                                        traced=True),
    "max_pool window too big": BadCall(lambda: ops.max_pool(X4, 7), "`window`", "7",
                                       traced=True),
    "avg_pool window too big": BadCall(lambda: ops.avg_pool(X4, (2, 8)), "`window`", "(2, 8)",
                                       traced=True),
    "avg_pool integer x": BadCall(lambda: ops.avg_pool(X4.astype(jnp.int32)), "`x`", "int32",
                                  traced=True),
    "adaptive_avg zero": BadCall(lambda: ops.adaptive_avg_pool(X4, 0), "`output_size`", "0",
                                 traced=True),
    "adaptive_max too big": BadCall(lambda: ops.adaptive_max_pool(X4, (3, 7)), "`output_size`",
                                    "(3, 7)", traced=True),
    "adaptive_max x rank": BadCall(lambda: ops.adaptive_max_pool(X4[0], 2), "`x`", "(6, 6, 3)",
                                   traced=True),
    "max_pool algorithm name": BadCall(lambda: ops.max_pool(X4, algorithm="reshape"),
                                       "`algorithm`", "'reshape'", traced=True),
    "adaptive_avg algorithm name": BadCall(lambda: ops.adaptive_avg_pool(X4, 3, algorithm=1),
                                           "`algorithm`", "got 1", traced=True),
    "max_pool blocks overlapping": BadCall(lambda: ops.max_pool(X4, 3, 2, algorithm="blocks"),
                                           "`algorithm`", "window (3, 3) with stride (2, 2)",
                                           traced=True),
    "avg_pool blocks gaps": BadCall(lambda: ops.avg_pool(X4, 2, 3, algorithm="blocks"),
                                    "`algorithm`", "window (2, 2) with stride (3, 3)",
                                    traced=True),
    "adaptive_max blocks not dividing": BadCall(
        lambda: ops.adaptive_max_pool(X4, (4, 3), algorithm="blocks"), "`algorithm`",
        "output_size (4, 3) for input size (6, 6)", traced=True),
}

FAMILIES = {"activations": ACTIVATIONS, "dense": DENSE, "dropout": DROPOUT,
            "normalization": NORMALIZATION, "losses": LOSSES, "convolution": CONVOLUTION,
            "pooling": POOLING}
BAD_CALLS = {f"{family}: {case}": bad for family, calls in FAMILIES.items()
             for case, bad in calls.items()}


def test_no_case_name_is_shadowed():
  assert len(BAD_CALLS) == sum(len(calls) for calls in FAMILIES.values())


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_argument_raises_value_error_naming_it(case):
  bad = BAD_CALLS[case]
  with pytest.raises(ValueError) as error:
    jax.eval_shape(bad.call) if bad.traced else bad.call()
  message = str(error.value)
  assert bad.argument in message and bad.got in message, message
