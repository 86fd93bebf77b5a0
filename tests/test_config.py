"""hw.engine.config: validation against the registries, field marks, fingerprint, compile key."""
from __future__ import annotations

import dataclasses

import pytest

from hw.engine import config as config_module
from hw.engine.config import ExperimentConfig, compile_key, fingerprint


def _config(**changes) -> ExperimentConfig:
  return ExperimentConfig(name="tiny", title="tiny", dataset="synthetic", model="mlp",
                          learning_rate=0.05, epochs=3).replace(**changes)


def test_cosine_schedule_length_is_in_the_fingerprint_exponential_is_not():
  cosine = _config(lr_schedule="cosine", epochs=4)
  assert fingerprint(cosine) != fingerprint(cosine.replace(epochs=5))
  assert compile_key(cosine) != compile_key(cosine.replace(epochs=5))
  exponential = _config(lr_decay=0.5)
  assert fingerprint(exponential) == fingerprint(exponential.replace(epochs=5))
  assert fingerprint(exponential, whole_experiment=True) != fingerprint(
      exponential.replace(epochs=5), whole_experiment=True)


def test_fingerprint_covers_training_fields_data_and_not_descriptions():
  base = _config()
  for change in ({"seed": 1}, {"learning_rate": 0.1}, {"model.hidden_sizes": (7,)},
                 {"normalize": (0.1, 0.3)}, {"augment": "shift"}, {"batch_size": 10}):
    assert fingerprint(base) != fingerprint(base.replace(**change)), change
  for change in ({"title": "other"}, {"notes": "x"}, {"target": 0.5}, {"eval_batch_size": 7}):
    assert fingerprint(base) == fingerprint(base.replace(**change)), change
  assert fingerprint(base, data_identity="a") != fingerprint(base, data_identity="b")


def test_compile_key_ignores_the_traced_learning_rate_and_the_seeds():
  base = _config()
  for change in ({"learning_rate": 0.1}, {"seed": 3}, {"data_seed": 2}, {"batch_size": 10}):
    assert compile_key(base) == compile_key(base.replace(**change)), change
  for change in ({"model.hidden_sizes": (7,)}, {"optimizer": "adam"}, {"loss": "hinge"},
                 {"eval_batch_size": 10}, {"weight_scale": None}):
    assert compile_key(base) != compile_key(base.replace(**change)), change


def test_every_field_declares_its_role():
  for field in dataclasses.fields(ExperimentConfig):
    assert set(field.metadata) == {"fingerprint", "compiled"}, field.name


def test_an_unmarked_field_is_refused(monkeypatch):
  @dataclasses.dataclass(frozen=True)
  class Extended(ExperimentConfig):
    new_option: int = 0
  monkeypatch.setattr(config_module, "ExperimentConfig", Extended)
  with pytest.raises(TypeError, match="new_option must declare"):
    config_module._check_every_field_is_marked()


@pytest.mark.parametrize("field, value, message", [
    ("loss", "l1", "unknown loss loss='l1'; known: softmax_cross_entropy, logistic, hinge"),
    ("optimizer", "lbfgs", "unknown optimizer optimizer='lbfgs'"),
    ("lr_schedule", "step", "unknown lr_schedule lr_schedule='step'"),
    ("model", "vgg99", "unknown model model='vgg99'"),
    ("augment", "cutout", "unknown augmentation augment='cutout'; known: shift, crop_flip"),
    ("epochs", 0, "epochs must be a positive integer"),
    ("batch_size", 2.5, "batch_size must be a positive integer"),
    ("validation_fraction", 1.0, "validation_fraction must be in"),
])
def test_bad_options_are_refused_when_the_config_is_made(field, value, message):
  with pytest.raises(ValueError, match=message.replace("(", r"\(")):
    _config(**{field: value})


def test_replace_rejects_unknown_fields_and_lists_the_known_ones():
  with pytest.raises(ValueError, match=r"unknown config field\(s\) \['lr'\].*known: name, title"):
    _config(lr=0.1)
  assert _config(**{"model.hidden_sizes": (5,)}).model_kwargs == {"hidden_sizes": (5,)}


