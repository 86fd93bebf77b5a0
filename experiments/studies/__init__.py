"""Studies: experiments that are not a grid of training runs (see :mod:`experiments.studies.base`).

Each ``run_*(workdir, ...)`` writes ``<workdir>/<name>.json`` and PNG figure(s) and returns
the results dict; :mod:`experiments.studies.spec_d` adapts assignment D's to ``hw reproduce``.
"""
