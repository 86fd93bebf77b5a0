"""Per-backend choices in one table: how an epoch steps, which conv2d path a layer takes,
when pooling takes its block path, and the CPU-tuned thresholds behind them.

Every choice here changes speed and float rounding only, never the formulas: each conv2d
algorithm and pooling path computes the same derivatives (``hw verify`` proves every path
on the CPU by pinning it, whatever this table says). The table is keyed by
``jax.default_backend()`` ("cpu", "gpu" for CUDA and ROCm, "tpu"); a backend not listed
gets :data:`ACCELERATOR`.

- **Stepping.** ``conv_nets_per_batch``: conv nets (``ConvNet``, ``VGG``) train with one
  jitted call per mini-batch instead of scanned chunks of :data:`hw.engine.steps.CHUNK_STEPS`
  steps. XLA:CPU runs convolutions several times slower inside a ``while`` loop
  (``docs/results/bench.md``); on GPU/TPU a scan saves a host round trip per step, so they
  scan. ``config.jit_per_batch`` overrides this.
- **conv2d.** ``conv2d`` is ``"by_shape"`` (the CPU's rule, :func:`conv2d_algorithm`, with
  its ``conv`` thresholds) or one algorithm name of ``hw.ops.convolution.ALGORITHMS`` for
  every layer. GPU and TPU: ``"lax"`` (lax convolutions for the forward pass, dW and dX),
  since cuDNN and the TPU's convolution emitter are the tuned paths there; no measurement
  on either says otherwise (none was ever made: no GPU or TPU has been available).
- **Pooling.** ``pool_blocks_when_tiling``: the automatic pooling path is "blocks" (one
  reshape or strided slices) whenever the windows tile the input, else "windows"
  (gathers / averaging matrices). The same on every backend: the block path is fewer,
  simpler operations everywhere.

- **Batch halves.** ``batch_halves``: a conv net without batch norm that steps one batch
  per jitted call computes each step as two executions running side by side, one per half
  of the mini-batch (each half's gradient of its share of the batch's mean loss, on two
  threads, then one jitted update of their sum: the same gradient, rounded in another
  order; each half draws its dropout masks and augmentation from its own key). One
  network's forward and backward pass is a chain in which each layer waits for the one
  before, and most of these small operations do not split well across two cores (Q6.1's
  step on one core 26.3-27.3 ms, on two 23.9-26.4, alternating runs). Two halves as two
  independent chains inside one program, which XLA:CPU's workers could run side by side,
  gave Q6.1 1.05-1.11×, Q5.3 0.96× with its shift augmentation; two executions on two
  threads give (engine step, interleaved, ``docs/speed.md``) Q6.1 1.21× [1.14-1.25] over
  that, 1.27× [1.22-1.38] over one pass with crop + flip, Q5.3 1.07-1.11× with its
  augmentation and 1.14× without. With batch norm the halves would each normalise by their
  own statistics, another model. Not in a scanned chunk (one execution), not on GPU/TPU,
  where one chain already fills the device, and not over a device mesh.
- **Host memory.** ``keep_freed_memory``: training asks glibc to keep freed memory for
  reuse instead of unmapping it (:mod:`hw.engine.host_memory`): XLA:CPU allocates every
  step's buffers afresh, and each step page-faulted them in again. On the CPU only (an
  accelerator's step does not run in host buffers).

The CPU thresholds (:class:`ConvThresholds`) were chosen with ``python -m
benchmarks.conv_algorithms`` on a 2-core CPU (``docs/results/measurements.md``); those of
the narrow layers, Winograd and the dense path on 2026-12-06 from per-layer and whole-step
measurements (``docs/speed.md``), and the sweep forces each of them too:

- XLA's CPU convolution is slow when a layer has very few input channels, above all its
  transposed convolution for dX, and fine with many. So layers with at most
  ``im2col_max_input_channels`` input channels compute dW and dX by im2col/col2im, wider
  ones use lax convolutions. The forward pass of a narrow layer is an im2col matmul only
  when it also has at most ``im2col_forward_max_output_channels`` output channels (lax is
  faster for 1 -> 32 channels).
- A narrow layer with at most ``narrow_lax_max_output_channels`` output channels takes
  lax for dW and dX and shifted slices for the forward pass ("shift_lax"): its im2col dW
  is a matmul only that many columns wide, which XLA:CPU runs at a small fraction of its
  peak (32×32×3 -> 8 SAME: dW 3.1 ms by im2col, 1.7 ms by the lax correlation), and its
  lax forward pass is slow too (5.3 ms against 0.7 by shifted slices, written once so
  that the max pool after it does not recompute them). The CIFAR handout net's step was
  1.13× faster than with lax throughout, and 1.07× faster again in the final form of the
  forward pass (``docs/speed.md``).
- A narrow layer with few multiply-adds per output pixel (C·KH·KW·F ≤
  ``shift_forward_max_macs``) computes its forward pass as KH·KW·C shifted slices of X
  times a row of W, summed: one fused elementwise loop, faster than XLA:CPU's convolution
  or an im2col matmul for a small first layer such as 1 -> 16 channels 3×3.
- Past that, a narrow layer with more than ``im2col_forward_max_output_channels`` output
  channels takes the lax forward pass only with at most ``lax_forward_max_input_channels``
  input channels: XLA:CPU's convolution is fast with one input channel and slow with three
  (forward + dW with freed memory kept: 5×5 1 -> 32 on 28×28 2.4 ms by lax against 3.5 by
  shifted slices; 3×3 3 -> 32 on 32×32 14.1 ms against 6.9, 3 -> 64 13.4 against 9.5; the
  CIFAR improved net's step 1.05× faster, measured before freed memory was kept).
  Wider-input narrow layers take the shifted slices.
- A wide layer with a small kernel (KH·KW ≤ ``matmul_kernel_grad_max_taps``) and a small
  output (OH·OW ≤ ``matmul_kernel_grad_max_positions``) computes dW as one matmul of
  channel-major patches with dY: faster than XLA:CPU's dW convolution for 3×3 kernels on
  small outputs, slower with larger outputs or 5×5 kernels.
- A wide 3×3 layer at stride 1 with at least ``winograd_min_input_channels`` input
  channels computes all three passes by Winograd F(2×2, 3×3) (2.25× fewer multiplies; its
  16 matmuls contract over C, which must be wide enough to run near the matmul peak):
  1.4-2.3× faster than the lax path on the 3×3 layers of the CIFAR nets with 32 to 256
  input channels and on Q5.4's 13×13×16 -> 32 (4.6 against 7.3 ms), no faster with 8. On
  maps of at most ``winograd_small_map_positions`` outputs its 16 matmuls are short and its
  transforms weigh more, so there it needs C·F ≥ ``winograd_small_map_min_channel_product``
  and a layer with less takes lax (forward + dX + dW with bias, batch 100, 15-21
  interleaved rounds, Winograd against lax and autodiff of ``lax.conv``, 2026-12-06):
  Winograd wins at 8×8×32 -> 64 (5.8 against 6.7 and 6.4 ms), 8×8×64 -> 32 (5.0-7.6
  against 6.5-8.7 and 6.3-8.7), 8×8×16 -> 128, 8×8×64 -> 64, 4×4×32 -> 64 (1.70-1.74
  against 2.00-2.04 and 2.04) and 4×4×16 -> 128; it loses at 8×8×32 -> 32 (3.7-5.5
  against 3.3-4.2 and 3.6-4.2: 0.85-0.94× autodiff in six ``make bench`` runs), 8×8×16 ->
  32 (2.70 against 2.09 by lax and 2.14 by autodiff; the matmul dW below lost too),
  8×8×16 -> 64, 4×4×32 -> 32 and 4×4×16 -> 64, all below the product. The one layer the
  rule gets wrong is 4×4×64 -> 32 (Winograd 1.99-2.27 ms against 1.85-1.97 by lax and
  1.90-2.01 by autodiff), in none of the catalog's models.
- im2col's KH·KW slices of an input with at most ``patches_nested_max_input_channels``
  channels are stacked as KH stacks of KW slices each. XLA:CPU then builds the patches in
  one fused loop; from one stack of 49 it writes each slice on its own and copies them all
  again into the concatenation. The dW of a 7×7 1 -> 32 layer on 28×28 (batch 100) took
  2.1-2.4 ms against 2.7-3.3, 5×5 1.1 against 1.7-2.0, 3×3 1 -> 16 0.51-0.60 against
  0.72-1.02; with 3 channels it was the same within noise (2.89-3.01 against 3.03-3.07 ms)
  and with 16 slower (13×13×16 -> 32: 2.45 against 2.11), so those take one stack. The same
  array either way, so the same numbers bit for bit.
- A wide layer with a tiny output (OH·OW ≤ ``im2col_max_positions``, e.g. 3×3 SAME on the
  2×2 maps at the end of a CIFAR net) is im2col throughout: XLA:CPU's convolutions run
  8-14× slower there than the matmuls, and no faster on 4×4 maps. When its input is tiny
  too (H·W ≤ ``dense_max_input_positions``) it is one dense matmul with the kernel
  expanded to an (H·W·C) × (OH·OW·F) matrix ("dense"): on a 2×2 map that is 4/9 of the
  direct sum's multiplies, in one large matmul (2×2×256 -> 256: 6.2 ms forward + backward
  against 10.3 by im2col; 2×2×64 -> 64: 0.50 against 0.78). On 4×4 maps it does 16/9 of
  the direct multiplies and is 2-6× slower than Winograd.

:func:`current` is what the library reads (at trace time); :func:`use` pretends another
backend inside a block (how the export test traces what a GPU would run on this CPU);
:func:`describe` is what a results JSON records.

**Data parallel on CPU devices.** XLA:CPU runs every device's program, collectives
included, on one pool of max(``PJRT_NPROC`` (else ``NPROC``, else the schedulable cores),
device count) worker threads, and a device waiting at an all-reduce holds a worker. With
JAX's asynchronous dispatch several steps were in flight at once: devices that finished
step k started step k+1 and waited at its all-reduce, holding workers that the devices
still in step k needed, and XLA aborted after 40 s ("only 7 of them arrived on time";
8 forced devices on a 2-core machine, where the pool has 8 threads; with 10 threads it
still hung, with 16 one run finished). So on the CPU a mesh runs one step (or scanned chunk) at a time
(``mesh_one_step_at_a_time``: the epoch loop waits for each before dispatching the next),
which needs one worker per mesh device at most; :func:`check_data_parallel` refuses a
mesh with more local devices than workers (XLA sizes the pool to at least the device
count today, so this guards against a change of that sizing). GPUs and TPUs run collectives on the device
(NCCL, the TPU's interconnect), holding no host thread, and keep steps in flight.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import math
import os
from typing import Any, Iterator, Mapping

import jax


@dataclasses.dataclass(frozen=True)
class ConvThresholds:
  """The CPU's shape rule for conv2d (see the module docstring for each number's reason)."""
  im2col_max_input_channels: int = 4
  narrow_lax_max_output_channels: int = 8
  im2col_forward_max_output_channels: int = 15
  shift_forward_max_macs: int = 784
  lax_forward_max_input_channels: int = 1
  matmul_kernel_grad_max_taps: int = 9
  matmul_kernel_grad_max_positions: int = 121
  im2col_max_positions: int = 4
  dense_max_input_positions: int = 16
  winograd_min_input_channels: int = 16
  winograd_small_map_positions: int = 64
  winograd_small_map_min_channel_product: int = 2048
  patches_nested_max_input_channels: int = 1


@dataclasses.dataclass(frozen=True)
class BackendChoices:
  """What one backend runs. ``conv2d``: "by_shape" (the rule of :func:`conv2d_algorithm`
  with ``conv``) or an algorithm name used for every layer; ``basis``: where the choices
  come from (a measurement, or a stated default); ``mesh_one_step_at_a_time``: a
  data-parallel epoch waits for each step before dispatching the next;
  ``keep_freed_memory``: training asks the C library to keep freed host memory
  (:mod:`hw.engine.host_memory`); ``batch_halves``: a conv net without batch norm stepped per
  batch computes each step's two half-batch gradients side by side."""
  conv_nets_per_batch: bool
  conv2d: str
  conv: ConvThresholds | None
  pool_blocks_when_tiling: bool
  mesh_one_step_at_a_time: bool
  basis: str
  keep_freed_memory: bool = False
  batch_halves: bool = False


