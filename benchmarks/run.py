"""``python -m benchmarks.run``: train-step throughput and per-op timings, one command.

For each model (by default the MNIST ones: Q4.4 MLP, Q5.3 CNN, Q5.4 CNN with BN and
dropout; the CIFAR-10 handout net Q6.1 and improved net Q6.2 with --models) it times,
interleaved round by round after warm-up, one SGD train step (batch 100, float32, random
data of the model's input shape: 28×28×1 or 32×32×3) of (a) the model on hw.ops with
hand-written VJPs, (b) the same layers through JAX autodiff of standard Flax/lax
primitives, (c) the same model in PyTorch on the CPU; then forward and forward+backward of
each op at the shapes those models use. Prints the tables and writes ``<out>/bench.md``,
``<out>/bench.json`` and the ratio chart ``<out>/bench_ratios.png``.

Examples:
  python -m benchmarks.run                        # the MNIST models (minutes; the last
                                                  # run's wall time is in docs/results/bench.md)
  python -m benchmarks.run --models q4_4,q5_3,q5_4,q6_1,q6_2   # what make bench runs
  python -m benchmarks.run --quick --models q4_4  # smoke test
  python -m benchmarks.report --from-json results/bench.json --out DIR   # re-render only
  python -m benchmarks.run --epoch                # also time one real epoch via hw.engine.experiment
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Sequence

import jax.numpy as jnp
import numpy as np

import experiments
from benchmarks import architectures as arch
from benchmarks import machine, models_torch, op_timings, report, roofline, timing
from benchmarks import models_autodiff as jax_models
from hw import backends
from hw.engine import host_memory

DEFAULT_MODELS = ("q4_4", "q5_3", "q5_4")
CIFAR_MODELS = ("q6_1", "q6_2")   # 32×32×3 inputs; not in the default run, make bench adds them


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                      help="comma-separated experiment ids (default: %(default)s; "
                           f"{','.join(CIFAR_MODELS)}: the CIFAR-10 nets); '' for none")
  parser.add_argument("--rounds", type=int, default=None,
                      help="interleaved rounds per model (default 10; 2 with --quick)")
  parser.add_argument("--op-rounds", type=int, default=None,
                      help="interleaved rounds per op case (default 7; 1 with --quick)")
  parser.add_argument("--seconds", type=float, default=None,
                      help="target wall time of one measurement of one train-step candidate "
                           "(default 0.3; 0.05 with --quick; per-op measurements a quarter)")
  parser.add_argument("--ops", default=",".join(op_timings.OPS),
                      help="comma-separated ops for the per-op table (default: %(default)s); "
                           "'' for none")
  parser.add_argument("--batch", type=int, default=100, help="batch size (default 100)")
  parser.add_argument("--quick", action="store_true", help="few, short rounds: a smoke test")
  parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
  parser.add_argument("--torch-threads", default=None,
                      help="comma-separated torch.set_num_threads settings, each measured; "
                           "the first is column c (default: the core count, then 1)")
  parser.add_argument("--jax-threads", type=int, default=None,
                      help="1: run XLA's CPU backend single-threaded (sets XLA_FLAGS before "
                           "JAX starts); default: XLA's own choice (all cores)")
  parser.add_argument("--epoch", action="store_true",
                      help="also train one real epoch per model with hw.engine.experiment "
                           "(needs HW_DATA_DIR or --data-dir)")
  parser.add_argument("--reproduce", action="store_true",
                      help="also time `hw reproduce --profile quick` (fresh, into a temporary "
                           "results folder; takes as long as the experiments do)")
  parser.add_argument("--data-dir", default=None, help="dataset folder for --epoch/--reproduce")
  parser.add_argument("--out", default="results", help="output folder (default: %(default)s)")
  args = parser.parse_args(argv)
  args.rounds = args.rounds or (2 if args.quick else 10)
  args.op_rounds = args.op_rounds or (1 if args.quick else 7)
  args.seconds = args.seconds or (0.05 if args.quick else 0.3)
  args.model_list = [m for m in args.models.split(",") if m]
  args.op_list = [o for o in args.ops.split(",") if o]
  unknown = set(args.op_list) - set(op_timings.OPS)
  if unknown:
    parser.error(f"--ops: unknown op(s) {sorted(unknown)}; choose from {op_timings.OPS}")
  if args.rounds < 1 or args.op_rounds < 1:
    parser.error("--rounds and --op-rounds must be >= 1")
  return args


def _stats(values: Sequence[float]) -> dict[str, float]:
  q1, median, q3 = timing.quartiles(values)
  return {"median": median, "q1": q1, "q3": q3}


def bench_model(architecture: arch.Architecture, images: np.ndarray, labels: np.ndarray, *,
                rounds: int, target_s: float, torch_threads: Sequence[int]) -> dict[str, Any]:
  """Interleaved train-step timings of (a), (b), (c) for one architecture."""
  x, y = jnp.asarray(images), jnp.asarray(labels)
  # same variables, same scores: (b) against hw.nn.models' (a), and (c) against (b)
  mirrors = [("the Flax layer list (b)", "hw.nn.models (a)", jax_models.mirror_error)]
  if torch_threads:
    mirrors.append(("the PyTorch layer list (c)", "(b)", models_torch.mirror_error))
  for what, reference, mirror_error in mirrors:
    error = mirror_error(architecture, images[:8], train=False)
    if not error < jax_models.MIRROR_TOLERANCE:
      raise RuntimeError(f"{architecture.name}: {what} computes other scores than {reference} "
                         f"(max |difference| {error:.3g}); fix benchmarks.architectures."
                         f"layers_from_module or the builder of {what}")
  trainers = {
      "a": jax_models.JaxTrainer(architecture.module, jax_models.hw_loss, x, y,
                                 halves=architecture.batch_halves),
      "b": jax_models.JaxTrainer(jax_models.AutodiffNet(tuple(architecture.layers)),
                                 jax_models.autodiff_loss, x, y,
                                 halves=architecture.batch_halves),
  }
  for i, threads in enumerate(torch_threads):
    trainers["c" if i == 0 else f"c{threads}t"] = models_torch.TorchTrainer(
        architecture.layers, images, labels, threads=threads)
  num_params = {k: t.num_params for k, t in trainers.items()}
  if len(set(num_params.values())) != 1:
    raise RuntimeError(f"{architecture.name}: the implementations disagree on the parameter "
                       f"count {num_params}; the layer list does not mirror hw.nn.models")
  cpu: dict[str, list[float]] = {}
  times = timing.interleaved({k: t.run for k, t in trainers.items()}, rounds=rounds,
                             target_s=target_s, cpu_times=cpu)
  batch = images.shape[0]
  throughput = {k: [batch / s for s in v] for k, v in times.items()}
  ratios = {}
  for other in throughput:
    if other != "a":
      ratios[f"a/{other}"] = _stats(timing.ratio_per_round(throughput["a"], throughput[other]))
  torch_keys = [k for k in throughput if k.startswith("c")]
  if len(torch_keys) > 1:   # against the faster PyTorch setting of each round
    best = [max(values) for values in zip(*(throughput[k] for k in torch_keys))]
    ratios["a/c*"] = _stats(timing.ratio_per_round(throughput["a"], best))
  step_ms = {k: timing.quartiles(v)[1] * 1e3 for k, v in times.items()}
  cpu_ratios = {}
  for other in cpu:
    if other != "a":
      cpu_ratios[f"a/{other}"] = _stats(timing.ratio_per_round(cpu[other], cpu["a"]))
  return {
      "name": architecture.name, "title": architecture.title,
      "layers": arch.describe(architecture.layers),
      "a_impl": f"hw.nn.models.create_model({architecture.model!r})",
      "has_conv": any(isinstance(l, arch.Conv) for l in architecture.layers),
      "num_params": num_params,
      "images_per_s": {k: _stats(v) for k, v in throughput.items()},
      "images_per_s_rounds": throughput,
      "ratios": ratios, "step_ms": step_ms,
      "cpu_ms_per_step": {k: timing.quartiles(v)[1] * 1e3 for k, v in cpu.items()},
      "cpu_ratios": cpu_ratios,
      "epoch_images": architecture.epoch_images,
      "train_flops": roofline.train_step_flops(architecture, batch),
      "epoch_s_estimate": {k: ms * 1e-3 * architecture.epoch_images / batch
                           for k, ms in step_ms.items()},
      "final_loss": {k: t.last_loss for k, t in trainers.items()},
      "batch_halves": architecture.batch_halves,
  }


def measure_epoch(name: str, data_dir: str | None) -> dict[str, Any]:
  """Train experiment ``name`` for one epoch on real data with hw.engine.experiment (no grid)."""
  from hw.engine import experiment  # only --epoch needs the trainer
  config = experiments.get_config(name, "full")
  data_dir = data_dir or os.environ.get("HW_DATA_DIR")
  if not data_dir:
    return {"name": name, "text": "not measured: no data folder (set HW_DATA_DIR or --data-dir)"}
  config = config.replace(epochs=1, grid={})
  with tempfile.TemporaryDirectory(prefix="hw-bench-epoch-") as workdir:
    began = time.perf_counter()
    result = experiment.train_and_evaluate(config, workdir, data_dir=data_dir, plot=False)
    wall = time.perf_counter() - began
  epoch_s = result["grid"][0]["history"][0]["seconds"]
  return {"name": name, "epoch_s": epoch_s, "wall_s": wall,
          "text": f"{epoch_s:.1f} s for epoch 1 (incl. jit compilation and the "
                  f"validation pass; model {config.model} {dict(config.model_kwargs)}, "
                  f"optimizer {config.optimizer}); {wall:.1f} s for the whole call incl. data "
                  f"loading and the test evaluation"}


def time_reproduce(data_dir: str | None) -> dict[str, Any]:
  """Wall time of a fresh ``hw reproduce --profile quick`` in a subprocess."""
  with tempfile.TemporaryDirectory(prefix="hw-bench-reproduce-") as results_dir:
    command = [sys.executable, "-m", "experiments", "reproduce", "--profile", "quick",
               "--results-dir", results_dir]
    if data_dir:
      command += ["--data-dir", data_dir]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - began
  text = f"`hw reproduce --profile quick`: {wall:.0f} s wall, exit code {done.returncode}"
  if done.returncode:
    text += f" (last output: {(done.stderr or done.stdout).strip().splitlines()[-1:]})"
  return {"wall_s": wall, "returncode": done.returncode, "text": text}


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(argv)
  if args.jax_threads is not None:
    if args.jax_threads != 1:
      raise SystemExit("--jax-threads: only 1 is supported (XLA has no other simple switch)")
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_cpu_multi_thread_eigen=false"
                               " intra_op_parallelism_threads=1").strip()
  began = time.perf_counter()
  # as the hw command does on the CPU, before XLA starts; one process: a, b and c alike
  kept = host_memory.keep_freed_memory_on(backends.expected_backend())
  facts = machine.facts()
  facts["keep_freed_memory"] = kept
  use_torch = models_torch.available() and not args.no_torch
  torch_threads = models_torch.thread_settings(args.torch_threads) if use_torch else []
  if not use_torch:
    print("[bench] PyTorch column skipped: " +
          ("--no-torch" if args.no_torch else "torch is not installed (make bench installs it)"),
          file=sys.stderr)
  architectures = [arch.load(name) for name in args.model_list]
  print("[bench] float32 matmul peak (roofline column)", file=sys.stderr)
  peak = roofline.measure_peak(rounds=args.rounds, target_s=args.seconds,
                               with_torch=bool(torch_threads))

  models = []
  for architecture in architectures:
    print(f"[bench] {architecture.name}: {arch.describe(architecture.layers)}", file=sys.stderr)
    rng = np.random.default_rng(0)
    images = rng.random((args.batch, *architecture.image_shape), dtype=np.float32)
    labels = rng.integers(0, arch.NUM_CLASSES, args.batch).astype(np.int32)
    models.append(bench_model(architecture, images, labels, rounds=args.rounds,
                              target_s=args.seconds, torch_threads=torch_threads))

  ops = []
  if args.op_list:
    for case in op_timings.cases_for(architectures, batch=args.batch, ops=args.op_list):
      if not use_torch:
        case.torch_impl = None
      case.torch_threads = torch_threads
      print(f"[bench] op {case.op} {case.shape}", file=sys.stderr)
      ops.append(op_timings.measure(case, rounds=args.op_rounds, target_s=args.seconds / 4))

  epochs = [measure_epoch(name, args.data_dir) for name in args.model_list] if args.epoch else []
  reproduce = time_reproduce(args.data_dir) if args.reproduce else None

  shapes = ", ".join(dict.fromkeys("×".join(map(str, a.image_shape)) for a in architectures))
  halved = ", ".join(a.name for a in architectures if a.batch_halves) or "no model here"
  settings = (f"Settings: batch {args.batch}, float32, random data of each model's input "
              f"shape ({shapes or 'none'}; one fixed batch), plain SGD (lr 1e-3) in all "
              f"three; {args.rounds} interleaved rounds per "
              f"model (order rotated each round) after warm-up, ~{args.seconds:g} s per "
              f"measurement; per-op: {args.op_rounds} rounds. JAX steps are one jitted call "
              f"(donated state); for {halved}, a and b compute the gradients of the two "
              f"halves of the batch as two jitted calls side by side (one on a worker "
              f"thread), then one jitted update of their sum, as the training engine "
              f"steps these nets on this backend (hw.backends, 'batch halves'). PyTorch "
              f"is eager, NCHW. Freed host memory kept for reuse "
              f"(hw.engine.host_memory, as the training engine on the CPU; one process, so "
              f"for a, b and c alike): "
              f"{'yes' if facts['keep_freed_memory'] else 'no (not the CPU, or not glibc)'}"
              f".")
  load_start = facts["load_average_at_start"]
  noise = None
  if load_start and facts["cpu_count"] and load_start[0] > facts["cpu_count"]:
    noise = (f"**Noise warning:** the load average ({load_start[0]:.1f}) exceeded the core "
             f"count ({facts['cpu_count']}) when this run started: other processes shared "
             f"the CPU, so absolute numbers are low and noisy; the per-round ratios are the "
             f"more reliable figures.")
  result = {
      "command": "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv),
      "machine": facts, "torch_threads": torch_threads,
      "settings_text": settings, "noise_note": noise,
      "models": models, "ops": ops, "epochs": epochs, "reproduce": reproduce,
      "peak": peak,
      "targets": report.targets(models),
      "conv_op_target": report.conv_op_target(ops),
      "load_average_at_end": machine.load_average(),
      "wall_s": time.perf_counter() - began,
  }
  report.print_console(result)
  paths = [path for path in report.write(result, args.out) if path]
  print(f"\n[bench] wrote {', '.join(paths)} ({result['wall_s']:.0f} s)", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
