"""The benchmark report: console/markdown tables, the ratio chart, targets and the analysis
of misses.

``python -m benchmarks.report --from-json results/bench.json --out DIR`` draws the report
and the chart again from a saved ``bench.json``, without measuring anything.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

import numpy as np

from benchmarks import roofline
from hw import plotting

IMPLS = {"a": "hw.ops (hand-written VJPs)", "b": "JAX autodiff (flax.linen/lax)",
         "c": "PyTorch CPU (eager), torch.set_num_threads(core count)",
         "c1t": "the same PyTorch model with one thread",
         "c*": "the faster of the PyTorch settings in each round (the conservative comparison)"}
MODEL_COLUMNS = ["model", "a img/s", "b img/s", "c img/s", "c1t img/s", "a/b [IQR]",
                 "a/c [IQR]", "a/c* [IQR]", "epoch s a", "epoch s b", "epoch s c*",
                 "a GFLOP/s (% peak)", "c GFLOP/s (% peak)"]
# The second jit of a conv case's autodiff program (benchmarks.op_timings): a tie by construction.
SELF_CONTROL = "autodiff_again"
OP_COLUMNS = ["op", "shape", "models", "hw fwd", "hw bwd", "hw f+b", "autodiff f+b",
              "torch f+b", "autodiff/hw", "autodiff/itself", "torch/hw", "hw GFLOP/s (% peak)"]
TARGET_AB, TARGET_AC, STRETCH_AC = 1.0, 1.0, 1.5


def _fmt(value: float | None, digits: int = 0) -> str:
  if value is None:
    return "–"
  return f"{value:,.{digits}f}"


def _ratio(stats: dict[str, float] | None) -> str:
  if not stats:
    return "–"
  return f"{stats['median']:.2f} [{stats['q1']:.2f}–{stats['q3']:.2f}]"


def _load(values) -> str:
  return "/".join(f"{v:.1f}" for v in values) if values else "unknown"


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines)


def _roofline(flops: float | None, ms: float | None, peak: dict[str, Any] | None) -> str:
  """'GFLOP/s (percent of the peak)' of ``flops`` in ``ms`` milliseconds; – where unknown."""
  gflops, fraction = roofline.rate(flops, None if ms is None else ms * 1e-3,
                                   (peak or {}).get("peak_gflops"))
  if gflops is None:
    return "–"
  return f"{gflops:.0f}" + ("" if fraction is None else f" ({100 * fraction:.0f}%)")


def model_rows(models: Sequence[dict[str, Any]],
               peak: dict[str, Any] | None = None) -> list[list[str]]:
  rows = []
  for m in models:
    ips, epoch = m["images_per_s"], m["epoch_s_estimate"]
    torch_epochs = [v for k, v in epoch.items() if k.startswith("c")]
    rows.append([m["name"]] + [_fmt(ips.get(k, {}).get("median")) for k in ("a", "b", "c", "c1t")]
                + [_ratio(m["ratios"].get(k)) for k in ("a/b", "a/c", "a/c*")]
                + [_fmt(epoch.get(k), 1) for k in "ab"]
                + [_fmt(min(torch_epochs) if torch_epochs else None, 1)]
                + [_roofline(m.get("train_flops"), m["step_ms"].get(k), peak)
                   for k in ("a", "c")])
  return rows


CPU_COLUMNS = ["model", "a cpu-ms/step", "b cpu-ms/step", "c cpu-ms/step", "c1t cpu-ms/step",
               "a/b [IQR]", "a/c [IQR]", "a/c1t [IQR]"]


def cpu_rows(models: Sequence[dict[str, Any]]) -> list[list[str]]:
  rows = []
  for m in models:
    cpu = m.get("cpu_ms_per_step", {})
    rows.append([m["name"]] + [_fmt(cpu.get(k), 2) for k in ("a", "b", "c", "c1t")]
                + [_ratio(m.get("cpu_ratios", {}).get(k)) for k in ("a/b", "a/c", "a/c1t")])
  return rows


def op_rows(ops: Sequence[dict[str, Any]],
            peak: dict[str, Any] | None = None) -> list[list[str]]:
  rows = []
  for o in ops:
    impls, speed = o["impls"], o["speedup_of_hw_fb"]
    hw = impls["hw"]
    rows.append([o["op"], o["shape"], ",".join(o["models"]),
                 _fmt(hw["fwd_ms"], 3), _fmt(hw["bwd_ms"], 3), _fmt(hw["fb_ms"], 3),
                 _fmt(impls.get("autodiff", {}).get("fb_ms"), 3),
                 _fmt(impls.get("torch", {}).get("fb_ms"), 3),
                 _ratio(speed.get("autodiff")), _ratio(o.get("autodiff_self")),
                 _ratio(speed.get("torch")),
                 _roofline(o.get("flops"), hw["fb_ms"], peak)])
  return rows


def alternative_rows(ops: Sequence[dict[str, Any]]) -> list[list[str]]:
  """Extra JAX variants measured for some ops (e.g. max_pool as reshape + max)."""
  rows = []
  for o in ops:
    for name, values in o["impls"].items():
      if name in ("hw", "autodiff", SELF_CONTROL) or name.startswith("torch"):
        continue
      rows.append([o["op"], o["shape"], name, _fmt(values["fwd_ms"], 3),
                   _fmt(values["bwd_ms"], 3), _fmt(values["fb_ms"], 3),
                   _fmt(o["impls"]["hw"]["fb_ms"], 3),
                   _fmt(o["impls"]["autodiff"]["fb_ms"], 3)])
  return rows


def targets(models: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
  """Each target with its measured median ratio and whether it is met."""
  out = []
  for m in models:
    checks = [("a/b", TARGET_AB)]
    if m["has_conv"]:
      checks.append(("a/c*" if "a/c*" in m["ratios"] else "a/c", TARGET_AC))
    for key, goal in checks:
      stats = m["ratios"].get(key)
      if stats is None:
        out.append({"model": m["name"], "ratio": key, "target": goal, "median": None,
                    "met": None})
        continue
      entry = {"model": m["name"], "ratio": key, "target": goal, "median": stats["median"],
               "met": stats["median"] >= goal}
      if key.startswith("a/c"):
        entry["stretch_met"] = stats["median"] >= STRETCH_AC
      out.append(entry)
  return out


def conv_op_target(ops: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
  """hw.ops.conv2d's automatic choice against autodiff of ``lax.conv``, layer by layer:
  a layer counts as slower only when its whole IQR of per-round ratios (autodiff/hw f+b)
  lies below 1 and below the IQR of autodiff timed against a second jit of itself (the
  spread of a tie, ``autodiff_self``, when measured); otherwise it is a tie within the
  measurement's spread. None when no conv2d case was measured."""
  layers = [o for o in ops if o["op"] == "conv2d" and "autodiff" in o["speedup_of_hw_fb"]]
  if not layers:
    return None

  def bound(o):
    return min(1.0, o["autodiff_self"]["q1"]) if "autodiff_self" in o else 1.0

  slower = [{"shape": o["shape"], **o["speedup_of_hw_fb"]["autodiff"]} for o in layers
            if o["speedup_of_hw_fb"]["autodiff"]["q3"] < bound(o)]
  target = {"layers": len(layers), "slower": slower, "met": not slower}
  selves = [o["autodiff_self"] for o in layers if "autodiff_self" in o]
  if selves:
    target["self_spread"] = [min(t["q1"] for t in selves), max(t["q3"] for t in selves)]
  return target


