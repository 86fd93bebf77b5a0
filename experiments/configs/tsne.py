"""Assignment D: t-SNE with the hand-derived gradient, beside Gaussian-Q SNE (the crowding
problem)."""
from experiments.catalog import check_profile
from experiments.studies import spec_d
from experiments.studies.base import Study


def get_config(profile: str = "quick") -> Study:
  return Study(name="tsne", title="t-SNE of 2,000 MNIST digits vs Gaussian-Q SNE (assignment D)",
               run=spec_d.tsne_study, profile=check_profile(profile), target=0.88,
               reported=("gradient garbled in the write-up",))
