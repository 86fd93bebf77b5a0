"""One configuration per question of the four assignments (docs/assignments.md):
``experiments.configs.<name>.get_config(profile)``.

Profiles: "quick" (short schedules that still meet the targets; the README gives the
measured times) and "full" (more epochs, wider grids).
"""
from experiments.catalog import EXPERIMENTS, PROFILES, canonical_name, check_profile, get_config

__all__ = ["EXPERIMENTS", "PROFILES", "canonical_name", "check_profile", "get_config"]