def _op_target_lines(target: dict[str, Any] | None) -> list[str]:
  if target is None:
    return []
  head = ("- conv2d per op, autodiff/hw f+b ≥ 1 on every layer (slower only where the whole "
          "IQR is below 1")
  if "self_spread" in target:
    low, high = target["self_spread"]
    head += (" and below that layer's IQR of autodiff against a second jit of itself, "
             f"{low:.2f}–{high:.2f} over the layers")
  head += "): "
  if target["met"]:
    return [head + f"**met** on all {target['layers']} layers"]
  slower = "; ".join(f"{t['shape']} {_ratio(t)}" for t in target["slower"])
  return [head + f"**missed** on {len(target['slower'])} of {target['layers']} layers: {slower}"]


def _target_lines(checks: Sequence[dict[str, Any]]) -> list[str]:
  lines = []
  for t in checks:
    if t["median"] is None:
      lines.append(f"- {t['model']} {t['ratio']} ≥ {t['target']:g}: not measured")
      continue
    if t["met"]:
      extra = ""
      if "stretch_met" in t:
        extra = " (stretch 1.5 met)" if t["stretch_met"] else " (stretch 1.5 not met)"
      lines.append(f"- {t['model']} {t['ratio']} ≥ {t['target']:g}: **met**, "
                   f"median {t['median']:.2f}{extra}")
    else:
      short = (1 - t["median"] / t["target"]) * 100
      lines.append(f"- {t['model']} {t['ratio']} ≥ {t['target']:g}: **missed** by {short:.0f}% "
                   f"(median {t['median']:.2f})")
  return lines


