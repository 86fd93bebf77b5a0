"""Q2.4: 2-layer net (ReLU hidden layer), logistic output; hidden size chosen on validation."""
from experiments.catalog import BINARY_TASK_NOTE, check_profile
from hw.engine.config import ExperimentConfig


def get_config(profile: str = "quick") -> ExperimentConfig:
  full = check_profile(profile) == "full"
  return ExperimentConfig(
      name="q2_4", title="Q2.4 2-layer net, logistic output (binary task)",
      dataset="binary", model="mlp", model_kwargs={"hidden_sizes": (1000,)}, loss="logistic",
      optimizer="sgd", learning_rate=0.1, batch_size=100, epochs=200 if full else 100,
      weight_scale=1e-3, normalize="standardize", repeat_seeds=(1, 2, 3, 4),
      grid={"model.hidden_sizes": [(h,) for h in ((10, 100, 500, 1000) if full else (100, 1000))]},
      reported=("94% (hidden 1000)",), target=0.92, profile=profile,
      notes=f"{BINARY_TASK_NOTE} Grid: hidden size.")
