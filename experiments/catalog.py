"""Experiment names, profiles and the config lookup (re-exported by ``experiments``)."""
from __future__ import annotations

import importlib
import re

from experiments.studies.base import Study
from hw.engine.config import ExperimentConfig

EXPERIMENTS = ("q2_3", "q2_4", "q3_3", "q3_4", "q4_3", "q4_4", "q5_3", "q5_4", "q6_1", "q6_2",
               "vgg11", "ucl", "optimizers", "prox", "tsne", "equivariance", "q7")
PROFILES = ("quick", "full")
MNIST_NORMALIZE = (0.1307, 0.3081)  # mean and std of the MNIST training pixels in [0, 1]
CIFAR_NORMALIZE = (0.5, 0.5)  # the handout's: (x − 0.5) / 0.5 for pixels in [0, 1]
CIFAR_NOTE = (
    "CIFAR-10 numbers here come from the copy under the data folder, whose pixels were "
    "decoded from JPEG (lossy; hw.data notes it in the results' data.notes): they are not "
    "directly comparable with published CIFAR-10 results (a drop of 2–3 points is reported "
    "for training on these JPEGs).")
BINARY_TASK_NOTE = (
    "Binary task: the course's data.pkl (1000 × 20, split 500/250/250 by position) when it is "
    "found under the data folder (HW_DATA_DIR/eecs598-hw1/data.pkl) or given with "
    "--binary-data; otherwise the deterministic stand-in of hw.data.binary_task, whose Bayes "
    "accuracy is about 83% (seed 0), and then no target applies. Features are standardised "
    "with the training split's per-feature mean and std (unscaled features in [0, 1.1] left "
    "plain SGD far from convergence: 88% test, 91% train for Q2.3). The whole experiment is "
    "repeated with seeds 1-4 for the spread: with 250 test samples one sample is 0.4 points.")


def canonical_name(text: str) -> str:
  """'Q5.3', 'q5.3', 'q5_3', '5.3' -> 'q5_3'.

  Raises:
    ValueError: for a name that is not a known experiment.
  """
  match = re.fullmatch(r"[qQ]?(\d+)[._](\d+)", text.strip())
  name = f"q{match.group(1)}_{match.group(2)}" if match else text.strip().lower()
  if name not in EXPERIMENTS:
    raise ValueError(f"unknown experiment {text!r}; known: "
                     f"{', '.join(n.replace('_', '.') for n in EXPERIMENTS)}")
  return name


def get_config(name: str, profile: str = "quick") -> ExperimentConfig | Study:
  """The configuration of experiment ``name`` (any spelling) under ``profile``."""
  module = importlib.import_module(f"experiments.configs.{canonical_name(name)}")
  return module.get_config(profile)


def check_profile(profile: str) -> str:
  if profile not in PROFILES:
    raise ValueError(f"unknown profile {profile!r}; expected one of {PROFILES}")
  return profile
