"""The per-backend table (hw.backends): what each backend runs, that the library
reads it, and the data-parallel rules on CPU devices."""
from __future__ import annotations

import dataclasses
import json

import platform

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hw import ops
from hw import backends
from hw.engine import loop, steps
from hw.engine.experiment_data import DeviceSplit


def test_cpu_runs_its_measured_choices_and_accelerators_lax_convolutions_and_scans():
  cpu, gpu, tpu = (backends.choices(name) for name in ("cpu", "gpu", "tpu"))
  assert cpu.conv_nets_per_batch and cpu.conv2d == "by_shape" and cpu.conv is not None
  assert gpu == tpu == backends.ACCELERATOR
  assert not gpu.conv_nets_per_batch and gpu.conv2d == "lax" and gpu.conv is None
  assert cpu.mesh_one_step_at_a_time and not gpu.mesh_one_step_at_a_time
  assert cpu.keep_freed_memory and not gpu.keep_freed_memory
  assert backends.choices("rocm-like-unknown") == backends.ACCELERATOR
  assert "never measured" in gpu.basis and "measured" in cpu.basis


@pytest.mark.parametrize("w_shape, out_hw, stride, cpu", [
    ((3, 3, 3, 8), (32, 32), 1, "shift_lax"),      # C ≤ 4, F ≤ 8
    ((3, 3, 1, 16), (26, 26), 1, "shift"),         # C ≤ 4, KH·KW·C·F = 144 ≤ 784
    ((7, 7, 2, 10), (22, 22), 1, "im2col"),        # C ≤ 4, 980 MACs, F ≤ 15
    ((5, 5, 1, 32), (24, 24), 1, "lax_im2col"),    # C = 1, 800 MACs, F > 15
    ((3, 3, 3, 32), (32, 32), 1, "shift"),         # C = 3, 864 MACs, F > 15
    ((3, 3, 64, 64), (2, 2), 1, "im2col"),         # wide, OH·OW ≤ 4 (input size unknown)
    ((3, 3, 16, 32), (11, 11), 1, "winograd"),     # 3×3, stride 1, C ≥ 16
    ((3, 3, 16, 32), (8, 8), 1, "lax"),  # ≤ 64 outputs: C·F ≥ 2048 for Winograd, else lax
    ((3, 3, 32, 32), (8, 8), 1, "lax"),
    ((3, 3, 32, 32), (4, 4), 1, "lax"),
    ((3, 3, 32, 64), (8, 8), 1, "winograd"),
    ((3, 3, 64, 32), (8, 8), 1, "winograd"),
    ((3, 3, 16, 128), (4, 4), 1, "winograd"),
    ((3, 3, 32, 32), (9, 8), 1, "winograd"),   # 72 outputs: C ≥ 16 suffices
    ((3, 3, 256, 256), (4, 4), 1, "winograd"),
    ((3, 3, 8, 64), (11, 11), 1, "lax_matmul_dw"),  # C < 16, 3×3, OH·OW ≤ 121
    ((3, 3, 32, 64), (11, 11), 2, "lax_matmul_dw"),  # stride 2: no Winograd
    ((3, 3, 8, 64), (12, 12), 1, "lax"),
    ((5, 5, 32, 64), (8, 8), 1, "lax"),
])
def test_conv2d_choice_by_backend(w_shape, out_hw, stride, cpu):
  strides = (stride, stride)
  assert backends.conv2d_algorithm(w_shape, out_hw, "cpu", stride=strides) == cpu
  assert backends.conv2d_algorithm(w_shape, out_hw, "gpu", stride=strides) == "lax"
  assert backends.conv2d_algorithm(w_shape, out_hw, "tpu", stride=strides) == "lax"


def test_tiny_output_of_a_tiny_input_is_one_dense_matmul_on_the_cpu():
  choose = lambda in_hw, backend="cpu": backends.conv2d_algorithm(
      (3, 3, 64, 64), (2, 2), backend, in_hw=in_hw)
  assert choose((2, 2)) == choose((4, 4)) == "dense"   # H·W ≤ 16
  assert choose((5, 5)) == "im2col"
  assert choose((2, 2), "gpu") == "lax"


