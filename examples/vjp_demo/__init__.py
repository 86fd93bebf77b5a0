"""A user's package with two hand-derived backward rules, checked with ``hw.testing``."""
