"""Q5.4: CNN with batch norm and dropout on MNIST; architecture and dropout rate chosen on
validation. Each block conv–BN–ReLU–maxpool–dropout, then fc–BN–ReLU–dropout–fc."""
from experiments.catalog import MNIST_NORMALIZE, check_profile
from hw.engine.config import ExperimentConfig

SMALL_3X3 = ((16, 3), (32, 3))
WIDE_3X3 = ((32, 3), (64, 3))
WIDE_5X5 = ((32, 5), (64, 5))


def get_config(profile: str = "quick") -> ExperimentConfig:
  full = check_profile(profile) == "full"
  return ExperimentConfig(
      name="q5_4", title="Q5.4 CNN + batch norm + dropout (MNIST)",
      dataset="mnist", model="cnn_bn",
      model_kwargs={"conv_blocks": SMALL_3X3, "hidden_size": 128, "dropout_rate": 0.1,
                    "padding": "VALID"},
      optimizer="adam", learning_rate=3e-3, lr_schedule="cosine", batch_size=100,
      epochs=15 if full else 10, weight_scale=None, normalize=MNIST_NORMALIZE, augment="shift",
      grid={"model.conv_blocks": [SMALL_3X3, WIDE_3X3, WIDE_5X5] if full else [SMALL_3X3],
            "model.dropout_rate": [0.1, 0.25, 0.4] if full else [0.1, 0.25]},
      reported=("98.68%", "98.9%"), target=0.993, profile=profile,
      notes="Grid: architecture (conv blocks) × dropout rate; the quick profile fixes the "
            "cheapest architecture (16 then 32 3×3 filters, fc 128) to fit its time budget. "
            "Adam, lr 3e-3 with a per-step cosine decay to 0, random ±2 px shifts of the "
            "training images, inputs standardised with the MNIST training mean/std. "
            "Conv nets train with one jitted step per batch (XLA:CPU runs them several "
            "times slower inside lax.scan). The full profile is untested.")