def _noise_flag(stats: dict[str, float] | None) -> str:
  if stats and stats["q1"] <= 1.0 <= stats["q3"]:
    return " — within noise (the IQR of the per-round ratio includes 1)"
  return ""


def analysis(models: Sequence[dict[str, Any]], ops: Sequence[dict[str, Any]]) -> list[str]:
  """Per model: the ops of that model ranked by how much slower hw.ops' f+b is than the
  faster of autodiff/torch (times the number of times the op occurs), with the op budget."""
  lines = []
  for m in models:
    model_ops = [o for o in ops if m["name"] in o["models"]]
    if not model_ops:
      continue
    step_ms = m["step_ms"].get("a")
    total_hw = sum(o["impls"]["hw"]["fb_ms"] for o in model_ops)
    lines.append(f"**{m['name']}** (step a = {_fmt(step_ms, 2)} ms; the listed ops' hw f+b "
                 f"sum to {total_hw:.2f} ms; ops where hw.ops is slower than an alternative, "
                 f"largest gap first):")
    gaps = []
    for o in model_ops:
      hw = o["impls"]["hw"]
      for other in ("autodiff", "torch"):
        if other in o["impls"]:
          gaps.append((hw["fb_ms"] - o["impls"][other]["fb_ms"], o, other))
    gaps.sort(key=lambda g: -g[0])
    slower = [g for g in gaps if g[0] > 0]
    if not slower:
      lines.append("- hw.ops is at least as fast as autodiff and torch on every op of it.")
    for gap, o, other in slower[:4]:
      hw, alt = o["impls"]["hw"], o["impls"][other]
      lines.append(
          f"- {o['op']} ({o['shape']}): hw f+b {hw['fb_ms']:.3f} ms (fwd {hw['fwd_ms']:.3f}, "
          f"bwd {hw['bwd_ms']:.3f}; CPU {_fmt(hw.get('fb_cpu_ms'), 3)}) vs {other} "
          f"{alt['fb_ms']:.3f} ms (fwd {alt['fwd_ms']:.3f}, bwd {alt['bwd_ms']:.3f}; CPU "
          f"{_fmt(alt.get('fb_cpu_ms'), 3)}): +{gap:.3f} ms per step"
          + _noise_flag(o["speedup_of_hw_fb"].get(other)))
    lines.append("")
  return lines


def _peak_text(peak: dict[str, Any] | None) -> str:
  if not peak:
    return "Roofline: no peak measured."
  rates = ", ".join(f"{name} {value:.0f}" for name, value in peak["gflops"].items())
  return (f"Roofline: GFLOP/s are nominal (direct convolution and matmul arithmetic of the "
          f"forward pass, dW and dX — no dX for the first layer; pooling, batch norm, "
          f"dropout and the loss left out), divided by the median step time; % peak is that "
          f"rate over this run's float32 matmul peak, {peak['peak_gflops']:.0f} GFLOP/s "
          f"(a {peak['size']}² matmul, interleaved: {rates} GFLOP/s). A path doing less "
          f"arithmetic than the direct sum (Winograd on 3×3 layers) can exceed 100%.")


