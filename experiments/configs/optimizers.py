"""Assignment D: SGD, momentum, Nesterov, RMSProp and Adam (written by hand in hw.optim) compared
on 2-D problems and the Q4.4 MLP on MNIST."""
from experiments.catalog import check_profile
from experiments.studies import spec_d
from experiments.studies.base import Study


def get_config(profile: str = "quick") -> Study:
  return Study(name="optimizers",
               title="Optimizers: SGD, momentum, Nesterov, RMSProp, Adam (assignment D)",
               run=spec_d.optimizers_study, profile=check_profile(profile),
               reported=("left blank in the write-up",))
