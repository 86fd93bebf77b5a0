"""Q4.3: softmax regression (no hidden layer) on MNIST; learning rate chosen on validation."""
from experiments.registry import check_profile
from hw.config import ExperimentConfig


def get_config(profile: str = "quick") -> ExperimentConfig:
  full = check_profile(profile) == "full"
  return ExperimentConfig(
      name="q4_3", title="Q4.3 softmax classifier, no hidden layer (MNIST)",
      dataset="mnist", model="linear", optimizer="sgd", learning_rate=0.5,
      lr_decay=0.9, batch_size=100, epochs=30 if full else 10, weight_scale=1e-3,
      grid={"learning_rate": [0.05, 0.1, 0.5, 1.0] if full else [0.1, 0.5]},
      reported=("90.2%", "92%"), target=0.923, profile=profile,
      notes="Grid: learning rate (SGD, ×0.9 per epoch).")