def _primitives(backend: str) -> str:
  x, w = jnp.ones((2, 6, 6, 1)), jnp.ones((3, 3, 1, 9))
  dy = jnp.ones((2, 4, 4, 9))
  with backends.use(backend):
    jaxpr = jax.make_jaxpr(  # a fresh function: traced under this backend's row
        lambda x, w: jax.vjp(lambda x, w: ops.conv2d(x, w), x, w)[1](dy))(x, w)
  return str(jaxpr)


def test_conv2d_reads_the_table_of_the_backend_it_is_traced_for():
  """On the CPU a 1 -> 9 channel 3×3 layer is shifted slices + im2col (no lax conv); traced
  as for a GPU, its forward pass, dW and dX are three lax convolutions."""
  assert _primitives("cpu").count("conv_general_dilated") == 0
  assert _primitives("gpu").count("conv_general_dilated") == 3


def test_pooling_reads_the_table():
  assert backends.pool_path(True, "cpu") == backends.pool_path(True, "gpu") == "blocks"
  assert backends.pool_path(False, "cpu") == "windows"
  with backends.replaced("cpu", pool_blocks_when_tiling=False):
    assert backends.pool_path(True, "cpu") == "windows"
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    with backends.use("cpu"):
      windows = str(jax.make_jaxpr(lambda x: ops.max_pool(x, 2))(x))
  blocks = str(jax.make_jaxpr(lambda x: ops.max_pool(x, 2))(x))
  assert windows != blocks  # the windows path gathers
  assert backends.pool_path(True, "cpu") == "blocks"  # restored


def test_stepping():
  assert backends.per_batch_stepping(None, True, "cpu") is True
  assert backends.per_batch_stepping(None, False, "cpu") is False
  assert backends.per_batch_stepping(None, True, "gpu") is False
  assert backends.per_batch_stepping(True, False, "tpu") is True
  assert backends.per_batch_stepping(False, True, "cpu") is False


@pytest.mark.parametrize("changes, expected", [
    ({}, True),
    ({"is_conv_net": False}, False),        # MLPs keep one pass (measured slower)
    ({"batch_norm": True}, False),          # the halves would normalise by their own statistics
    ({"per_batch": False}, False),          # a scanned chunk is one execution
    ({"batch_size": 1}, False),
    ({"mesh_devices": 2}, False),
    ({"backend": "gpu"}, False),
    ({"backend": "tpu"}, False),
])
def test_batch_halves_only_for_conv_nets_without_batch_norm_stepped_per_batch_on_the_cpu(
    changes, expected):
  arguments = dict(is_conv_net=True, batch_norm=False, per_batch=True, batch_size=100,
                   mesh_devices=1, backend="cpu") | changes
  assert backends.batch_halves(**arguments) is expected
  with backends.replaced("cpu", batch_halves=False):
    assert backends.batch_halves(**(arguments | {"backend": "cpu"})) is False


def test_describe_is_plain_json_and_names_the_backend():
  row = backends.describe("gpu")
  assert json.loads(json.dumps(row)) == row
  assert row["backend"] == "gpu" and row["conv2d"] == "lax" and row["listed"] is True
  assert backends.describe("cpu")["conv"]["im2col_max_input_channels"] == 4
  assert backends.describe()["backend"] == jax.default_backend()


def test_use_and_replaced_restore_and_refuse_bad_names():
  before = backends.name()
  with backends.use("tpu"):
    assert backends.name() == "tpu" and backends.current() == backends.ACCELERATOR
  assert backends.name() == before
  with pytest.raises(ValueError, match="backend must be"):
    with backends.use(""):
      pass
  with pytest.raises(ValueError, match="unknown backend choice"):
    with backends.replaced("cpu", conv2d_speed=1):
      pass
  with backends.replaced("cpu", conv={"im2col_max_positions": 0}) as row:
    assert row.conv.im2col_max_positions == 0 and row.conv.im2col_max_input_channels == 4
    assert backends.conv2d_algorithm((3, 3, 8, 64), (2, 2), "cpu") == "lax_matmul_dw"
  assert backends.TABLE["cpu"] == backends.CPU


