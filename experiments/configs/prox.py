"""Assignment D: proximal gradient descent (ISTA, FISTA) on an L1-regularised least-squares
problem."""
from experiments.catalog import check_profile
from experiments.studies import spec_d
from experiments.studies.base import Study


def get_config(profile: str = "quick") -> Study:
  return Study(name="prox", title="Prox: ISTA vs FISTA on a 200×500 lasso (assignment D)",
               run=spec_d.prox_study, profile=check_profile(profile),
               reported=("left blank in the write-up",))
