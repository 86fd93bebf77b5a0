"""One module per experiment of the coursework: ``get_config(profile)`` returns its
:class:`hw.engine.ExperimentConfig` (a grid experiment) or its
:class:`experiments.studies.Study`."""
