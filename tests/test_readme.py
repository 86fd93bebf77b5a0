"""The README's numbers are the ones in docs/results (which `hw reproduce` wrote)."""
from __future__ import annotations

import json
import pathlib
import re

from experiments import catalog as registry
from experiments import report

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_the_readme_results_table_is_generated_from_docs_results():
  readme = (ROOT / "README.md").read_text()
  table = "\n".join(report.summary_table(ROOT / "docs" / "results", registry.EXPERIMENTS))
  assert f"{report.README_BEGIN}\n{table}\n{report.README_END}" in readme, (
      "README.md's results table differs from docs/results: run `hw readme`")


def test_every_accuracy_quoted_in_the_readme_is_in_docs_results():
  """Percentages in README rows that name a question must be a result of that question."""
  readme = (ROOT / "README.md").read_text()
  for name in registry.EXPERIMENTS:
    path = ROOT / "docs" / "results" / f"{name}.json"
    if not path.exists():
      continue
    results = json.loads(path.read_text())
    if "grid" not in results:  # studies: no single test accuracy to quote
      continue
    known = {f"{100 * results['test_accuracy']:.2f}%"}
    known |= {f"{100 * a:.2f}%" for a in results.get("seeds", {}).get("test_accuracy", [])}
    if results.get("seeds"):
      known.add(f"{100 * results['seeds']['mean']:.2f}%")
    question = results["title"].split(" ")[0]
    for line in readme.splitlines():
      if line.startswith(f"| {question} |") and "ours" not in line:
        quoted = set(re.findall(r"\*\*(\d+\.\d\d%)\*\*", line))
        assert quoted <= known, f"README quotes {quoted - known} for {question}: {line}"


def test_update_readme_rewrites_only_the_marked_table(tmp_path):
  readme = tmp_path / "README.md"
  readme.write_text(f"intro\n{report.README_BEGIN}\nold\n{report.README_END}\noutro\n")
  assert report.update_readme(readme, ROOT / "docs" / "results", registry.EXPERIMENTS)
  text = readme.read_text()
  assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text
  assert not report.update_readme(readme, ROOT / "docs" / "results", registry.EXPERIMENTS)
