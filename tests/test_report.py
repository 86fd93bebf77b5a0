"""experiments.report: the summary table's top-1 / top-5 column."""
from __future__ import annotations

from experiments import report


def test_top_k_cell_of_a_ten_class_result():
  results = {"top1_error": 0.0733, "top5_error": 0.0043, "data": {"num_classes": 10}}
  assert report._top_k_cell(results) == "7.33% / 0.43%"


def test_top_k_cell_of_a_binary_classifier_says_why_there_is_no_top_5():
  assert report._top_k_cell({"top1_error": 0.068, "data": {"num_classes": 2}}) == \
      "6.80% / n/a (2 classes)"


def test_a_study_lists_the_errors_of_each_classifier():
  one = {"top_k": {"cnn": {"top1_error": 0.04, "top5_error": 0.001}}, "study_version": 1}
  assert report._top_k_cell(one) == "4.00% / 0.10%"
  two = {"top_k": {"cnn": {"top1_error": 0.04, "top5_error": 0.001},
                   "mlp": {"top1_error": 0.5, "top5_error": 0.2}}, "study_version": 1}
  assert report._top_k_cell(two) == "2 classifiers: listed in REPORT.md"
  assert report._classifier_errors(two)[-2:] == ["| cnn | 4.00% | 0.10% |",
                                                 "| mlp | 50.00% | 20.00% |"]
  assert report._classifier_errors({"study_version": 1}) == []


def test_top_k_cell_without_errors_is_a_dash():
  assert report._top_k_cell({"test_accuracy": 0.9}) == "—"


def test_a_torn_results_json_is_reported_as_no_results_not_a_crash(tmp_path):
  (tmp_path / "q2_3.json").write_text("{not json")
  state = {"experiments": {"q2_3": {"title": "Q2.3 x", "status": "not run",
                                    "message": "not run yet"}}}
  text = report.write_report(tmp_path, state, ["q2_3"]).read_text()
  assert "| Q2.3 | — | — | — | — | not run | — | — |" in text and "Left out" not in text


def test_an_ad_hoc_hw_train_result_is_left_out_of_the_report_and_said_so(tmp_path):
  (tmp_path / "q2_3.json").write_text('{"origin": "hw train", "test_accuracy": 0.5}')
  assert report.read_results(tmp_path / "q2_3.json") is None
  state = {"experiments": {"q2_3": {"title": "Q2.3 x", "status": "not run"}}}
  text = report.write_report(tmp_path, state, ["q2_3"]).read_text()
  assert "Left out: q2_3.json in this folder was written by an ad-hoc `hw train` run" in text
  assert "50.00%" not in text
