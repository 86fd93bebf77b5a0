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

import numpy as np
import pytest

from hw.engine import steps
from hw.engine.config import ExperimentConfig
from hw.ops.convolution import ALGORITHMS

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


CONV_NET_SCRIPT = textwrap.dedent("""
    import json
    import jax, numpy as np
    from hw.engine import loop
    from hw.engine.config import ExperimentConfig
    from hw.engine.experiment_data import Split, to_device

    assert jax.local_device_count() == 8, jax.devices()
    rng = np.random.default_rng(1)
    images = rng.random((1152, 28, 28, 1), dtype=np.float32)
    labels = (images[:, 8:20, 8:20].mean((1, 2, 3)) * 20 % 10).astype(np.int32)
    data = loop.TrainingData(to_device(Split(images[:960], labels[:960]), None, 1),
                              to_device(Split(images[960:], labels[960:]), None, 96))
    # Q5.4's network and batch: conv-BN-ReLU-pool-dropout x2, fc-BN-ReLU-dropout-fc,
    # one jitted step per batch of 96 (12 per device), 20 steps; SGD with momentum, whose
    # steps scale with the gradients (Adam's normalised steps turn the rounding of
    # near-zero gradients into steps of the learning rate's size)
    config = ExperimentConfig(
        name="dp-conv", title="dp", dataset="synthetic", model="cnn_bn",
        model_kwargs={"conv_blocks": ((16, 3), (32, 3)), "hidden_size": 128,
                      "dropout_rate": 0.1, "padding": "VALID"},
        optimizer="momentum", learning_rate=0.05, lr_schedule="cosine", batch_size=96,
        eval_batch_size=96, epochs=2, weight_scale=None, augment="shift")
    runs, per_batch = {}, {}
    for devices in (1, 8):
      run_config = config.replace(devices=devices)
      programs = loop.programs_for(run_config, 10, data.train.size)
      per_batch[devices] = programs.per_batch
      state, history = loop.train(run_config, data, programs=programs)
      runs[devices] = ([np.asarray(x) for x in jax.tree_util.tree_leaves(state.variables())],
                       history)
    (one, h1), (eight, h8) = runs[1], runs[8]
    rel = max(float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-12))
              for a, b in zip(one, eight))
    print("RESULT" + json.dumps({
        "max_rel": rel, "per_batch": per_batch[8],
        "val1": [r["val_accuracy"] for r in h1], "val8": [r["val_accuracy"] for r in h8],
        "loss1": [r["train_loss"] for r in h1], "loss8": [r["train_loss"] for r in h8]}))
""")


def test_a_conv_net_at_a_real_batch_on_eight_devices_trains_like_one():
  """Q5.4's conv net, batch 96, one step per batch on 8 CPU devices (which waited in an
  all-reduce and aborted while several steps were in flight; hw.backends)."""
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
         "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
  env.pop("PJRT_NPROC", None)
  env.pop("NPROC", None)
  done = subprocess.run([sys.executable, "-c", CONV_NET_SCRIPT], env=env, capture_output=True,
                        text=True, timeout=600, cwd=ROOT)
  assert done.returncode == 0, done.stderr[-3000:]
  line = next(l for l in done.stdout.splitlines() if l.startswith("RESULT"))
  out = json.loads(line[len("RESULT"):])
  assert out["per_batch"] is True
  assert out["max_rel"] < 1e-4, out
  np.testing.assert_allclose(out["loss8"], out["loss1"], rtol=1e-5)
  assert out["val8"] == out["val1"], out


SHARDED_CONV_SCRIPT = textwrap.dedent("""
    import json, re
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
    from hw.ops import conv2d
    from hw.ops.convolution import ALGORITHMS

    assert jax.local_device_count() == 8, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    x = jax.device_put(jnp.ones((16, 6, 6, 3)), NamedSharding(mesh, PartitionSpec("batch")))
    w = jax.device_put(jnp.ones((3, 3, 3, 4)), NamedSharding(mesh, PartitionSpec()))
    found = {}
    for algorithm in ALGORITHMS:
      loss = lambda w, x: jnp.sum(conv2d(x, w, padding="SAME", algorithm=algorithm) ** 2)
      hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(w, x).compile().as_text()
      found[algorithm] = {op: len(re.findall(op + r"[.(]", hlo))
                          for op in ("all-gather", "all-to-all", "collective-permute",
                                     "all-reduce")}
    print("RESULT" + json.dumps(found))
""")


def test_every_conv_algorithm_keeps_a_batch_sharded_step_local():
  """Data parallel on a batch-sharded conv: each algorithm's forward and backward run on
  each device's part of the batch, the only collective the all-reduce that sums dW (the
  first form of "shift_lax", a loop over the two halves of the batch, made XLA all-gather
  the input)."""
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
         "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
  done = subprocess.run([sys.executable, "-c", SHARDED_CONV_SCRIPT], env=env,
                        capture_output=True, text=True, timeout=600, cwd=ROOT)
  assert done.returncode == 0, done.stderr[-3000:]
  line = next(l for l in done.stdout.splitlines() if l.startswith("RESULT"))
  found = json.loads(line[len("RESULT"):])
  assert set(found) == set(ALGORITHMS)
  for algorithm, counts in found.items():
    assert counts["all-reduce"] >= 1, (algorithm, counts)
    assert counts["all-gather"] == counts["all-to-all"] == counts["collective-permute"] == 0, (
        algorithm, counts)
