"""Q3.4: 2-layer net (ReLU hidden layer), hinge (SVM) output: Q2.4 with the hinge loss."""
from experiments.configs import q2_4
from hw.engine.config import ExperimentConfig


def get_config(profile: str = "quick") -> ExperimentConfig:
  return q2_4.get_config(profile).replace(
      name="q3_4", title="Q3.4 2-layer net, hinge output (binary task)", loss="hinge")
