"""The HK6 equivariance study's runner: the models, trained with the engine
(:func:`hw.engine.train`), the shift curve (28×28), the published protocol (48×48, random
placement), why the MLP fails there, and the direct equivariance check."""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import jax.numpy as jnp
import numpy as np

from experiments.studies import _runs
from experiments.studies._runs import percent
from experiments.studies.equivariance.canvas import centre_offset, place, random_offsets, shift
from experiments.studies.equivariance.check import equivariance_check
from experiments.studies.equivariance.figures import (
  _plot_canvas,
  _plot_feature_maps,
  _plot_shift_curves,
)
from experiments.studies.equivariance.report import summary
from experiments.studies.equivariance.shared import (
  CHECK_SHIFTS,
  DIRECTIONS,
  NAME,
  SCALE,
  SETTINGS,
  TARGET,
  Settings,
)
from hw import metrics
from hw.engine import loop
from hw.engine.config import ExperimentConfig
from hw.engine.experiment_data import Split


def _config(name: str, model: str, model_kwargs: dict[str, Any], epochs: int,
            settings: Settings, profile: str, *, conv: bool) -> ExperimentConfig:
  return ExperimentConfig(
      name=f"{NAME}_{name}", title=f"HK6 {name}", dataset="mnist", model=model,
      model_kwargs=model_kwargs, optimizer="adam", learning_rate=settings.learning_rate,
      lr_schedule="cosine", batch_size=100, epochs=epochs, weight_scale=None,
      normalize=SCALE, jit_per_batch=True if conv else None, seed=settings.seed,
      profile=profile)


def matching_mlp_width(parameters: int, inputs: int, classes: int = _runs.NUM_CLASSES) -> int:
  """Hidden width H of an inputs–H–classes MLP whose parameter count, (inputs + 1 + classes)·H
  + classes, is closest to ``parameters``."""
  return max(1, round((parameters - classes) / (inputs + 1 + classes)))


