"""Q4.4: 2-layer softmax net (fc–ReLU–fc) on MNIST; hidden size chosen on validation."""
from experiments.catalog import MNIST_NORMALIZE, check_profile
from hw.engine.config import ExperimentConfig


def get_config(profile: str = "quick") -> ExperimentConfig:
  full = check_profile(profile) == "full"
  return ExperimentConfig(
      name="q4_4", title="Q4.4 2-layer softmax net (MNIST)",
      dataset="mnist", model="mlp", model_kwargs={"hidden_sizes": (1000,)},
      optimizer="adam", learning_rate=1e-3, lr_decay=0.7, batch_size=100,
      epochs=15 if full else 10, weight_scale=None, normalize=MNIST_NORMALIZE,
      grid={"model.hidden_sizes": [(h,) for h in ((100, 300, 500, 1000) if full else (500, 1000))]},
      reported=("93.63%", "96.71%"), target=0.98, profile=profile,
      notes="Grid: hidden size. Adam (lr 1e-3, ×0.7 per epoch), LeCun-normal init, inputs "
            "standardised with the MNIST training mean/std.")
