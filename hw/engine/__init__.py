"""The training engine: a config in, a trained, selected and tested model out.

``train_and_evaluate(config, workdir)`` trains every point of ``config.grid`` with jitted
optax steps (:mod:`hw.engine.steps`, compiled once per shape into :class:`Programs` that are
passed on explicitly) in the epoch loop (:func:`train`), selects on validation, tests once
and writes ``<workdir>/<name>.json``. Losses, optimisers, schedules,
augmentations and figures are looked up by name in registries; adding one is one
``register`` call.

Modules: ``config`` (the experiment config and its fingerprints), ``steps`` (train state and
the compiled programs), ``loop`` (epochs, evaluation, hooks), ``experiment`` (the steps of one
experiment: data, grid, selection, test, writing), ``grid`` (training the grid points),
``results`` (the typed results record), ``checkpoint``, ``metrics_log``, ``experiment_data``
(the arrays of one experiment), ``randomness``, ``runtime`` (this process among several),
``distributed`` (setting several processes up, and their collectives), ``progress``, ``files``,
and the registries ``objectives``, ``update_rules``, ``augmentations``, ``figures``.
"""
from hw.engine.augmentations import AUGMENTATIONS
from hw.engine.config import ExperimentConfig, fingerprint
from hw.engine.experiment import grid_points, train_and_evaluate
from hw.engine.experiment_data import Split, Splits, load_splits
from hw.engine.figures import FIGURES
from hw.engine.loop import (Hook, TrainingData, TrainingDiverged, evaluate, init_state,
                            programs_for, train)
from hw.engine.objectives import LOSSES
from hw.engine.results import Results
from hw.engine.runtime import Runtime
from hw.engine.steps import ProgramCache, Programs, TrainState
from hw.engine.update_rules import OPTIMIZERS, SCHEDULES

__all__ = ["AUGMENTATIONS", "ExperimentConfig", "FIGURES", "Hook", "LOSSES", "OPTIMIZERS",
           "ProgramCache", "Programs", "Results", "Runtime", "SCHEDULES", "Split", "Splits",
           "TrainState", "TrainingData", "TrainingDiverged", "evaluate", "fingerprint",
           "grid_points", "init_state", "load_splits", "programs_for", "train",
           "train_and_evaluate"]
