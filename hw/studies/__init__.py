"""Standalone experiments of SPEC D: optimisers, proximal gradient, t-SNE.

Each ``run_*(workdir, ...)`` writes ``<workdir>/<name>.json`` and PNG figure(s) and
returns the results dict.
"""
from hw.studies.optimizers import run_optimizers
from hw.studies.prox import run_prox
from hw.studies.tsne import run_tsne

__all__ = ["run_optimizers", "run_prox", "run_tsne"]
