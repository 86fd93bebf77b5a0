"""The Q7 study's report: its headline and its paragraphs, one per part, every number
from the run's results."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from experiments.studies import _runs
from experiments.studies._runs import percent
from experiments.studies.q7.depth import layer_gain
from experiments.studies.q7.shared import SATURATED


def headline(results: dict[str, Any]) -> str:
  deep = results["sigmoid_vs_relu"]
  rules = results["dropout"]["rules"]
  return (f"sigmoid {percent(deep['sigmoid']['test_accuracy'])} vs ReLU "
          f"{percent(deep['relu']['test_accuracy'])}; dropout rules "
          f"{percent(rules['inverted']['accuracy'])} / {percent(rules['masks_on']['accuracy'])} / "
          f"{percent(rules['no_rescale']['accuracy'])}")


def summary(results: dict[str, Any]) -> list[str]:
  return [*_deep_text(results["sigmoid_vs_relu"]), "", *_dropout_text(results["dropout"]), "",
          *_rates_text(results["learning_rate"])]


def _deep_text(deep: dict[str, Any]) -> list[str]:
  sig, relu = deep["sigmoid"], deep["relu"]
  hidden = sig["config"]["model_kwargs"]["hidden_sizes"]
  s0, r0, s_end = sig["probes"][0], relu["probes"][0], sig["probes"][-1]
  ratio = lambda p: p["grad_norm"][0] / p["grad_norm"][-1]
  product = float(np.prod(s0["mean_derivative"]))
  epochs = sig["config"]["epochs"]
  outcome = lambda run: (f"{run['initial']['val_loss']:.2f} → {run['history'][-1]['train_loss']:.3f}, "
                         f"test accuracy {percent(run['test_accuracy'])}")
  text = (
      f"**1. Why deep sigmoid networks train badly.** The same MLP with {len(hidden)} hidden "
      f"layers of {hidden[0]} units, trained {epochs} epochs with SGD (momentum 0.9, lr "
      f"{sig['config']['learning_rate']:g}, LeCun-normal init). Loss: ReLU {outcome(relu)}; "
      f"sigmoid {outcome(sig)} (chance: ln 10 = {math.log(10):.3f}, 10%). The backward pass "
      f"shows why. At initialisation the gradient of the first layer's weights is "
      f"{ratio(s0):.1e} of the output layer's in the sigmoid net, against {ratio(r0):.1f} in "
      f"the ReLU net, and after training it is still {ratio(s_end):.1e}: the first layers do "
      f"not learn. Every sigmoid layer multiplies the backward signal by σ'(z) = σ(1 − σ) ≤ "
      f"1/4; here the mean σ' per layer is {min(s0['mean_derivative']):.3f}–"
      f"{max(s0['mean_derivative']):.3f}, and their product over the {len(hidden)} layers, "
      f"{product:.1e}, accounts for the measured {ratio(s0):.1e}. That is not saturation: at "
      f"this initialisation at most {percent(max(s0['saturated']))} of a layer's units are "
      f"saturated (σ < {SATURATED} or > {1 - SATURATED}; "
      f"{percent(max(s_end['saturated']))} after training). The ReLU's derivative is 1 on "
      f"active units ({percent(min(r0['mean_derivative']))}–"
      f"{percent(max(r0['mean_derivative']))} of them), so the signal keeps its size.")
  large = deep.get("sigmoid_large_init")
  if large is not None:
    l0 = large["probes"][0]
    learns = large["test_accuracy"] > sig["test_accuracy"] + 0.05
    text += (
        f" Saturation is what larger weights add: with {large['weight_init']} weights, "
        f"{percent(min(l0['saturated']))}–{percent(max(l0['saturated']))} of the units per "
        f"layer are saturated at initialisation and the mean σ' drops to "
        f"{min(l0['mean_derivative']):.3f}–{max(l0['mean_derivative']):.3f}; "
        + (f"yet the weights, √{hidden[0]} ≈ {math.sqrt(hidden[0]):.0f}× LeCun's, multiply "
           f"the backward signal as well, so the gradient shrinks by {layer_gain(l0):.2f} per "
           f"layer instead of {layer_gain(s0):.2f} (ReLU: {layer_gain(r0):.2f}), the first "
           f"layer gets {ratio(l0):.1e} of the output layer's gradient, and this net does "
           f"learn, from a huge initial loss (saturated logits): {outcome(large)}. Saturation "
           f"costs gradient, but what decides is the gain σ'·‖W‖ of each layer, which the "
           f"sigmoid's σ' ≤ 1/4 keeps small at the initialisation that suits ReLU nets."
           if learns else
           f"the first layer gets {ratio(l0):.1e} of the output layer's gradient (a factor "
           f"{layer_gain(l0):.2f} per layer; LeCun sigmoid {layer_gain(s0):.2f}, ReLU "
           f"{layer_gain(r0):.2f}), and training goes {outcome(large)}."))
  text += (
      f" The sigmoid's outputs are also not centred (mean {min(s0['mean_output']):.2f}–"
      f"{max(s0['mean_output']):.2f} per layer): the gradient of a weight into unit j, "
      f"δ_j h_i with every h_i > 0, has the sign of δ_j for all i, so the weights into one "
      f"unit can only all rise or all fall in a step, and the next layer's pre-activations "
      f"start off-centre.")
  return [text]


def _percent_change(value: float, reference: float) -> str:
  change = 100 * (value / reference - 1)
  return f"{abs(change):.0f}% {'above' if change >= 0 else 'below'}"


def _dropout_text(drop: dict[str, Any]) -> list[str]:
  rules, p = drop["rules"], drop["rate"]
  inv, on, avg, raw = (rules[k] for k in ("inverted", "masks_on", "masks_averaged", "no_rescale"))
  hidden = drop["config"]["model_kwargs"]["hidden_sizes"]
  ratios = ", ".join(f"{r / i:.2f}×" for r, i in zip(raw["mean_activation"], inv["mean_activation"]))
  means = lambda rule: ", ".join(f"{v:.3f}" for v in rule["mean_activation"])
  first_match = abs(on["mean_activation"][0] - inv["mean_activation"][0]) <= 0.02 * abs(
      on["mean_activation"][0])
  drop_points = 100 * (inv["accuracy"] - raw["accuracy"])
  verdict = ("barely moves the accuracy" if abs(drop_points) < 0.5
             else f"costs {drop_points:.1f} points of accuracy")
  table = [
      "| test-time rule | test accuracy | test loss | mean confidence | mean dropout output per layer |",
      "|---|---|---|---|---|",
      f"| inverted rule: no mask, no scaling (right) | **{percent(inv['accuracy'], 2)}** | "
      f"{inv['loss']:.3f} | {inv['confidence']:.3f} | {means(inv)} |",
      f"| train-time masks left on ({len(on['accuracies'])} draws) | "
      f"{percent(on['accuracy'], 2)} ± {100 * on['accuracy_std']:.2f} | {on['loss']:.3f} | "
      f"{on['confidence']:.3f} | {means(on)} |",
      f"| masks on, {avg['passes']} passes averaged | {percent(avg['accuracy'], 2)} | "
      f"{avg['loss']:.3f} | {avg['confidence']:.3f} | — |",
      f"| plain dropout without the test-time ×(1 − p) | {percent(raw['accuracy'], 2)} | "
      f"{raw['loss']:.3f} | {raw['confidence']:.3f} | {means(raw)} |"]
  text = (
      f"What has to match is what each layer receives in training and at test time. In "
      f"training (masks on, kept units × 1/(1 − p)) the dropout layers' mean outputs are "
      f"{means(on)}; the inverted rule with no mask gives {means(inv)}"
      + (f" — the same for the first layer, whose input carries no noise (E[h ⊙ M]/(1 − p) = "
         f"h exactly); deeper, the training-time mean is "
         f"{_percent_change(on['mean_activation'][-1], inv['mean_activation'][-1])} the "
         f"test-time one, because the ReLU of a noisy input has a larger mean than the ReLU of "
         f"its mean (the rule is exact for one layer, an approximation after that). "
         if first_match else ". ")
      + f"Leaving the masks on keeps these means but feeds every prediction the training "
      f"noise: {percent(on['accuracy'], 2)} instead of {percent(inv['accuracy'], 2)}, loss "
      f"{on['loss']:.3f} instead of {inv['loss']:.3f}; averaging {avg['passes']} masked "
      f"passes recovers {percent(avg['accuracy'], 2)} at {avg['passes']}× the cost. Plain "
      f"dropout trains with h ⊙ M and must multiply by 1 − p = {1 - p:g} at test time; "
      f"without that factor the dropout outputs are {ratios} their values under the right "
      f"rule (the factor compounds layer by layer), the mean confidence rises from "
      f"{inv['confidence']:.3f} to {raw['confidence']:.3f} and the loss from "
      f"{inv['loss']:.3f} to {raw['loss']:.3f}: the network is over-confident. The mistake "
      f"{verdict} here ({percent(raw['accuracy'], 2)}): ReLU layers are positively "
      f"homogeneous, relu(c z) = c relu(z), so scaling a layer's input scales every later "
      f"layer except for the biases, and the arg-max mostly survives; the loss and the "
      f"activations show the mismatch. The right rule is inverted dropout and nothing at "
      f"test time (hw.ops.dropout's choice), or plain dropout and × (1 − p) at test time "
      f"(the same function).")
  return [f"**2. Dropout at inference.** An MLP {'–'.join(str(h) for h in hidden)} with "
          f"dropout p = {p:g} after each hidden layer, trained {drop['config']['epochs']} "
          f"epochs with inverted dropout, evaluated on the test set four ways:", "", *table,
          "", text]



def _loss(value: float) -> str:
  return f"{value:.2f}" if abs(value) < 1000 else f"{value:.1e}"


def _describe_run(run: dict[str, Any], steps: int) -> str:
  if run["lowest_at_step"] is None or run["first_step_loss"] is None:
    return f"non-finite at step {run['diverged_at_step']}"
  text = f"{_loss(run['first_step_loss'])} at step 1"
  if run["lowest_loss"] < run["first_step_loss"]:
    text += f" → lowest {_loss(run['lowest_loss'])} by step {run['lowest_at_step']}"
  else:
    text += f" → {_loss(run['highest_loss'])} by step {run['steps'][0]}"
  if run["diverged_at_step"] is not None:
    return text + f" → non-finite at step {run['diverged_at_step']}"
  if run["highest_after_lowest"] > run["lowest_loss"] + 0.5:
    text += f" → up to {_loss(run['highest_after_lowest'])}"
  return text + f" → {_loss(run['final_loss'])} at step {steps}"


def _fix_outcome(fix: dict[str, Any]) -> str:
  if fix["diverged_at_step"] is not None:
    return f"still diverges (non-finite at step {fix['diverged_at_step']})"
  if fix["unstable"]:
    return f"still diverges (final loss {fix['final_loss']:.2f})"
  return f"final loss {fix['final_loss']:.3f}, test accuracy {percent(fix['test_accuracy'])}"


def _rates_text(rates: dict[str, Any]) -> list[str]:
  sweep, fixes, steps = rates["sweep"], rates["fixes"], rates["steps"]
  lr = rates["diverging_rate"]
  unstable = [r for r in sweep if r["unstable"]]
  hidden = "–".join(str(h) for h in rates["hidden"])
  text = (f"**3. A loss that drops fast and then diverges.** An MLP with hidden layers {hidden}, "
          f"SGD with momentum {rates['momentum']:g}, batch {sweep[0]['batch_size']}, {steps} "
          f"steps from the same initialisation; training loss (mean of "
          f"{sweep[0]['steps'][0] if sweep[0]['steps'] else '—'} steps) per rate: "
          + "; ".join(f"lr {r['learning_rate']:g}: {_describe_run(r, steps)}" for r in sweep) + ". ")
  if not unstable:
    return [text + "None of the rates diverged in this run, so there is nothing to fix."]
  first = next(r for r in sweep if r["learning_rate"] == lr)
  chance = math.log(_runs.NUM_CLASSES)
  text += (f"{len(unstable)} of the {len(sweep)} rates diverge. ")
  if first["diverged_at_step"] is None and first["lowest_at_step"] is not None:
    text += (f"At lr {lr:g} the loss first drops fast ({first['first_step_loss']:.2f} → "
             f"{first['lowest_loss']:.2f} by step {first['lowest_at_step']}), then jumps to "
             f"{first['highest_after_lowest']:.2f} and ends at {first['final_loss']:.2f}"
             + (f" ≈ ln 10 = {chance:.2f}, the loss of a constant prediction: "
                f"{percent(first['dead_units'])} of the hidden units are now inactive on every "
                f"test image (dead ReLUs), and the network never recovers. "
                if abs(first["final_loss"] - chance) < 0.05 else ". "))
  text += ("An early fast drop says nothing about whether a rate is safe: the step that "
           "helps while the loss surface is flat overshoots once it curves more sharply, "
           "and momentum adds up the overshoots. ")
  worked = [f for f in fixes if not f["unstable"]]
  failed = [f for f in fixes if f["unstable"]]
  text += (f"Fixes, each started again from the same initialisation at lr {lr:g} (the "
           f"lower rate is the sweep's best stable one): "
           + "; ".join(f"{f['label']}: {_fix_outcome(f)}" for f in fixes) + ". ")
  by_label = {f["schedule"] if f["schedule"] != "constant" else
              ("clip" if f["clip"] is not None else
               ("batch" if f["batch_size"] != sweep[0]["batch_size"] else "lower")): f
              for f in fixes}
  notes = []
  if "batch" in by_label:
    batch = by_label["batch"]
    notes.append(
        f"The larger batch ({batch['batch_size']}) {'works' if not batch['unstable'] else 'does not help'}"
        + (": it divides the gradient noise's standard deviation by "
           f"√{batch['batch_size'] // sweep[0]['batch_size']}, and here the noise, added up "
           "by momentum, is what threw the iterates out" if not batch["unstable"] else
           ": the rate itself is too large for the curvature, whatever the noise"))
  if "cosine" in by_label and first["lowest_at_step"] is not None:
    cosine = by_label["cosine"]
    at = first["lowest_at_step"]
    share = 0.5 * (1 + math.cos(math.pi * at / steps))
    notes.append(
        f"cosine decay {'works' if not cosine['unstable'] else 'alone does not help'}"
        + (f": at step {at}, where the run at lr {lr:g} turned, the schedule is still at "
           f"{percent(share)} of the rate" if cosine["unstable"] else "")
        + ("; a warm-up (the rate rising from 0 over the first 10% of the steps) before the "
           "decay " + ("does" if not by_label.get("warmup_cosine", {"unstable": True})["unstable"]
                       else "does not help either")
           if "warmup_cosine" in by_label else ""))
  if "clip" in by_label:
    clip = by_label["clip"]
    notes.append(f"clipping the gradient norm at {clip['clip']:g} "
                 + ("bounds every step and keeps the run stable" if not clip["unstable"]
                    else "is not enough"))
  if notes:
    notes[0] = notes[0][0].upper() + notes[0][1:]
    text += "; ".join(notes) + "."
  text += (f" Summary: {len(worked)} of the {len(fixes)} fixes work "
           f"({', '.join(f['label'] for f in worked) or 'none'})"
           + (f"; not: {', '.join(f['label'] for f in failed)}." if failed else "."))
  return [text]