CPU = BackendChoices(
    conv_nets_per_batch=True, conv2d="by_shape", conv=ConvThresholds(),
    pool_blocks_when_tiling=True, mesh_one_step_at_a_time=True, keep_freed_memory=True,
    batch_halves=True,
    basis="measured on a 2-core CPU (benchmarks.conv_algorithms, make bench; "
          "docs/results/measurements.md)")
ACCELERATOR = BackendChoices(
    conv_nets_per_batch=False, conv2d="lax", conv=None, pool_blocks_when_tiling=True,
    mesh_one_step_at_a_time=False, basis="stated default, never measured (no GPU or TPU has been available): lax "
          "convolutions for every pass, scanned chunks of steps")

TABLE: dict[str, BackendChoices] = {"cpu": CPU, "gpu": ACCELERATOR, "tpu": ACCELERATOR}

_PRETENDED: list[str] = []


def name() -> str:
  """The backend the choices are read for: the innermost :func:`use`, else JAX's default."""
  return _PRETENDED[-1] if _PRETENDED else jax.default_backend()


_PLUGINS = (("jax_cuda12_plugin", "gpu"), ("jax_cuda13_plugin", "gpu"),
            ("jax_rocm60_plugin", "gpu"), ("jax_rocm7_plugin", "gpu"), ("libtpu", "tpu"))


