"""The README is a short front door whose numbers are the ones in docs/results (which
`hw reproduce` wrote), whose commands exist and whose links resolve; the docs pages it
links to keep the same promises."""
from __future__ import annotations

import json
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

from experiments import catalog as registry
from experiments import cli
from experiments import report

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_README_LINES = 200
# The README and the hand-written docs pages (docs/results holds generated reports).
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]


def _page_id(page: pathlib.Path) -> str:
  return str(page.relative_to(ROOT))


def _without_results_table(text: str) -> str:
  head, _, rest = text.partition(report.README_BEGIN)
  return head + rest.partition(report.README_END)[2]


def test_the_readme_results_table_is_generated_from_docs_results():
  readme = README.read_text()
  table = "\n".join(report.summary_table(ROOT / "docs" / "results", registry.EXPERIMENTS))
  assert f"{report.README_BEGIN}\n{table}\n{report.README_END}" in readme, (
      "README.md's results table differs from docs/results: run `hw readme`")


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_accuracy_quoted_for_a_question_is_in_docs_results(page):
  """Bold percentages in table rows that name a question must be a result of that question."""
  text = page.read_text()
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
    for line in text.splitlines():
      if line.startswith(f"| {question} |") and "ours" not in line:
        quoted = set(re.findall(r"\*\*(\d+\.\d\d%)\*\*", line))
        assert quoted <= known, f"{page.name} quotes {quoted - known} for {question}: {line}"


def test_update_readme_rewrites_only_the_marked_table(tmp_path):
  readme = tmp_path / "README.md"
  readme.write_text(f"intro\n{report.README_BEGIN}\nold\n{report.README_END}\noutro\n")
  assert report.update_readme(readme, ROOT / "docs" / "results", registry.EXPERIMENTS)
  text = readme.read_text()
  assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text
  assert not report.update_readme(readme, ROOT / "docs" / "results", registry.EXPERIMENTS)


def test_the_readme_is_a_short_front_door():
  text = README.read_text()
  lines = text.splitlines()
  assert len(lines) <= MAX_README_LINES, (
      f"README.md has {len(lines)} lines (at most {MAX_README_LINES}): move detail to docs/")
  headings = [line for line in lines if line.startswith("## ")]
  for entry in ("Set-up", "For students", "For teaching assistants", "For engineers"):
    assert any(entry in heading for heading in headings), f"README.md lacks a '{entry}' section"
  for command in ("make reproduce", "make test", "check_vjp", "docs/checking.md"):
    assert command in text, f"README.md does not mention {command}"


# ----------------------------------------------------------------------------- links

