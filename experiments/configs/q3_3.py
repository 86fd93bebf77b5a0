"""Q3.3: binary SVM (hinge loss) with no hidden layer: Q2.3 with the hinge loss."""
from experiments.configs import q2_3
from hw.engine.config import ExperimentConfig


def get_config(profile: str = "quick") -> ExperimentConfig:
  return q2_3.get_config(profile).replace(
      name="q3_3", title="Q3.3 binary SVM (hinge), no hidden layer (binary task)",
      loss="hinge", reported=("92.8%", "93.2%"))