def render_markdown(result: dict[str, Any]) -> str:
  facts, models, ops = result["machine"], result["models"], result["ops"]
  lines = ["# Benchmarks: hand-written VJPs vs JAX autodiff vs PyTorch (CPU)", ""]
  lines.append(f"Command: `{result['command']}`  ")
  lines.append(f"Date (UTC): {facts['date_utc']}; wall time {result['wall_s']:.0f} s  ")
  lines.append(f"CPU: {facts['cpu_model']}, {facts['cpu_count']} cores; load average (1/5/15 min) "
               f"at start {_load(facts['load_average_at_start'])}, at end "
               f"{_load(result.get('load_average_at_end'))}  ")
  lines.append(f"Software: Python {facts['python']}, jax {facts['jax']} (jaxlib {facts['jaxlib']}, "
               f"backend {facts['jax_backend']}), flax {facts['flax']}, optax {facts['optax']}, "
               f"torch {facts['torch'] or 'not installed'} (threads {result.get('torch_threads')})  ")
  lines.append("")
  lines.append(result["settings_text"])
  lines.append("")
  if result.get("noise_note"):
    lines += [result["noise_note"], ""]
  if models:
    lines += ["## Train-step throughput (images/s, median over rounds)", ""]
    lines += [f"- **{k}**: {v}" for k, v in IMPLS.items()]
    lines.append("")
    lines.append(markdown_table(MODEL_COLUMNS, model_rows(models, result.get("peak"))))
    lines += ["", _peak_text(result.get("peak")), "", "Ratios are medians of per-round ratios (each round times a, b, c back to "
              "back), with the interquartile range. Epoch seconds are estimated as (training "
              "images per epoch / batch) × the median step time (MNIST: 54,000 images, 540 "
              "steps of 100; CIFAR-10: 45,000 images, 450 steps). The a/c target is "
              "judged on a/c* (against the faster PyTorch thread setting).", ""]
    if result.get("chart"):
      lines += [f"![a/b and a/c* ratios per model, medians with IQR bars; 1.0 = parity]"
                f"({result['chart']})", ""]
    lines += ["CPU time per step (all threads of the process; median), and speed ratios on "
              "that basis (a/b = CPU time of b / CPU time of a, per round). On a shared "
              "machine this is steadier than wall time, but it counts spin-waiting threads "
              "(PyTorch's OpenMP pool) as work:", ""]
    lines.append(markdown_table(CPU_COLUMNS, cpu_rows(models)))
    lines.append("")
    lines += ["Architectures:", ""]
    for m in models:
      params = ", ".join(f"{k} {v:,}" for k, v in m["num_params"].items())
      halves = "; a and b as two half-batch steps side by side" if m.get("batch_halves") else ""
      lines.append(f"- {m['name']}: {m['title']} — `{m['layers']}` (from experiments/"
                   f"{m['name']}.py, profile full; (a) = {m['a_impl']}{halves}; "
                   f"parameters {params})")
    lines += ["", "## Targets", ""]
    lines += _target_lines(targets(models))
    lines += _op_target_lines(conv_op_target(ops))
    lines.append("")
  if result.get("epochs"):
    lines += ["## Measured epochs (hw.engine.experiment on real data)", ""]
    for e in result["epochs"]:
      lines.append(f"- {e['name']}: {e['text']}")
    lines.append("")
  if result.get("reproduce"):
    lines += ["## Whole reproduction", "", "- " + result["reproduce"]["text"], ""]
  if ops:
    lines += ["## Per-op forward + backward (ms per call, median)", ""]
    lines.append("f+b: one jitted call returning the output and the input gradients for a "
                 "fixed cotangent; bwd = f+b − fwd. Ratios > 1: hw.ops is faster "
                 "(median of per-round ratios of f+b times, [IQR]). autodiff/itself: "
                 "the autodiff program against a second jit of itself, a tie by "
                 "construction (conv2d only): how far the measurement alone spreads.")
    lines.append("")
    lines.append(markdown_table(OP_COLUMNS, op_rows(ops, result.get("peak"))))
    alternatives = alternative_rows(ops)
    if alternatives:
      lines += ["", "Other JAX formulations (autodiff):", ""]
      lines.append(markdown_table(["op", "shape", "variant", "fwd", "bwd", "f+b", "hw f+b",
                                  "autodiff f+b"], alternatives))
    lines += ["", "## Where the time goes", ""]
    lines += analysis(models, ops)
  return "\n".join(lines).rstrip() + "\n"


def print_console(result: dict[str, Any]) -> None:
  if result["models"]:
    print(markdown_table(MODEL_COLUMNS, model_rows(result["models"], result.get("peak"))))
    print()
    print("\n".join(_target_lines(targets(result["models"]))
                    + _op_target_lines(conv_op_target(result["ops"]))))
  if result["ops"]:
    print()
    print(markdown_table(OP_COLUMNS, op_rows(result["ops"], result.get("peak"))))


