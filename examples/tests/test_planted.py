"""check_vjp detects every planted wrong rule and passes its correct twin."""
import pytest

import hw.testing
from vjp_demo.planted import CORRECT, PLANTED


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_planted_bug_is_detected(name):
  p = PLANTED[name]
  with pytest.raises((AssertionError, ValueError)):
    hw.testing.check_vjp(p.f, *p.args(), reference=p.reference, kinks=p.kinks, order=2)


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_twin_passes(name, check_vjp):
  p = CORRECT[name]
  check_vjp(p.f, *p.args(), reference=p.reference, kinks=p.kinks, order=2)
