"""Q5.3: CNN conv(32, k×k valid)–ReLU–maxpool 2–fc h–ReLU–fc 10 on MNIST; k and h chosen on
validation."""
from experiments.catalog import MNIST_NORMALIZE, check_profile
from hw.engine.config import ExperimentConfig


def get_config(profile: str = "quick") -> ExperimentConfig:
  full = check_profile(profile) == "full"
  return ExperimentConfig(
      name="q5_3", title="Q5.3 CNN conv32–ReLU–pool–fc–ReLU–fc (MNIST)",
      dataset="mnist", model="cnn", model_kwargs={"filters": 32, "filter_size": 7, "hidden_size": 100},
      optimizer="adam", learning_rate=2e-3, lr_schedule="cosine", batch_size=100,
      epochs=20 if full else 12, weight_scale=None, normalize=MNIST_NORMALIZE, augment="shift",
      grid={"model.filter_size": [3, 5, 7] if full else [5, 7],
            "model.hidden_size": [100, 200] if full else [100]},
      reported=("98.39% (7×7, 100 hidden)", "98.7%"), target=0.99, profile=profile,
      figures=("first_filters",),
      notes="Grid: filter size × hidden size (the quick profile fixes hidden 100). Adam, lr "
            "2e-3 with a per-step cosine decay to 0, random ±2 px shifts of the training "
            "images, inputs standardised with the MNIST training mean/std. The full profile "
            "is untested.")
