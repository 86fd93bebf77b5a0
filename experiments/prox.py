"""SPEC D: proximal gradient descent (ISTA, FISTA) on an L1-regularised least-squares problem."""
from experiments.registry import check_profile
from hw.study import Study
from hw.studies import spec_d


def get_config(profile: str = "quick") -> Study:
  return Study(name="prox", title="Prox: ISTA vs FISTA on a 200×500 lasso (SPEC D)",
               run=spec_d.prox_study, profile=check_profile(profile),
               reported=("left blank in the write-up",))