def expected_backend() -> str:
  """The backend JAX will pick, found without starting it (so before XLA's threads exist):
  the first entry of ``JAX_PLATFORMS`` when set ("cuda"/"rocm" → "gpu"), else "gpu" or
  "tpu" when a JAX plugin for one is installed, else "cpu"."""
  platforms = os.environ.get("JAX_PLATFORMS", "").strip()
  if platforms:
    first = platforms.split(",")[0].strip().lower()
    return {"cuda": "gpu", "rocm": "gpu"}.get(first, first)
  for module, backend in _PLUGINS:
    if importlib.util.find_spec(module) is not None:
      return backend
  return "cpu"


def choices(backend: str) -> BackendChoices:
  """The row of ``backend`` (:data:`ACCELERATOR` for one the table does not list)."""
  return TABLE.get(backend, ACCELERATOR)


def current() -> BackendChoices:
  return choices(name())


@contextlib.contextmanager
def use(backend: str) -> Iterator[None]:
  """Read the choices of ``backend`` inside the block (tracing only: programs traced in it
  still compile and run for the real device).

  Raises:
    ValueError: ``backend`` is not a string.
  """
  if not isinstance(backend, str) or not backend:
    raise ValueError(f"backend must be a backend name such as 'cpu', 'gpu' or 'tpu', "
                     f"got {backend!r}")
  _PRETENDED.append(backend)
  try:
    yield
  finally:
    _PRETENDED.pop()


