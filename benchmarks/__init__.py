"""Speed benchmarks: hand-written VJPs (hw.ops) vs JAX autodiff vs PyTorch on the CPU.

Run ``python -m benchmarks.run`` (or ``make bench``); see :mod:`benchmarks.run`.
"""
