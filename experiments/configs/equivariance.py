"""HK6 (assignment C, docs/assignments.md): is a CNN's prediction equivariant to shifts?
A study (experiments.studies.base), not a grid: a CNN and an MLP on shifted 28×28 digits,
the published 48×48 random-placement protocol, and the first conv layer's feature maps
under a shift (experiments.studies.equivariance)."""
from experiments.catalog import check_profile
from experiments.studies import equivariance
from experiments.studies.base import Study


def get_config(profile: str = "quick") -> Study:
  settings = equivariance.SETTINGS[check_profile(profile)]
  return Study(
      name=equivariance.NAME, title=equivariance.TITLE, run=equivariance.run,
      reported=equivariance.REPORTED, target=equivariance.TARGET, profile=profile,
      notes=f"Target: the CNN ≥ {equivariance.TARGET:.1%} on the randomly placed 48×48 test "
            f"digits. {settings.epochs} epochs for the 28×28 models, "
            f"{settings.canvas_epochs} for the 48×48 ones (Adam, lr "
            f"{settings.learning_rate:g}, cosine decay). The full profile is untested.")
