"""SPEC D: t-SNE with the hand-derived gradient, beside Gaussian-Q SNE (the crowding problem)."""
from experiments.registry import check_profile
from hw.study import Study
from hw.studies import spec_d


def get_config(profile: str = "quick") -> Study:
  return Study(name="tsne", title="t-SNE of 2,000 MNIST digits vs Gaussian-Q SNE (SPEC D)",
               run=spec_d.tsne_study, profile=check_profile(profile), target=0.88,
               reported=("gradient garbled in the write-up",))
