"""EECS 498/598 HW1 Q7 (assignment A7): three short answers, each shown by an experiment on MNIST.

1. **Deep sigmoid networks train badly.** The same 8-hidden-layer MLP with sigmoid and with
   ReLU units, trained alike (SGD with momentum, LeCun-normal init): loss curves, the
   gradient norm of every layer at initialisation and after every epoch, and the state of
   the sigmoid units (mean output, mean derivative σ' = σ(1 − σ), share saturated).
2. **Dropout at inference.** One network trained with inverted dropout, evaluated with the
   inverted rule (no mask, no scaling), with train-time masks left on, with the average of
   many masked passes, and as plain dropout without the test-time rescaling.
3. **A loss that drops fast and then diverges.** A learning-rate sweep of SGD with
   momentum whose largest rates diverge, then the fixes for the largest rate: a lower rate,
   a larger batch, a decaying schedule, gradient clipping.

Parts 1 and 2 train with the engine (:func:`hw.engine.train`, hooks for the per-epoch
measurements); part 3 needs per-step losses and gradient clipping, which the engine's
per-epoch records and optimiser registry do not offer, so it runs a small loop of its own
(optax SGD, gradients from hw.ops' hand-written VJPs as everywhere). Every number in the
report text comes from the run.

The study is split by job: :mod:`~experiments.studies.q7.shared` (names, settings, input scaling),
:mod:`~experiments.studies.q7.depth` (part 1), :mod:`~experiments.studies.q7.dropout` (part 2),
:mod:`~experiments.studies.q7.rates` (part 3), :mod:`~experiments.studies.q7.report`,
:mod:`~experiments.studies.q7.figures` and :mod:`~experiments.studies.q7.study` (:func:`run`); this package
re-exports their public names.
"""
from __future__ import annotations

from experiments.studies.q7.depth import DEEP_RUNS, Probe, deep_networks, layer_gain, probe
from experiments.studies.q7.dropout import dropout_network, evaluate_rules, forward
from experiments.studies.q7.rates import (
                                  LrRun,
                                  dead_units,
                                  is_unstable,
                                  learning_rates,
                                  schedule,
                                  sgd_run,
)
from experiments.studies.q7.report import headline, summary
from experiments.studies.q7.shared import (
                                  ACTIVATIONS,
                                  MNIST_NORMALIZE,
                                  NAME,
                                  REPORTED,
                                  SATURATED,
                                  SETTINGS,
                                  TITLE,
                                  Settings,
                                  layer_names,
)
from experiments.studies.q7.study import run

__all__ = ["ACTIVATIONS", "DEEP_RUNS", "LrRun", "MNIST_NORMALIZE", "NAME", "Probe", "REPORTED",
           "SATURATED", "SETTINGS", "Settings", "TITLE", "dead_units", "deep_networks",
           "dropout_network", "evaluate_rules", "forward", "headline", "is_unstable",
           "layer_gain", "layer_names", "learning_rates", "probe", "run", "schedule",
           "sgd_run", "summary"]
