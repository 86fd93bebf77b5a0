"""Studies: experiments that are not a grid of training runs (see :mod:`hw.study`).

Each ``run_*(workdir, ...)`` writes ``<workdir>/<name>.json`` and PNG figure(s) and returns
the results dict; :mod:`hw.studies.spec_d` adapts SPEC D's to ``hw reproduce``.
"""