LINK = re.compile(r"\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"")


def _slug(heading: str) -> str:
  """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces -> '-'."""
  text = heading.lstrip("#").strip().lower()
  return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _links(page: pathlib.Path) -> list[str]:
  return [a or b for a, b in LINK.findall(page.read_text())]


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_link_resolves_to_a_file_of_the_repository(page):
  missing = []
  for link in _links(page):
    if re.match(r"[a-z]+:", link):   # http:, https:, mailto:
      continue
    target, _, anchor = link.partition("#")
    path = (page.parent / target).resolve() if target else page
    if not path.exists() or ROOT not in (path, *path.parents):
      missing.append(link)
    elif anchor and path.suffix == ".md":
      slugs = {_slug(line) for line in path.read_text().splitlines() if line.startswith("#")}
      if anchor not in slugs:
        missing.append(link)
  assert not missing, f"{_page_id(page)} links to what the repository lacks: {missing}"


def test_the_link_check_can_fail(tmp_path):
  page = tmp_path / "page.md"
  page.write_text("[gone](no/such/file.md) [here](page.md#a-title)\n# A title\n")
  assert _links(page) == ["no/such/file.md", "page.md#a-title"]
  assert _slug("## End to end: `hw reproduce --profile quick`") == (
      "end-to-end-hw-reproduce---profile-quick")


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_no_reference_to_documents_outside_the_repository(page):
  """The assignments' facts are in docs/assignments.md; no page cites the brief ("SPEC")."""
  text = _without_results_table(page.read_text())
  assert not re.search(r"\bSPEC\b", text), f"{_page_id(page)} cites SPEC: use docs/assignments.md"


# -------------------------------------------------------------------------- commands

def _code(page: pathlib.Path) -> list[str]:
  """The lines of fenced code blocks and the inline code spans of a page."""
  text = page.read_text()
  blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
  inline = re.findall(r"(?<!`)`([^`\n]+)`(?!`)", re.sub(r"```.*?```", "", text, flags=re.S))
  return [line for block in blocks for line in block.splitlines()] + inline


def _commands(page: pathlib.Path, program: str) -> list[list[str]]:
  """Each use of ``program`` (``.venv/bin/hw``, ``make``) in the page's code: its words."""
  found = []
  for line in _code(page):
    line = line.split("  #")[0]
    for match in re.finditer(rf"(?:^|[\s;&(]|\.\./){re.escape(program)}\s+(.+)", line):
      lexer = shlex.shlex(match.group(1), posix=True, punctuation_chars=True)
      lexer.whitespace_split = True
      words = []
      for word in lexer:   # up to the end of this command (&&, ;, |, ...)
        if set(word) <= set("();<>|&"):
          break
        words.append(word)
      found.append(words)
  return found


def _help(command: str, capsys) -> str:
  with pytest.raises(SystemExit) as done:
    cli.main([command, "--help"])
  assert done.value.code in (0, None)
  return capsys.readouterr().out


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_hw_command_shown_exists_with_its_options(page, capsys):
  """`.venv/bin/hw CMD --flag ... NAME` in a page: CMD is a command, each flag is in
  `hw CMD --help`, and an experiment named to `train` or `--only` is in the catalog."""
  for words in _commands(page, ".venv/bin/hw"):
    command, rest = words[0], words[1:]
    assert command in cli.COMMANDS, f"{_page_id(page)}: `hw {command}` is no command"
    usage = _help(command, capsys)
    for word in rest:
      flag = word.split("=")[0]
      if flag.startswith("--"):
        assert re.search(rf"{re.escape(flag)}\b", usage), (
            f"{_page_id(page)}: `hw {command}` has no option {flag}")
    names = [rest[i + 1] for i, w in enumerate(rest[:-1]) if w == "--only"]
    if command == "train" and rest and not rest[0].startswith("-"):
      names.append(rest[0])
    for name in names:
      if not name.isupper():   # NAME: a placeholder
        registry.canonical_name(name)   # raises ValueError naming an unknown experiment


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_make_target_and_module_shown_exists(page):
  makefile = (ROOT / "Makefile").read_text()
  targets = set(re.findall(r"^([\w.-]+):", makefile, flags=re.M))
  for words in _commands(page, "make"):
    target = words[0] if words and not words[0].startswith("-") else None
    if target and "=" not in target:
      assert target in targets, f"{_page_id(page)}: `make {target}` is no Makefile target"
  for words in _commands(page, ".venv/bin/python"):
    if words[:1] == ["-m"]:
      module = words[1]
      path = ROOT / module.replace(".", "/")
      assert path.with_suffix(".py").exists() or (path / "__main__.py").exists(), (
          f"{_page_id(page)}: no module {module} to run with -m")


def test_the_command_check_can_fail(tmp_path, capsys):
  page = tmp_path / "page.md"
  page.write_text("```sh\n.venv/bin/hw reproduce --only q9.9   # a comment\n```\n"
                  "Or `.venv/bin/hw verify --no-such-flag`, `make nothing`.\n")
  assert _commands(page, ".venv/bin/hw") == [["reproduce", "--only", "q9.9"],
                                             ["verify", "--no-such-flag"]]
  assert _commands(page, "make") == [["nothing"]]
  with pytest.raises(ValueError, match="q9.9"):
    registry.canonical_name("q9.9")
  assert "--no-such-flag" not in _help("verify", capsys)


def test_the_readme_python_examples_run(tmp_path):
  """The README's ```python blocks, run in order as one script, in a fresh process."""
  blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
  assert blocks, "README.md shows no Python example"
  script = tmp_path / "readme_examples.py"
  script.write_text("\n".join(blocks))
  done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                        text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "pass" in done.stdout
