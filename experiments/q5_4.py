"""Q5.4: CNN with batch norm and dropout on MNIST; architecture and dropout rate chosen on
validation. Each block conv–BN–ReLU–maxpool–dropout, then fc–BN–ReLU–dropout–fc."""
from experiments.registry import check_profile
from hw.config import ExperimentConfig

ONE_BLOCK = ((32, 5),)
TWO_BLOCKS = ((32, 5), (64, 5))


def get_config(profile: str = "quick") -> ExperimentConfig:
  full = check_profile(profile) == "full"
  return ExperimentConfig(
      name="q5_4", title="Q5.4 CNN + batch norm + dropout (MNIST)",
      dataset="mnist", model="cnn_bn",
      model_kwargs={"conv_blocks": TWO_BLOCKS, "hidden_size": 200, "dropout_rate": 0.25,
                    "padding": "VALID"},
      optimizer="adam", learning_rate=1e-3, lr_decay=0.8, batch_size=100,
      epochs=15 if full else 6, weight_scale=None,
      jit_per_batch=True,  # XLA:CPU runs the 32->64 conv ~10x slower inside lax.scan
      grid={"model.conv_blocks": [ONE_BLOCK, TWO_BLOCKS] if full else [TWO_BLOCKS],
            "model.dropout_rate": [0.1, 0.25, 0.5] if full else [0.25, 0.4]},
      reported=("98.68%", "98.9%"), target=0.993, profile=profile,
      notes="Grid: architecture (conv blocks) × dropout rate. Adam, ×0.8 per epoch.")
