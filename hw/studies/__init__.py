"""Studies (see :mod:`hw.study`): one module per study, each with its ``run`` function."""