def per_batch_stepping(jit_per_batch: bool | None, is_conv_net: bool, backend: str) -> bool:
  """One jitted call per mini-batch (True) or scanned chunks: ``jit_per_batch`` if set,
  else the backend's choice for conv nets (other models always scan)."""
  if jit_per_batch is not None:
    return bool(jit_per_batch)
  return is_conv_net and choices(backend).conv_nets_per_batch


def batch_halves(*, is_conv_net: bool, batch_norm: bool, per_batch: bool, batch_size: int,
                 mesh_devices: int = 1, backend: str | None = None) -> bool:
  """Whether a training step computes its mini-batch as two halves side by side: a conv net
  without batch norm stepped one batch per call, a batch of at least 2, one device, on a
  backend that takes them (``batch_halves``; see the module docstring)."""
  row = choices(name() if backend is None else backend)
  return (row.batch_halves and is_conv_net and not batch_norm and per_batch
          and batch_size >= 2 and mesh_devices <= 1)


def patches_nested(channels: int, backend: str | None = None) -> bool:
  """Whether im2col stacks its KH·KW slices of an input with ``channels`` channels as KH
  stacks of KW slices each (True) rather than in one stack: the same array, built faster
  on the CPU from one channel (see the module docstring); backends without conv
  thresholds take one stack."""
  limits = choices(name() if backend is None else backend).conv
  return limits is not None and channels <= limits.patches_nested_max_input_channels


