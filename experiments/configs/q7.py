"""EECS 498/598 HW1 Q7 (assignment A7): three short answers shown by experiment — deep sigmoid
nets, dropout at inference, a loss that drops fast and then diverges (experiments.studies.q7)."""
from experiments.catalog import check_profile
from experiments.studies import q7
from experiments.studies.base import Study


def get_config(profile: str = "quick") -> Study:
  check_profile(profile)
  return Study(name=q7.NAME, title=q7.TITLE, run=q7.run, reported=q7.REPORTED, target=None,
               profile=profile,
               notes="No numeric target: each answer is a paragraph whose numbers come from "
                     "the run. The full profile is untested.")
