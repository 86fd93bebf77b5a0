"""Study: SGD, momentum, Nesterov, RMSProp and Adam compared (assignment D, optimisation).

(a) Two 2-D problems with hand-written gradients, every optimiser with the learning rate
    (from a log grid) that gets below the tolerance, and stays there, in the fewest
    steps (or else ends lowest): an ill-conditioned quadratic ``f(x) = ½ xᵀHx``,
    ``H = R diag(1, 25) Rᵀ`` rotated by 30° (so that no coordinate-wise method gets the
    axes for free), and Rosenbrock's
    ``f(x, y) = (1 − x)² + 100 (y − x²)²``. Trajectories are drawn over the contours.
(b) The Q4.4 MLP 784–H–ReLU–10 on MNIST, built from ``hw.ops.linear``/``relu``/
    ``softmax_cross_entropy`` (its gradient comes from their hand-written VJPs), same
    number of steps and mini-batches for every optimiser; each optimiser's learning
    rate is chosen from a small grid on a validation split (10% of the training set,
    seed 0) and its selected model is evaluated once on the test set.

Modules: :mod:`~experiments.studies.optimizers.settings` (the optimisers, colours and MLP settings),
:mod:`~experiments.studies.optimizers.toy` (a), :mod:`~experiments.studies.optimizers.mlp` (b) and
:mod:`~experiments.studies.optimizers.study` (:func:`run_optimizers`).
"""
from __future__ import annotations

from experiments.studies.optimizers.mlp import (
                                       _batch_schedule,
                                       _evaluate,
                                       _plot_mlp,
                                       _splits,
                                       _standardised,
                                       _train_chunk,
                                       init_mlp,
                                       mlp_logits,
                                       mlp_loss,
                                       run_mlp,
)
from experiments.studies.optimizers.settings import COLOURS, FULL, NAME, NAMES, QUICK, MlpSettings
from experiments.studies.optimizers.study import run_optimizers
from experiments.studies.optimizers.toy import (
                                       TOY_LEARNING_RATES,
                                       ToyProblem,
                                       _plot_toy,
                                       _rosenbrock,
                                       _rosenbrock_gradient,
                                       _rotation,
                                       _selection_key,
                                       _steps_to_tolerance,
                                       _toy_trajectories,
                                       _values,
                                       quadratic_problem,
                                       rosenbrock_problem,
                                       run_toy_problem,
)

__all__ = [
    "COLOURS", "FULL", "MlpSettings", "NAME", "NAMES", "QUICK", "TOY_LEARNING_RATES",
    "ToyProblem", "init_mlp", "mlp_logits", "mlp_loss", "quadratic_problem",
    "rosenbrock_problem", "run_mlp", "run_optimizers", "run_toy_problem",
    # private helpers, still reachable as ``optimizers._name`` as before the split
    "_batch_schedule", "_evaluate", "_plot_mlp", "_plot_toy", "_rosenbrock",
    "_rosenbrock_gradient", "_rotation", "_selection_key", "_splits", "_standardised",
    "_steps_to_tolerance", "_toy_trajectories", "_train_chunk", "_values",
]