def test_a_training_subset_enters_the_fingerprint_only_when_set():
  base = ExperimentConfig(name="a", title="a", dataset="cifar10", model="mlp")
  assert "train_subset" not in config_module._marked(base, "fingerprint")
  assert fingerprint(base.replace(train_subset=100)) != fingerprint(base)
  assert fingerprint(base.replace(devices=4)) == fingerprint(base)  # same numbers
  assert compile_key(base.replace(devices=4)) != compile_key(base)


@pytest.mark.parametrize("name", ["../../x", "a/b", "a\\b", "..", ".hidden", "", "x..y", 7])
def test_a_name_that_is_not_one_plain_file_name_is_refused(name):
  with pytest.raises(ValueError, match="name must be a plain name"):
    _config(name=name)


@pytest.mark.parametrize("field, value, message", [
    ("learning_rate", float("nan"), "learning_rate must be a finite number >= 0"),
    ("learning_rate", float("inf"), "learning_rate must be a finite number >= 0"),
    ("learning_rate", "nan", "learning_rate must be a finite number >= 0"),
    ("learning_rate", -0.1, "learning_rate must be a finite number >= 0"),
    ("momentum", "fast", "momentum must be a finite number >= 0"),
    ("weight_scale", 0.0, "weight_scale must be a finite number > 0 or None"),
    ("seed", -1, "seed must be a non-negative integer"),
    ("data_seed", 1.5, "data_seed must be a non-negative integer"),
])
def test_non_finite_negative_or_non_numeric_values_are_refused(field, value, message):
  with pytest.raises(ValueError, match=message):
    _config(**{field: value})


@pytest.mark.parametrize("loss", ["hinge", "logistic"])
def test_a_binary_loss_on_a_ten_class_data_set_is_refused(loss):
  with pytest.raises(ValueError, match=f"loss='{loss}' is a binary loss .* 'mnist' .* 10 classes"):
    _config(dataset="mnist", loss=loss)
  assert _config(dataset="binary", loss=loss).loss == loss  # two classes: fine


def test_a_model_keyword_the_model_does_not_take_is_refused_with_the_ones_it_takes():
  with pytest.raises(ValueError, match=r"model 'mlp' of 'tiny' takes no keyword "
                                       r"model.hiden_sizes; it takes: model.hidden_sizes"):
    _config(**{"model.hiden_sizes": (3,)})
  with pytest.raises(ValueError, match="model 'linear' .* takes no keyword model.hidden_size; "
                                       "it takes: none"):
    _config(model="linear", **{"model.hidden_size": 3})
  with pytest.raises(ValueError, match="grid of 'tiny' sets model.width, but model 'mlp'"):
    _config(grid={"model.width": [1, 2]})
  with pytest.raises(ValueError, match="grid of 'tiny' sets unknown config field 'lr'"):
    _config(grid=[{"lr": 0.1}])


@pytest.mark.parametrize("field, value, message", [
    ("normalize", "abc", "normalize must be None, 'standardize' or \\(mean, std\\)"),
    ("normalize", (1,), "normalize must be None, 'standardize' or \\(mean, std\\)"),
    ("normalize", (0.5, 0.0), "normalize must be None, 'standardize' or \\(mean, std\\)"),
    ("jit_per_batch", "maybe", "jit_per_batch must be True, False or None"),
    ("title", 5, "title must be a string"),
    ("repeat_seeds", (-1,), "repeat_seeds must be a list of non-negative integers"),
    ("also_test", "0", "also_test must be a list of non-negative integers"),
    ("model.hidden_sizes", "abc", "model_kwargs {'hidden_sizes': 'abc'} do not make a 'mlp' "
                                  "model in 'tiny': invalid literal for int"),
])
def test_fields_found_wrong_by_probing_the_command_line_are_refused(field, value, message):
  with pytest.raises(ValueError, match=message):
    _config(**{field: value})
