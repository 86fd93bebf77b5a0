"""Data parallel training (hw.engine.steps): the same config and seed train the same on 1 and on
8 devices. XLA's device count is fixed at start-up, so the 8 CPU devices live in a
subprocess (``--xla_force_host_platform_device_count=8``)."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from hw.engine import steps
from hw.engine.config import ExperimentConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from hw.engine import loop
    from hw.engine.config import ExperimentConfig
    from hw.engine.experiment_data import Split, to_device

    assert jax.local_device_count() == 8, jax.devices()
    rng = np.random.default_rng(0)
    images = rng.random((240, 8, 8, 3), dtype=np.float32)
    labels = (images[:, :4].mean((1, 2, 3)) > images[:, 4:].mean((1, 2, 3))).astype(np.int32)
    data = loop.TrainingData(to_device(Split(images[:160], labels[:160]), None, 1),
                             to_device(Split(images[160:], labels[160:]), None, 40))
    out = {}
    for model, kwargs, augment, per_batch in (
        ("cnn_bn", {"conv_blocks": ((4, 3), (8, 3)), "hidden_size": 16, "dropout_rate": 0.25,
                    "padding": "SAME"}, "crop_flip", True),
        ("mlp", {"hidden_sizes": (16,), "dropout_rate": 0.1}, None, False)):
      config = ExperimentConfig(name="dp", title="dp", dataset="synthetic", model=model,
                                model_kwargs=kwargs, optimizer="adam", learning_rate=3e-3,
                                lr_schedule="cosine", batch_size=40, eval_batch_size=40,
                                epochs=3, weight_scale=None, augment=augment,
                                jit_per_batch=per_batch)
      runs = {}
      for devices in (1, 8):
        programs = loop.programs_for(config.replace(devices=devices), 2, data.train.size)
        state, history = loop.train(config.replace(devices=devices), data, programs=programs)
        leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(state.variables())]
        runs[devices] = (leaves, history, programs.device_count,
                         len(jax.tree_util.tree_leaves(state.params)[0].sharding.device_set))
      (one, h1, c1, s1), (eight, h8, c8, s8) = runs[1], runs[8]
      rel = max(float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-12))
                for a, b in zip(one, eight))
      out[model] = {"max_rel": rel, "counts": [c1, c8], "param_devices": [s1, s8],
                    "acc1": [r["val_accuracy"] for r in h1],
                    "acc8": [r["val_accuracy"] for r in h8],
                    "train1": [r["train_accuracy"] for r in h1],
                    "train8": [r["train_accuracy"] for r in h8]}
    try:
      loop.programs_for(config.replace(devices=8, batch_size=44), 2, 132)
    except ValueError as error:
      out["error"] = str(error)
    print("RESULT" + json.dumps(out))
""")


def test_one_and_eight_devices_train_the_same():
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
         "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
  done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                        timeout=600, cwd=ROOT)
  assert done.returncode == 0, done.stderr[-3000:]
  line = next(l for l in done.stdout.splitlines() if l.startswith("RESULT"))
  out = json.loads(line[len("RESULT"):])
  for model in ("cnn_bn", "mlp"):
    result = out[model]
    assert result["counts"] == [1, 8]
    assert result["param_devices"] == [1, 8]  # really replicated over the mesh
    assert result["max_rel"] < 1e-5, result
    assert result["acc1"] == result["acc8"], result
    assert result["train1"] == result["train8"], result
  assert "batch_size 44" in out["error"] and "8 devices" in out["error"], out["error"]


def test_more_devices_than_there_are_is_refused():
  config = ExperimentConfig(name="dp", title="dp", dataset="synthetic", model="mlp",
                            devices=64)
  with pytest.raises(ValueError, match="devices=64"):
    steps.device_count(config)


def test_devices_must_be_a_positive_integer():
  with pytest.raises(ValueError, match="devices"):
    ExperimentConfig(name="dp", title="dp", dataset="synthetic", model="mlp", devices=0)
