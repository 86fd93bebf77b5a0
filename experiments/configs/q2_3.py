"""Q2.3: logistic classifier with no hidden layer on the binary task (500/250/250)."""
from experiments.catalog import BINARY_TASK_NOTE, check_profile
from hw.engine.config import ExperimentConfig


def get_config(profile: str = "quick") -> ExperimentConfig:
  full = check_profile(profile) == "full"
  return ExperimentConfig(
      name="q2_3", title="Q2.3 logistic classifier, no hidden layer (binary task)",
      dataset="binary", model="linear", loss="logistic", optimizer="sgd",
      learning_rate=0.1, batch_size=100, epochs=200 if full else 100, weight_scale=1e-3,
      normalize="standardize", repeat_seeds=(1, 2, 3, 4),
      grid={"learning_rate": [0.01, 0.1, 1.0] if full else [0.1, 1.0]},
      reported=("92.0%", "93.6%"), target=0.92, profile=profile,
      notes=f"{BINARY_TASK_NOTE} Grid: learning rate.")
