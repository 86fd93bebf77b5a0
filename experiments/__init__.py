"""One configuration per question of the four assignments (docs/assignments.md):
``experiments.configs.<name>.get_config(profile)``.

Profiles: "quick" (the whole EECS set in under 20 minutes on a 2-core CPU, still meeting
the targets) and "full" (more epochs, wider grids).
"""
from experiments.catalog import EXPERIMENTS, PROFILES, canonical_name, check_profile, get_config

__all__ = ["EXPERIMENTS", "PROFILES", "canonical_name", "check_profile", "get_config"]