def conv2d_algorithm(w_shape: tuple[int, ...], out_hw: tuple[int, int],
                     backend: str | None = None, *, stride: tuple[int, int] = (1, 1),
                     in_hw: tuple[int, int] | None = None) -> str:
  """conv2d's automatic algorithm for a (KH, KW, C, F) kernel, an (OH, OW) output, a stride
  and an (H, W) input (None: unknown) on ``backend`` (None: :func:`name`). The CPU's rule,
  in order: C ≤
  im2col_max_input_channels → "shift_lax" if F ≤ narrow_lax_max_output_channels, else "shift" if
  KH·KW·C·F ≤ shift_forward_max_macs, else "im2col" if F ≤
  im2col_forward_max_output_channels, else "lax_im2col" if C ≤
  lax_forward_max_input_channels, else "shift"; OH·OW ≤ im2col_max_positions → "dense"
  if H·W ≤ dense_max_input_positions, else "im2col"; a 3×3 kernel at stride 1 with C ≥
  winograd_min_input_channels → "winograd" (when OH·OW ≤ winograd_small_map_positions
  only with C·F ≥ winograd_small_map_min_channel_product, else "lax"); KH·KW ≤
  matmul_kernel_grad_max_taps and OH·OW ≤ matmul_kernel_grad_max_positions →
  "lax_matmul_dw"; else "lax"."""
  row = choices(name() if backend is None else backend)
  if row.conv2d != "by_shape":
    return row.conv2d
  limits = row.conv
  kernel_hw, channels, filters = w_shape[:2], w_shape[2], w_shape[3]
  if channels <= limits.im2col_max_input_channels:
    if filters <= limits.narrow_lax_max_output_channels:
      return "shift_lax"
    if math.prod(w_shape) <= limits.shift_forward_max_macs:
      return "shift"
    if filters <= limits.im2col_forward_max_output_channels:
      return "im2col"
    if channels <= limits.lax_forward_max_input_channels:
      return "lax_im2col"
    return "shift"
  if math.prod(out_hw) <= limits.im2col_max_positions:
    if in_hw is not None and math.prod(in_hw) <= limits.dense_max_input_positions:
      return "dense"
    return "im2col"
  if tuple(kernel_hw) == (3, 3) and tuple(stride) == (1, 1):
    if channels >= limits.winograd_min_input_channels:
      small_map = math.prod(out_hw) <= limits.winograd_small_map_positions
      if small_map and channels * filters < limits.winograd_small_map_min_channel_product:
        return "lax"
      return "winograd"
  if (math.prod(kernel_hw) <= limits.matmul_kernel_grad_max_taps
      and math.prod(out_hw) <= limits.matmul_kernel_grad_max_positions):
    return "lax_matmul_dw"
  return "lax"


