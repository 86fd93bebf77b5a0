"""Q5.3: CNN conv(32, k×k valid)–ReLU–maxpool 2–fc h–ReLU–fc 10 on MNIST; k and h chosen on
validation."""
from experiments.registry import check_profile
from hw.config import ExperimentConfig


def get_config(profile: str = "quick") -> ExperimentConfig:
  full = check_profile(profile) == "full"
  return ExperimentConfig(
      name="q5_3", title="Q5.3 CNN conv32–ReLU–pool–fc–ReLU–fc (MNIST)",
      dataset="mnist", model="cnn", model_kwargs={"filters": 32, "filter_size": 7, "hidden_size": 100},
      optimizer="momentum", momentum=0.9, learning_rate=0.02, lr_decay=0.8, batch_size=100,
      epochs=12 if full else 6, weight_scale=None,
      grid={"model.filter_size": [3, 5, 7] if full else [5, 7],
            "model.hidden_size": [100, 200] if full else [100]},
      reported=("98.39% (7×7, 100 hidden)", "98.7%"), target=0.99, profile=profile,
      notes="Grid: filter size × hidden size.")