CHART = "bench_ratios.png"
# (ratio key, legend label); a/c* falls back to a/c when one PyTorch setting was measured
CHART_RATIOS = (("a/b", "JAX autodiff", "a/b: hw.ops vs JAX autodiff"),
                ("a/c*", "PyTorch",
                 "a/c*: hw.ops vs PyTorch (its faster thread setting in each round)"))


def _chart_stats(model: dict[str, Any], key: str) -> dict[str, float] | None:
  ratios = model["ratios"]
  return ratios.get(key) or (ratios.get("a/c") if key == "a/c*" else None)


def ratio_figure(result: dict[str, Any]):
  """Grouped bars per model: the median a/b and a/c* ratios with their interquartile range
  as error bars, a dashed line at 1.0 (parity) and the legend under the axes; None when no
  model has a ratio."""
  models = result["models"]
  series = [(key, [_chart_stats(m, key) for m in models], label)
            for key, _, label in CHART_RATIOS]
  series = [entry for entry in series if any(entry[1])]
  if not series:
    return None
  plt = plotting.pyplot()
  fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(models) + 2), 4))
  width = 0.8 / len(series)
  top = 1.0
  for index, (key, stats, label) in enumerate(series):
    centres = np.arange(len(models)) + (index - (len(series) - 1) / 2) * width
    drawn = [(x, s) for x, s in zip(centres, stats) if s]
    median = np.array([s["median"] for _, s in drawn])
    spread = np.array([[s["median"] - s["q1"] for _, s in drawn],
                       [s["q3"] - s["median"] for _, s in drawn]])
    ax.bar([x for x, _ in drawn], median, width, yerr=spread, capsize=3, label=label,
           color=f"C{index}")
    for x, s in drawn:   # the median above the whisker
      ax.annotate(f"{s['median']:.2f}", (x, s["q3"]), xytext=(0, 3),
                  textcoords="offset points", ha="center", fontsize=7)
      top = max(top, s["q3"])
  ax.axhline(1.0, color="k", ls="--", lw=1, label="1.0 = parity (above: hw.ops faster)")
  ax.set_xticks(np.arange(len(models)), [m["name"] for m in models])
  ax.set_ylim(0, top * 1.15)
  ax.set_ylabel("train-step speed ratio\n(median of per-round ratios, IQR)")
  against = " and ".join(name for key, name, _ in CHART_RATIOS
                         if key in {entry[0] for entry in series})
  ax.set_title(f"hw.ops against {against} on the CPU "
               f"({result['machine'].get('date_utc', '?')[:10]})", fontsize=9)
  ax.grid(axis="y", alpha=0.3)
  plotting.legend_below(ax, columns=1, offset=0.12)
  fig.tight_layout()
  return fig


def write(result: dict[str, Any], out_dir: str) -> tuple[str, str, str | None]:
  """``<out_dir>/bench.md``, ``bench.json`` and the chart ``bench_ratios.png`` (when a model
  was measured; then bench.json's "chart" names it). Returns the three paths (None for no
  chart)."""
  os.makedirs(out_dir, exist_ok=True)
  md_path, json_path = os.path.join(out_dir, "bench.md"), os.path.join(out_dir, "bench.json")
  fig = ratio_figure(result)
  chart_path = None if fig is None else str(plotting.save(fig, os.path.join(out_dir, CHART),
                                                          dpi=110))
  result = {**result, "chart": None if chart_path is None else CHART}
  with open(md_path, "w") as f:
    f.write(render_markdown(result))
  with open(json_path, "w") as f:
    json.dump(result, f, indent=1, default=str)
  return md_path, json_path, chart_path


def main(argv: Sequence[str] | None = None) -> int:
  """``python -m benchmarks.report --from-json PATH --out DIR``: the report and the chart of
  a saved run, drawn again (nothing is measured)."""
  parser = argparse.ArgumentParser(prog="python -m benchmarks.report",
                                   description=main.__doc__.splitlines()[0])
  parser.add_argument("--from-json", required=True, metavar="PATH",
                      help="a bench.json written by python -m benchmarks.run")
  parser.add_argument("--out", required=True, metavar="DIR",
                      help="folder for bench.md, bench.json and bench_ratios.png")
  args = parser.parse_args(argv)
  with open(args.from_json) as f:
    result = json.load(f)
  paths = [p for p in write(result, args.out) if p]
  print("wrote " + ", ".join(paths), file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
