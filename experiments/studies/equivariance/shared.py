"""What the parts of the HK6 equivariance study share: the study's names, the published
numbers and the target, the input scaling, the shifts, and its settings (the profiles)."""
from __future__ import annotations

import dataclasses

NAME = "equivariance"
TITLE = "HK6 equivariance: CNN vs MLP on shifted and randomly placed digits"
REPORTED = ("HK6: CNN slightly better than MLP, original and shifted test set",
            "published 48×48 random placement: MLP 12.7%, CNN 96.0%")
PUBLISHED = {"mlp": 0.127, "cnn": 0.960}
TARGET = 0.960  # the CNN's accuracy on the randomly placed 48×48 test digits
SCALE = (0.0, 0.3081)  # divide by the MNIST pixel std; no mean: the background stays 0
DIRECTIONS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
DIGIT = 28
# shifts (dy, dx) of the direct equivariance check; the figure shows the last one
CHECK_SHIFTS = ((1, 0), (0, -3), (2, 2), (4, -4), (-8, 4), (6, -7))


@dataclasses.dataclass(frozen=True)
class Settings:
  """Sizes of one run of the study (a profile)."""
  train_size: int | None          # training images (of the 54,000 left after the hold-out)
  validation_size: int | None     # held-out images evaluated after each epoch
  test_size: int | None           # test images (None: all 10,000)
  epochs: int                     # the 28×28 CNN and MLP
  canvas_epochs: int              # the 48×48 CNN and MLP
  canvas_train_size: int | None = None  # training images of the 48×48 models (None: train_size)
  cnn_filters: int = 32
  cnn_filter_size: int = 5
  cnn_hidden: int = 100
  canvas_blocks: tuple[tuple[int, int], ...] = ((16, 3), (32, 3), (64, 3))
  canvas_mlp_hidden: int = 256
  canvas: int = 48
  max_shift: int = 8
  learning_rate: float = 3e-3
  check_images: int = 256          # test images of the direct equivariance check
  seed: int = 0


SETTINGS = {
    "quick": Settings(train_size=None, validation_size=2000, test_size=None, epochs=2,
                      canvas_epochs=2),
    "full": Settings(train_size=None, validation_size=None, test_size=None, epochs=8,
                     canvas_epochs=8),
}