def pool_path(tiles: bool, backend: str | None = None) -> str:
  """The automatic pooling path: "blocks" when the windows tile the input and the backend
  takes the block path then, else "windows"."""
  row = choices(name() if backend is None else backend)
  return "blocks" if tiles and row.pool_blocks_when_tiling else "windows"


def describe(backend: str | None = None) -> dict[str, Any]:
  """The row of ``backend`` (None: :func:`name`) as plain JSON values, for a results file."""
  backend = name() if backend is None else backend
  row = dataclasses.asdict(choices(backend))
  return {"backend": backend, "listed": backend in TABLE, **row}


@contextlib.contextmanager
def replaced(backend: str, **changes: Any) -> Iterator[BackendChoices]:
  """``TABLE[backend]`` with ``changes`` (fields of :class:`BackendChoices`, or of its
  ``conv`` thresholds given as ``conv={...}``) inside the block; restored after. For
  benchmarks that sweep the thresholds.

  Raises:
    ValueError: an unknown field name.
  """
  before = TABLE.get(backend)
  base = choices(backend)
  conv: Mapping[str, int] | None = changes.pop("conv", None)
  fields = {f.name for f in dataclasses.fields(BackendChoices)}
  unknown = sorted(set(changes) - fields)
  if unknown:
    raise ValueError(f"unknown backend choice(s) {unknown}; the fields are {sorted(fields)}")
  if conv is not None:
    changes["conv"] = dataclasses.replace(base.conv or ConvThresholds(), **conv)
  row = dataclasses.replace(base, **changes)
  TABLE[backend] = row
  try:
    yield row
  finally:
    if before is None:
      del TABLE[backend]
    else:
      TABLE[backend] = before


THREAD_VARIABLES = ("PJRT_NPROC", "NPROC")  # XLA:CPU's thread-count variables, in its order


def _schedulable_cores() -> int:
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    return os.cpu_count() or 1


def cpu_worker_threads(device_count: int, environ: Mapping[str, str] | None = None) -> int:
  """XLA:CPU's worker threads in a process with ``device_count`` CPU devices:
  max(PJRT_NPROC, else NPROC, else the schedulable cores; ``device_count``)."""
  environ = os.environ if environ is None else environ
  threads = _schedulable_cores()
  for variable in THREAD_VARIABLES:
    text = environ.get(variable, "").strip()
    if text.isdigit():
      threads = int(text)
      break
  return max(threads, device_count)


def one_step_at_a_time(mesh_devices: int, backend: str | None = None) -> bool:
  """Whether an epoch over a mesh of ``mesh_devices`` waits for each step before the next."""
  return mesh_devices > 1 and choices(name() if backend is None else backend).mesh_one_step_at_a_time


def check_data_parallel(mesh_devices: int, what: str, *, backend: str | None = None,
                        threads: int | None = None) -> None:
  """Refuse a data-parallel mesh of ``mesh_devices`` local CPU devices that XLA:CPU cannot
  run: more devices than worker threads (``threads``; None: :func:`cpu_worker_threads` of
  this process), where the devices waiting at an all-reduce would hold every worker and
  the last device would find none (see the module docstring). Nothing on GPU/TPU.

  Raises:
    ValueError: ``mesh_devices`` > the worker threads; the message says what to change.
  """
  backend = jax.default_backend() if backend is None else backend
  if backend != "cpu" or mesh_devices <= 1:
    return
  threads = cpu_worker_threads(jax.local_device_count()) if threads is None else threads
  if mesh_devices <= threads:
    return
  raise ValueError(
      f"devices={mesh_devices} in {what}: data parallel over {mesh_devices} CPU devices needs "
      f"a XLA:CPU worker thread per device, but this process has {threads}: the devices "
      f"waiting at an all-reduce would hold every worker and XLA would abort after 40 s. "
      f"Use at most {threads} devices, or start the process with PJRT_NPROC={mesh_devices}")
