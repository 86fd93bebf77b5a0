"""The studies of assignment D in the shape ``hw reproduce`` runs
(:mod:`experiments.studies.base`): each calls its ``run_*`` and adds the report summary,
the figures and the verdict on its targets."""
from __future__ import annotations

import os
from typing import Any

from experiments.studies.optimizers import run_optimizers
from experiments.studies.prox import run_prox
from experiments.studies.tsne import run_tsne


def optimizers_study(workdir: os.PathLike, *, profile: str, data_dir=None) -> dict[str, Any]:
  """The five optimisers on 2-D problems and the MNIST MLP; a ranking, no target."""
  results = run_optimizers(workdir, data_dir=data_dir, quick=profile == "quick")
  mlp = results["mnist_mlp"]["per_optimizer"]
  ranking = results["ranking"]["mnist_mlp"]
  parts = [f"{n} {100 * mlp[n]['test_accuracy']:.2f}% (lr {mlp[n]['best_learning_rate']:g})"
           for n in ranking]
  toy = "; ".join(f"{problem}: {', '.join(order)}" for problem, order in results["ranking"].items()
                  if problem != "mnist_mlp")
  summary = [f"MNIST MLP test accuracy, ranked on validation: {', '.join(parts)}.",
             "", f"2-D problems, ranked by steps to the tolerance: {toy}."]
  return {**results, "summary": summary, "meets_target": None,
          "figures": ["optimizers_toy.png", "optimizers_mnist.png"],
          "headline": f"best on validation: {ranking[0]}"}


def prox_study(workdir: os.PathLike, *, profile: str, data_dir=None) -> dict[str, Any]:
  """ISTA vs FISTA on a lasso: both reach a 1e-6 gap, FISTA no later, KKT holds to 1e-6."""
  results = run_prox(workdir)
  hits, kkt = results["iterations_to_1e-6"], results["kkt_max_violation"]
  met = kkt <= 1e-6 and None not in hits.values() and hits["fista"] <= hits["ista"]
  support = results["support"]
  summary = [f"Relative objective gap ≤ 1e-6 after {hits['ista']} (ISTA) and {hits['fista']} "
             f"(FISTA) iterations; KKT violation at the solution {kkt:.1e} (target ≤ 1e-6); "
             f"support: {support['true_positives']} of {len(support['true'])} true non-zeros "
             f"found, {support['false_positives']} false positives."]
  return {**results, "summary": summary, "meets_target": bool(met), "figures": ["prox.png"],
          "headline": f"1e-6 gap: ISTA {hits['ista']}, FISTA {hits['fista']} iterations"}


def tsne_study(workdir: os.PathLike, *, profile: str, data_dir=None) -> dict[str, Any]:
  """t-SNE of 2,000 MNIST digits beside Gaussian-Q SNE: 5-NN accuracy ≥ 0.88 (the < 15 s
  time target is reported with the machine's load, not judged: it depends on the load)."""
  results = run_tsne(workdir, data_dir=data_dir)
  met = results["knn5_accuracy"] >= results["targets"]["knn5_accuracy"]
  load = results["load_average_1min"]["before"]
  summary = [f"5-NN accuracy of the labels in the embedding {results['knn5_accuracy']:.3f} "
             f"(target ≥ 0.88), KL {results['kl']:.3f}; {results['seconds']:.1f} s for PCA, P "
             f"and 1,000 iterations (target < 15 s on an idle 2-core CPU; load average "
             f"{load:.1f} on {results['cpu_cores']} cores, CPU time "
             f"{results['cpu_seconds']:.1f} s). The same data with a Gaussian Q (SNE): 5-NN "
             f"{results['gaussian_sne']['knn5_accuracy']:.3f}, the clusters crowd together."]
  return {**results, "summary": summary, "meets_target": bool(met), "figures": ["tsne.png"],
          "headline": f"5-NN {results['knn5_accuracy']:.3f}, {results['seconds']:.0f} s"}
