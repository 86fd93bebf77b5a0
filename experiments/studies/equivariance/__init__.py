"""HK6 (assignment C, docs/assignments.md): is a CNN's prediction equivariant to shifts?

Three measurements, every model trained with the engine (:func:`hw.engine.train`) on hw.ops:

1. **Shift curve.** A CNN (conv 5×5 valid–ReLU–max pool–fc–ReLU–fc, the Q5.3 family) and
   an MLP with the same number of parameters, trained on the standard centred 28×28 MNIST
   digits, tested on the test set shifted by 0 … 8 pixels up, down, left and right (zero
   fill).
2. **The published protocol.** Digits in the centre of a 48×48 canvas for training, at
   uniformly random positions of the canvas for testing (published: MLP 12.7%, CNN 96.0%).
   The CNN is fully convolutional ('SAME' zero padding, max pools between the conv layers)
   and ends in a global max pool, so its features do not depend on where the digit is,
   up to the phase of the strided pools.
3. **Equivariance itself.** The first conv layer's feature maps of an image and of its
   shifted copy differ by the same shift (up to float rounding); deeper maps only for
   shifts that are multiples of their stride; the MLP's hidden layer has no such
   structure.

Inputs are divided by the MNIST pixel std but not centred, so the background stays 0 and
both the zero fill of a shift and the conv layers' zero padding equal the background.

The study is split by job: :mod:`~experiments.studies.equivariance.shared` (names, targets, settings),
:mod:`~experiments.studies.equivariance.canvas` (shifts and canvases),
:mod:`~experiments.studies.equivariance.check` (the feature maps and the direct check),
:mod:`~experiments.studies.equivariance.study` (the models and :func:`run`),
:mod:`~experiments.studies.equivariance.report` and :mod:`~experiments.studies.equivariance.figures`; this
package re-exports their public names.
"""
from __future__ import annotations

from experiments.studies.equivariance.canvas import (
                                            centre_offset,
                                            overlap,
                                            place,
                                            random_offsets,
                                            shift,
)
from experiments.studies.equivariance.check import canvas_maps, equivariance_check, mlp_hidden
from experiments.studies.equivariance.report import summary
from experiments.studies.equivariance.shared import (
                                            CHECK_SHIFTS,
                                            DIGIT,
                                            DIRECTIONS,
                                            NAME,
                                            PUBLISHED,
                                            REPORTED,
                                            SCALE,
                                            SETTINGS,
                                            TARGET,
                                            TITLE,
                                            Settings,
)
from experiments.studies.equivariance.study import matching_mlp_width, run

__all__ = ["CHECK_SHIFTS", "DIGIT", "DIRECTIONS", "NAME", "PUBLISHED", "REPORTED", "SCALE",
           "SETTINGS", "Settings", "TARGET", "TITLE", "canvas_maps", "centre_offset",
           "equivariance_check", "matching_mlp_width", "mlp_hidden", "overlap", "place",
           "random_offsets", "run", "shift", "summary"]
