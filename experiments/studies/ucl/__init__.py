"""UCL COMPGI22 (2017-18) coursework 2: four models × three settings, plain SGD on MNIST.

assignment B (docs/assignments.md). Every gradient comes from the hand-written VJPs of :mod:`hw.ops`
(``jax.grad`` of a loss built from ``hw.ops`` calls runs their ``custom_vjp`` rules) and
every update is plain SGD, ``θ ← θ − lr · ∂loss/∂θ``: no momentum, schedule, augmentation
or input scaling beyond the raw [0, 1] pixels; batch 100. The coursework asks for Xavier
(Glorot) uniform weights and zero biases; what the submitted code did is not recorded, so
the initialisation is searched like the reduction (``UclConfig.initialisations``:
Xavier-uniform, Xavier-normal, zeros where they can train, truncated normal σ = 0.1 with
biases 0.1, He), and each model's setup is chosen by the cells it reproduces
(:func:`~experiments.studies.ucl.table.choose_setup`). Every ``eval_every`` (20,000) training samples each run is evaluated on
a fixed 20% of the training set and on the whole test set.

The loss is ``hw.ops.softmax_cross_entropy`` with ``reduction`` "sum" (as the write-up
states the loss) or "mean" (the usual code); with plain SGD the sum multiplies every step
by the batch size, so both are searched.

Modules: :mod:`~experiments.studies.ucl.settings` (the reported table and the configuration),
:mod:`~experiments.studies.ucl.models` (the models and their compiled programs),
:mod:`~experiments.studies.ucl.training` (data, mini-batches, :func:`train_members`),
:mod:`~experiments.studies.ucl.analysis` (reproduction, under/overfitting, explanations),
:mod:`~experiments.studies.ucl.table` (groups of runs, :func:`run_table`, scores),
:mod:`~experiments.studies.ucl.report` (summary and figures) and :mod:`~experiments.studies.ucl.study`
(:func:`run`). The speed notes are in the docstrings of ``models`` and ``table``.
"""
from __future__ import annotations

from experiments.studies.ucl.analysis import (
                                     _at_or_before,
                                     setup_name,
                                     _first_reaching,
                                     _median_curve,
                                     blow_up,
                                     classify_fit,
                                     explain,
                                     reproduces,
)
from experiments.studies.ucl.models import (
                                     CPU_COMPILER_OPTIONS,
                                     _eval_program,
                                     _jit,
                                     _spans,
                                     _stack,
                                     _take,
                                     _train_program,
                                     apply,
                                     INITIALISATIONS,
                                     evaluate,
                                     he_normal,
                                     init_params,
                                     layer_shapes,
                                     loss,
                                     scanned,
                                     sgd_step,
                                     symmetry_problem,
                                     truncated_normal,
                                     xavier_normal,
                                     xavier_uniform,
                                     zeros,
)
from experiments.studies.ucl.report import _figure, _fit_lists, _pct, reference_init, summarize
from experiments.studies.ucl.settings import (
                                     ARCHITECTURES,
                                     INITIALISATION_LABELS,
                                     INITIALISATION_NAMES,
                                     NAME,
                                     REDUCTIONS,
                                     SETTINGS,
                                     STUDENT_MODEL4_SECONDS,
                                     Member,
                                     Setting,
                                     Setup,
                                     UclConfig,
)
from experiments.studies.ucl.study import load_data, run
from experiments.studies.ucl.table import (
                                     _STEP_COST,
                                     _groups,
                                     _score,
                                     better_reduction,
                                     choose_setup,
                                     plan,
                                     run_table,
                                     setup_scores,
)
from experiments.studies.ucl.training import StudyData, _finite_or_none, _Plans, train_members

__all__ = [
    "ARCHITECTURES", "CPU_COMPILER_OPTIONS", "INITIALISATIONS", "INITIALISATION_LABELS",
    "INITIALISATION_NAMES", "Member", "NAME", "REDUCTIONS", "SETTINGS",
    "STUDENT_MODEL4_SECONDS", "Setting", "Setup", "StudyData", "UclConfig", "apply",
    "better_reduction", "blow_up", "choose_setup", "classify_fit", "evaluate", "explain",
    "he_normal", "init_params", "layer_shapes", "load_data", "loss", "plan", "reference_init",
    "reproduces", "run", "run_table", "scanned", "setup_name", "setup_scores", "sgd_step",
    "summarize", "symmetry_problem", "train_members", "truncated_normal", "xavier_normal",
    "xavier_uniform", "zeros",
    # private helpers, still reachable as ``ucl._name`` as before the split
    "_STEP_COST", "_Plans", "_at_or_before", "_eval_program", "_figure", "_finite_or_none",
    "_first_reaching", "_fit_lists", "_groups", "_jit", "_median_curve", "_pct", "_score",
    "_spans", "_stack", "_take", "_train_program",
]