def test_worker_threads_follow_xla():
  assert backends.cpu_worker_threads(8, {"PJRT_NPROC": "3"}) == 8
  assert backends.cpu_worker_threads(2, {"PJRT_NPROC": "12", "NPROC": "4"}) == 12
  assert backends.cpu_worker_threads(2, {"NPROC": "4"}) == 4


def test_a_cpu_mesh_with_more_devices_than_workers_is_refused_up_front():
  with pytest.raises(ValueError, match=r"devices=8 in 'q'.*has 6.*at most 6 devices"):
    backends.check_data_parallel(8, "'q'", backend="cpu", threads=6)
  backends.check_data_parallel(8, "'q'", backend="cpu", threads=8)
  backends.check_data_parallel(8, "'q'", backend="gpu", threads=1)


class _Loss(float):
  """A step's loss that records when the loop waits for it."""
  events: list = []

  def block_until_ready(self):
    self.events.append(("wait", float(self)))
    return self


@dataclasses.dataclass
class _Mesh:
  size: int


class _FakePrograms(steps.Programs):
  def feed(self, index, keys):  # no real mesh to shard over: the step gets them as they are
    return index, keys


def _fake_programs(devices: int) -> steps.Programs:
  def step(state, images, labels, index, key):
    _Loss.events.append(("step", state))
    return state + 1, _Loss(state), np.int32(0)

  return _FakePrograms(key=None, model=None, init=None, step=step, chunk=None, evaluate=None,
                       per_batch=True, mesh=_Mesh(devices) if devices > 1 else None)


@pytest.mark.parametrize("backend, devices, waits", [("cpu", 8, True), ("cpu", 1, False),
                                                     ("gpu", 8, False)])
def test_a_cpu_mesh_runs_one_step_at_a_time(backend, devices, waits):
  """On a CPU mesh the epoch waits for step k before dispatching step k + 1 (several steps
  in flight deadlocked XLA:CPU's all-reduce); one device and GPUs keep steps in flight."""
  _Loss.events = []
  split = DeviceSplit(np.zeros((12, 2), np.float32), np.zeros(12, np.int32), 12)
  with backends.use(backend):
    loop.train_epoch(0, _fake_programs(devices), split, seed=0, epoch=1, batch_size=4)
  steps = [("step", 0), ("step", 1), ("step", 2)]
  if waits:
    assert _Loss.events == [steps[0], ("wait", 0.0), steps[1], ("wait", 1.0), steps[2],
                            ("wait", 2.0)]
  else:
    assert _Loss.events == steps


def test_keep_freed_memory_is_applied_once_and_says_whether_it_took():
  from hw.engine import host_memory
  first = host_memory.keep_freed_memory()
  assert isinstance(first, bool)
  assert host_memory.keep_freed_memory() is first
  if platform.libc_ver()[0] == "glibc":
    assert first
  assert host_memory.keep_freed_memory_on("cpu") is first   # the CPU's row asks for it
  assert host_memory.keep_freed_memory_on("tpu") is False   # an accelerator's does not


def test_expected_backend_is_found_without_starting_jax(monkeypatch):
  monkeypatch.setenv("JAX_PLATFORMS", "cuda,cpu")
  assert backends.expected_backend() == "gpu"
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  assert backends.expected_backend() == "cpu"
  monkeypatch.delenv("JAX_PLATFORMS")
  monkeypatch.setattr(backends.importlib.util, "find_spec",
                      lambda name: object() if name == "libtpu" else None)
  assert backends.expected_backend() == "tpu"
  monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: None)
  assert backends.expected_backend() == "cpu"
  assert backends.choices("cpu").keep_freed_memory and not backends.choices("tpu").keep_freed_memory


def test_patches_are_stacked_nested_from_one_channel_on_the_cpu_only():
  assert backends.patches_nested(1, "cpu")
  assert not backends.patches_nested(2, "cpu")
  assert not backends.patches_nested(1, "gpu") and not backends.patches_nested(1, "tpu")
  with backends.replaced("cpu", conv={"patches_nested_max_input_channels": 3}):
    assert backends.patches_nested(3, "cpu") and not backends.patches_nested(4, "cpu")
