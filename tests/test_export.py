"""Every compiled program lowers for CUDA and TPU, on this CPU (``jax.export`` lowers for
platforms that are not present; no device and no compilation needed).

Exported for ``("cuda", "tpu")``: the engine's programs (train step, scanned chunk,
evaluation) of every model of ``hw.nn.MODELS``, on one device and data parallel over an
8-device mesh (an ``AbstractMesh``: no devices needed), traced with the GPU/TPU row of
``hw.backends``; and every op row of ``hw.verification.registry`` (each pinned
path included), forward and VJP, in float32 and bfloat16. A failure names the program and
the reason: JAX refused to lower it (a primitive with no CUDA/TPU lowering, a custom call
outside the stable set), a host callback, a CPU-only custom call, a float64 value (TPUs
have none), or a dynamic shape.
"""
from __future__ import annotations

import functools
import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export
from jax.sharding import AbstractMesh

from helpers import case_function
from hw import backends
from hw.engine import loop, randomness, steps
from hw.engine.config import ExperimentConfig
from hw.nn import models
from hw.verification import registry

PLATFORMS = ("cuda", "tpu")
MESH_DEVICES = 8
CPU_ONLY_TARGET = re.compile(r"lapack|ducc|cpu|eigen", re.IGNORECASE)
CALLBACK_TARGET = re.compile(r"callback", re.IGNORECASE)
CUSTOM_CALL = re.compile(r"stablehlo\.custom_call @([\w.$-]+)|call_target_name = \"([^\"]+)\"")


def problems(module: str) -> list[str]:
  """What keeps an exported StableHLO module from running on a GPU or TPU."""
  found = []
  targets = {a or b for a, b in CUSTOM_CALL.findall(module)}
  for target in sorted(targets):
    if CALLBACK_TARGET.search(target):
      found.append(f"a host callback (custom call {target!r})")
    elif CPU_ONLY_TARGET.search(target):
      found.append(f"a CPU-only custom call {target!r}")
  if re.search(r"\bf64\b", module):
    line = next(l.strip() for l in module.splitlines() if re.search(r"\bf64\b", l))
    found.append(f"a float64 value, which TPUs do not have: {line[:160]}")
  if re.search(r"tensor<(?:\d+x)*\?", module):
    found.append("a dynamic shape (tensor<?...>)")
  return found


def check_exports(name: str, function: Callable, *args: Any) -> None:
  """Export jitted ``function`` at ``args`` (ShapeDtypeStructs or arrays) for CUDA and TPU;
  fail naming ``name`` and the reason."""
  try:
    exported = export.export(function, platforms=PLATFORMS)(*args)
  except Exception as error:  # the message of the lowering that failed is the reason
    pytest.fail(f"{name} does not lower for {PLATFORMS}: {type(error).__name__}: "
                f"{str(error)[:600]}")
  assert exported.platforms == PLATFORMS
  found = problems(exported.mlir_module())
  assert not found, f"{name} lowers for {PLATFORMS} but has {'; '.join(found)}"


def test_the_checker_names_each_reason():
  """The check is not blind: a program with each problem fails it, naming the problem."""
  shape = jax.ShapeDtypeStruct((3,), jnp.float32)
  with jax.enable_x64(True), pytest.raises(AssertionError, match="a float64 value"):
    check_exports("doubling", jax.jit(lambda x: x * 2.0), jax.ShapeDtypeStruct((3,), jnp.float64))
  with pytest.raises(pytest.fail.Exception, match="host-callback does not lower"):
    check_exports("host-callback", jax.jit(
        lambda x: jax.pure_callback(np.sin, shape, x)), shape)
  assert problems("%0 = stablehlo.custom_call @xla_ffi_python_gpu_callback(%a)") == [
      "a host callback (custom call 'xla_ffi_python_gpu_callback')"]
  assert problems('%0 = stablehlo.custom_call @lapack_sgetrf_ffi(%a)') == [
      "a CPU-only custom call 'lapack_sgetrf_ffi'"]
  assert problems("func.func @main(%a: tensor<?x3xf32>)") == ["a dynamic shape (tensor<?...>)"]
  check_exports("tanh", jax.jit(jnp.tanh), shape)  # and a clean program passes


# ------------------------------------------------------------------ the engine's programs