def run(workdir: str | os.PathLike, *, profile: str, data_dir: str | os.PathLike | None,
        settings: Settings | None = None, dataset: Any = None) -> dict[str, Any]:
  """Train the four models, measure, plot; returns the results dict (see the package)."""
  settings = settings or SETTINGS[profile]
  cpu_began = time.process_time()
  mnist = _runs.load_mnist(data_dir, dataset)
  train = _runs.head(mnist.train, settings.train_size)
  validation = _runs.head(mnist.validation, settings.validation_size)
  test = _runs.head(mnist.test, settings.test_size)

  # 1. 28×28: a CNN and an MLP of the same size, tested on shifted digits
  cnn_config = _config("cnn", "cnn", {"filters": settings.cnn_filters,
                                      "filter_size": settings.cnn_filter_size,
                                      "hidden_size": settings.cnn_hidden},
                       settings.epochs, settings, profile, conv=True)
  cnn = _runs.train_model(cnn_config, train, validation)
  width = matching_mlp_width(cnn.parameter_count(), int(np.prod(train.images.shape[1:])))
  mlp_config = _config("mlp", "mlp", {"hidden_sizes": (width,)}, settings.epochs, settings,
                       profile, conv=False)
  mlp = _runs.train_model(mlp_config, train, validation)
  shifts = list(range(settings.max_shift + 1))
  by_direction = {name: {d: [] for d in DIRECTIONS} for name in ("cnn", "mlp")}
  for k in shifts:
    for direction, (uy, ux) in DIRECTIONS.items():
      moved = shift(test.images, uy * k, ux * k)
      for name, model in (("cnn", cnn), ("mlp", mlp)):
        by_direction[name][direction].append(model.accuracy(moved, test.labels))
  curve = {name: [float(np.mean([by_direction[name][d][k] for d in DIRECTIONS])) for k in shifts]
           for name in ("cnn", "mlp")}

  # 2. 48×48: trained in the centre, tested at random positions
  size, centre = settings.canvas, centre_offset(settings.canvas)
  canvas_train = _runs.head(train, settings.canvas_train_size)
  canvas_train = Split(place(canvas_train.images, np.full((len(canvas_train.labels), 2), centre),
                             size), canvas_train.labels)
  canvas_validation = Split(place(validation.images, np.full((len(validation.labels), 2), centre),
                                  size), validation.labels)
  gp_config = _config("cnn_48", "cnn_global_pool",
                      {"conv_blocks": settings.canvas_blocks, "global_pool": "max"},
                      settings.canvas_epochs, settings, profile, conv=True)
  gp_cnn = _runs.train_model(gp_config, canvas_train, canvas_validation)
  wide_config = _config("mlp_48", "mlp", {"hidden_sizes": (settings.canvas_mlp_hidden,)},
                        settings.canvas_epochs, settings, profile, conv=False)
  wide_programs = _runs.programs_for(wide_config, len(canvas_train.labels))
  wide_initial = loop.init_state(wide_config, wide_programs,
                                 jnp.asarray(canvas_train.images[:wide_config.batch_size]))
  initial_kernel = np.asarray(wide_initial.params["Dense_0"]["kernel"])
  wide_mlp = _runs.train_model(wide_config, canvas_train, canvas_validation, state=wide_initial,
                              programs=wide_programs)
  offsets = random_offsets(len(test.labels), size, seed=settings.seed + 1)
  centred_test = place(test.images, np.full((len(test.labels), 2), centre), size)
  random_test = place(test.images, offsets, size)
  random_scores = {name: model.predict(random_test)
                   for name, model in (("cnn", gp_cnn), ("mlp", wide_mlp))}
  correct = {name: np.argmax(scores, axis=-1) == test.labels
             for name, scores in random_scores.items()}
  random_accuracy = {name: float(np.mean(c)) for name, c in correct.items()}
  centred_accuracy = {name: model.accuracy(centred_test, test.labels)
                      for name, model in (("cnn", gp_cnn), ("mlp", wide_mlp))}
  displacement = np.max(np.abs(offsets - centre), axis=1)  # Chebyshev distance from the centre
  by_displacement = {
      "displacement": list(range(int(displacement.max()) + 1)),
      "count": [int(np.sum(displacement == d)) for d in range(int(displacement.max()) + 1)],
      **{name: [float(np.mean(c[displacement == d])) if np.any(displacement == d) else None
                for d in range(int(displacement.max()) + 1)] for name, c in correct.items()}}
  stride = 2 ** (len(settings.canvas_blocks) - 1)
  in_phase = np.all((offsets - centre) % stride == 0, axis=1)
  phase = {"stride": stride, "in_phase_count": int(in_phase.sum()),
           "cnn_in_phase": float(np.mean(correct["cnn"][in_phase])) if in_phase.any() else None,
           "cnn_out_of_phase": float(np.mean(correct["cnn"][~in_phase]))
           if (~in_phase).any() else None}
  # why the MLP fails: weights of pixels that are blank in every training canvas
  never_inked = np.max(canvas_train.images, axis=0)[..., 0] == 0
  final_kernel = np.asarray(wide_mlp.params["Dense_0"]["kernel"])
  blank_rows = never_inked.reshape(-1)
  ink = random_test[..., 0] > 0
  mlp_blind = {
      "never_inked_pixels": int(blank_rows.sum()), "pixels": int(blank_rows.size),
      "max_weight_change_never_inked": float(np.max(np.abs(
          final_kernel[blank_rows] - initial_kernel[blank_rows]))) if blank_rows.any() else None,
      "mean_weight_change_inked": float(np.mean(np.abs(
          final_kernel[~blank_rows] - initial_kernel[~blank_rows]))),
      "random_test_ink_on_never_inked": float(np.sum(ink & never_inked) / max(np.sum(ink), 1))}

  # 3. equivariance of the feature maps
  check_digits = test.images[:settings.check_images]
  check_shifts = [s for s in CHECK_SHIFTS if max(abs(s[0]), abs(s[1])) <= centre]
  check = equivariance_check(gp_cnn.params, wide_mlp.params, check_digits, size, check_shifts)

  models_info = {
      name: {"config": _runs.plain_config(model.config), "parameters": model.parameter_count(),
             "train_seconds": model.seconds, "history": model.history}
      for name, model in (("cnn", cnn), ("mlp", mlp), ("cnn_48", gp_cnn), ("mlp_48", wide_mlp))}
  figures = [
      _plot_shift_curves(workdir, shifts, curve, by_direction, models_info),
      _plot_canvas(workdir, canvas_train.images[0], random_test[:4], by_displacement,
                   random_accuracy, models_info),
      _plot_feature_maps(workdir, gp_cnn.params, test.images[0], size, check_shifts[-1]),
  ]
  results = {
      "shift_curve": {"shifts": shifts, **curve},
      "shift_curve_by_direction": by_direction,
      "random_placement_48": random_accuracy,
      "centred_48": centred_accuracy,
      "random_placement_by_displacement": by_displacement,
      "random_placement_phase": phase,
      "mlp_blind_pixels": mlp_blind,
      "equivariance_check": check,
      "models": models_info,
      "top_k": {
          "CNN, 28×28 test (unshifted)": cnn.top_k_errors(test.images, test.labels),
          "MLP, 28×28 test (unshifted)": mlp.top_k_errors(test.images, test.labels),
          "global-pool CNN, 48×48, random placement": metrics.top_k_errors(
              random_scores["cnn"], test.labels),
          "MLP, 48×48, random placement": metrics.top_k_errors(random_scores["mlp"],
                                                                test.labels)},
      "data": {"source": mnist.source, "train": len(train.labels),
               "canvas_train": len(canvas_train.labels), "validation": len(validation.labels),
               "test": len(test.labels), "canvas": size},
      "settings": dataclasses.asdict(settings),
      "figures": figures,
      "meets_target": bool(random_accuracy["cnn"] >= TARGET),
      "cpu_seconds": time.process_time() - cpu_began,
      "headline": (f"CNN {percent(random_accuracy['cnn'])}, MLP {percent(random_accuracy['mlp'])} "
                   f"(random placement, 48×48)"),
  }
  results["summary"] = summary(results)
  return results