MNIST, CIFAR = (28, 28, 1), (32, 32, 3)
# every model of the catalog with an input it takes (its smallest registered form where
# the default is large; VGG11 as it is: tracing costs the same at any batch)
MODEL_INPUTS: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {
    "linear": (MNIST, {}),
    "mlp": (MNIST, {"hidden_sizes": (8,), "dropout_rate": 0.1}),
    "cnn": (MNIST, {"filters": 4, "hidden_size": 8}),
    "cnn_bn": (MNIST, {"conv_blocks": ((4, 3), (8, 3)), "hidden_size": 8}),
    "cnn_global_pool": (MNIST, {"conv_blocks": ((4, 3), (8, 3))}),
    "cifar_handout": (CIFAR, {"batch_norm": True, "relu": True, "dropout_rate": 0.1}),
    "cifar_improved": (CIFAR, {"width": 1}),
    "vgg11": (CIFAR, {}),
}
BATCH, EXAMPLES, CHUNK = 8, 16, 2


def test_every_model_of_the_catalog_is_listed():
  assert sorted(MODEL_INPUTS) == sorted(models.MODELS)


def _config(model: str) -> ExperimentConfig:
  return ExperimentConfig(name=f"export-{model}", title="export", dataset="synthetic",
                          model=model, model_kwargs=MODEL_INPUTS[model][1], optimizer="adam",
                          learning_rate=1e-3, lr_schedule="cosine", batch_size=BATCH,
                          eval_batch_size=BATCH, epochs=1, weight_scale=None,
                          augment="crop_flip" if MODEL_INPUTS[model][0] == CIFAR else "shift")


@pytest.mark.parametrize("mesh_devices", [1, MESH_DEVICES], ids=["one-device", "mesh"])
@pytest.mark.parametrize("model", sorted(MODEL_INPUTS))
def test_every_program_of_every_model_lowers_for_cuda_and_tpu(model, mesh_devices, monkeypatch):
  config = _config(model)
  if mesh_devices > 1:  # the programs the engine jits over a mesh, without the devices
    mesh = AbstractMesh((mesh_devices,), (steps.BATCH_AXIS,))
    monkeypatch.setattr(steps, "make_mesh", lambda config: mesh)
  where = "one device" if mesh_devices == 1 else f"a {mesh_devices}-device mesh"
  with backends.use("gpu"):  # traced as a GPU/TPU traces it (the table's accelerator row)
    programs = steps.compile_programs(config, num_classes=10, steps=CHUNK)
    images = jax.ShapeDtypeStruct((EXAMPLES,) + MODEL_INPUTS[model][0], jnp.float32)
    labels = jax.ShapeDtypeStruct((EXAMPLES,), jnp.int32)
    state = jax.eval_shape(functools.partial(loop.init_state, config, programs), images)
    key = randomness.key_data(np.random.default_rng(0))
    keys = jax.ShapeDtypeStruct((CHUNK,) + key.shape, key.dtype)
    index = jax.ShapeDtypeStruct((BATCH,), jnp.int32)
    chunk_index = jax.ShapeDtypeStruct((CHUNK, BATCH), jnp.int32)
    size = jax.ShapeDtypeStruct((), jnp.int32)
    check_exports(f"{model}'s train step on {where}", programs.step, state, images, labels,
                  index, jax.ShapeDtypeStruct(key.shape, key.dtype))
    check_exports(f"{model}'s scanned chunk on {where}", programs.chunk, state, images,
                  labels, chunk_index, keys)
    check_exports(f"{model}'s evaluation on {where}", programs.evaluate, state.variables(),
                  images, labels, size)


# ------------------------------------------------------------------ every op, f32 and bf16

def _as(value: Any, dtype) -> Any:
  """Float arrays in ``dtype``; integer arrays (labels), None and keys as they are."""
  if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating):
    return jnp.asarray(value, dtype)
  return value


def op_programs(spec, dtype) -> tuple[Callable, Callable, tuple]:
  """(forward, vjp, differentiable inputs) of ``spec``'s first case in ``dtype``."""
  case = spec.make_cases(registry.case_key(0, spec.name))[0]
  args = [_as(a, dtype) for a in case.args]
  call, inputs = case_function(spec.bind(), case, args)

  def vjp(inputs, cotangent):
    return jax.vjp(call, *inputs)[1](cotangent)

  return jax.jit(call), jax.jit(vjp), inputs


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("row", sorted(registry.REGISTRY))
def test_every_op_forward_and_vjp_lowers_for_cuda_and_tpu(row, dtype):
  spec = registry.REGISTRY[row]
  forward, vjp, inputs = op_programs(spec, dtype)
  name = f"{row} in {jnp.dtype(dtype).name}"
  output = jax.eval_shape(forward, *inputs)
  check_exports(f"{name}, forward", forward, *inputs)
  check_exports(f"{name}, VJP", vjp, inputs, output)
