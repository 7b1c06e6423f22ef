"""The documentation site (``docs/``, ``mkdocs.yml``) says only what is true.

* Every ``alem`` command shown in the docs and the README (code blocks and inline code) is a
  command of the typer app, and every option shown with it is one of that command's options;
  ``alem CMD --help`` works for each.
* The blocks marked ``<!-- docs-test: run -->`` (the five-minute tour) run as written, in order,
  in a scratch directory laid out like a checkout.
* The model card page and the benchmark tables are written from the card and the committed JSON
  (``docs/hooks.py``): their numbers are the files' numbers, and every page's generated tables exist.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from alem.cli import app

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
RUN_MARK = "<!-- docs-test: run -->"
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"(?<!`)`(alem [^`]+)`(?!`)")
OPTION = re.compile(r"^(--?[A-Za-z][\w-]*)")


def doc_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md")) + [REPO / "README.md"]


def _load_hooks():
    spec = importlib.util.spec_from_file_location("alem_docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Shown:
    """One ``alem ...`` command line as a page shows it."""

    page: str
    text: str


def _strip_comment(line: str) -> str:
    """The line without a shell comment (a ``#`` at the start or after a space, outside quotes)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _command_lines(lang: str, body: str) -> list[str]:
    """Shell command lines of a fenced block: ``bash``/``sh`` lines, or a ``console`` block's ``$`` lines."""
    if lang in ("console", "shell-session"):
        lines = [line[2:] for line in body.splitlines() if line.startswith("$ ")]
    elif lang in ("bash", "sh", "shell"):
        lines = body.replace("\\\n", " ").splitlines()
    else:
        return []
    return [code for code in (_strip_comment(line).strip() for line in lines) if code]


def _alem_segments(line: str) -> list[str]:
    """The ``alem ...`` invocations of a shell line (split on ``&&``, ``;`` and a leading ``nohup``)."""
    segments = []
    for part in re.split(r"&&|;|\|\|", line):
        words = part.strip().split()
        while words and words[0] in ("nohup", "time", "nice"):
            words = words[1:]
        if words and words[0] == "alem":
            segments.append(" ".join(words).split(" > ")[0].split(" 2>")[0])
    return segments


def shown_commands() -> list[Shown]:
    shown = []
    for page in doc_pages():
        text = page.read_text()
        name = str(page.relative_to(REPO))
        for match in FENCE.finditer(text):
            for line in _command_lines(match.group(1), match.group(2)):
                shown += [Shown(name, segment) for segment in _alem_segments(line)]
        prose = FENCE.sub("", text)
        shown += [Shown(name, m.group(1).strip()) for m in INLINE.finditer(prose)]
    return shown


def resolve(words: list[str]) -> tuple[list[str], Any, list[str]]:
    """The command path, the click command (typer's) and the words after it, for ``alem WORDS...``."""
    command = typer.main.get_command(app)
    path: list[str] = []
    rest = list(words)
    while hasattr(command, "commands"):  # a group: the next word names one of its commands
        if not rest or rest[0].startswith("-"):
            break
        sub = command.commands.get(rest[0])
        if sub is None:
            raise LookupError(f"alem {' '.join(path + rest[:1])}: no such command")
        path.append(rest.pop(0))
        command = sub
    return path, command, rest


def shown_options(rest: list[str]) -> list[str]:
    """Options in the words after a command, however the docs write them (``[--json]``, ``--a | --b``,
    ``--strategy explore|discover``, ``--max-atoms=N``)."""
    options = []
    for word in rest:
        for piece in re.split(r"[\[\]|(){}]", word):
            match = OPTION.match(piece.split("=")[0])
            if match and not re.fullmatch(r"-\d.*", piece):
                options.append(match.group(1))
    return options


def known_options(command: Any) -> set[str]:
    known = {"--help"}
    for param in command.params:
        known.update(param.opts)
        known.update(param.secondary_opts)
    return known


def test_shown_commands_are_found():
    """The extraction itself: the tour's commands, a console block's ``$`` lines and inline code are seen."""
    texts = {s.text for s in shown_commands()}
    assert "alem init tour --ion Li --backend local" in texts
    assert "alem approve 0c0aee123cc52a7d-p3 1735" in texts  # a console block (docs/guide/approval.md)
    assert any(t.startswith("alem loop") for t in texts)
    assert len(texts) > 60
    assert resolve(["candidates", "add", "x.cif", "--strict"])[0] == ["candidates", "add"]
    assert shown_options(["[--strategy", "explore|discover|balanced]", "[--batch", "5]", "--json", "|", "--csv", "-C", "dir"]) == [
        "--strategy", "--batch", "--json", "--csv", "-C"]
    with pytest.raises(LookupError, match="alem submit: no such command"):
        resolve(["submit"])


def test_every_alem_command_and_option_shown_in_the_docs_exists():
    problems = []
    for shown in shown_commands():
        try:
            words = shlex.split(shown.text)[1:]
        except ValueError:
            words = shown.text.split()[1:]
        try:
            path, command, rest = resolve(words)
        except LookupError as exc:
            problems.append(f"{shown.page}: `{shown.text}`: {exc}")
            continue
        unknown = [opt for opt in shown_options(rest) if opt not in known_options(command)]
        if unknown:
            problems.append(f"{shown.page}: `{shown.text}`: alem {' '.join(path)} has no option {', '.join(unknown)}")
    assert not problems, "\n".join(problems)


def test_help_of_every_documented_command():
    runner = CliRunner()
    paths = set()
    for shown in shown_commands():
        try:
            paths.add(tuple(resolve(shown.text.split()[1:])[0]))
        except LookupError:
            continue  # reported by the test above
    assert ("candidates", "add") in paths and ("doctor",) in paths
    for path in sorted(paths):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
        assert result.exit_code == 0, f"alem {' '.join(path)} --help: {result.output}"
        assert "Usage:" in result.output


def marked_blocks() -> list[tuple[str, str, str]]:
    """(page, language, code) of every fenced block right after a ``docs-test: run`` mark."""
    blocks = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text()
        for match in FENCE.finditer(text):
            if text[: match.start()].rstrip().endswith(RUN_MARK):
                blocks.append((str(page.relative_to(REPO)), match.group(1), match.group(2)))
    return blocks


def test_the_marked_blocks_run_as_written(tmp_path):
    """The five-minute tour, run as shown from a directory laid out like a checkout (no NEB runs)."""
    blocks = marked_blocks()
    assert len(blocks) >= 4 and {lang for _, lang, _ in blocks} <= {"bash", "python"}
    root = tmp_path / "checkout"
    root.mkdir()
    for name in ("alem", "docs"):
        (root / name).symlink_to(REPO / name)
    alem = shutil.which("alem") or str(Path(sys.executable).parent / "alem")
    env = {**os.environ, "COLUMNS": "100", "MPLBACKEND": "Agg", "PATH": f"{Path(alem).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("ALEM_CAMPAIGN", None)
    script = ["set -euxo pipefail"]  # -x: the failing command is the last line of stderr
    for page, lang, code in blocks:
        script.append(f"echo '>>> {page}'")
        if lang == "python":
            script.append(f"( cd {shlex.quote(str(root))} && {shlex.quote(sys.executable)} - <<'ALEM_DOCS_PY'\n{code}ALEM_DOCS_PY\n)")
        else:
            script += code.splitlines()
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"a shown command failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    tour = root / "tour"
    assert (tour / "state" / "review.html").is_file() and (tour / "state" / "report.html").is_file()
    assert "approved" in done.stdout


# --- generated pages ------------------------------------------------------------------------


def test_every_page_expands_and_no_marker_is_left():
    hooks = _load_hooks()
    used = set()
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text()
        used.update(hooks.MARKER.findall(text))
        expanded = hooks.expand(text)
        assert hooks.MARKER.search(expanded) is None, page
    assert used == set(hooks.GENERATORS), "a generator no page uses, or a page asking for one that does not exist"
    with pytest.raises(hooks.GeneratedPageError, match="unknown generated table 'nope'"):
        hooks.expand("<!-- generated: nope -->")


def test_the_model_card_page_shows_the_shipped_card(tmp_path):
    hooks = _load_hooks()
    page = hooks.expand((DOCS / "model" / "card.md").read_text())
    card = json.loads((REPO / "models" / "ensemble" / "model_card.json").read_text())

    def row(title: str) -> str:
        return next(line for line in page.splitlines() if line.startswith(f"| {title} |"))

    for title, metrics in (("stack (the shipped combination)", card["cv_metrics"]),
                           ("GNN members alone", card["cv_metrics_gnn_ensemble"]),
                           ("one GNN member", card["cv_metrics_single_member"]),
                           *((f"component `{name}`", m) for name, m in card["cv_metrics_components"].items())):
        cells = row(title).split(" | ")
        assert cells[1] == str(metrics["n"])
        assert cells[2] == f"{metrics['mae_ev']:.3f}" and cells[4] == f"{metrics['r2']:.3f}"
        assert cells[-1].rstrip(" |") == (f"{metrics['nll']:.3f}" if "nll" in metrics else "–")
    assert row("stacking weights") == "| stacking weights | " + ", ".join(f"{w:.3f}" for w in card["stack"]["weights"]) + " |"
    assert f"| σ factor | {card['calibration']['sigma_scale']:.3f} |" in page
    assert f"| `epochs` | {card['finetune_config']['epochs']} |" in page
    assert f"| GNN members | {card['n_members']} |" in page
    for fidelity, count in card["training_fidelities"].items():
        assert f"{fidelity}: {count}" in page
    # a card with other numbers makes another page: nothing on it is fixed text
    changed = json.loads(json.dumps(card))
    changed["cv_metrics"]["mae_ev"] = 0.123456
    (tmp_path / "model_card.json").write_text(json.dumps(changed))
    assert "| stack (the shipped combination) | 556 | 0.123 |" in hooks.model_card_page(tmp_path)


@pytest.mark.parametrize("relative", ["benchmarks/cv/stack_results.json", "benchmarks/cv/fidelity_results.json"])
def test_benchmark_tables_are_the_committed_json(relative):
    hooks = _load_hooks()
    table = hooks.rows_table(relative)
    rows = json.loads((REPO / relative).read_text())["rows"]
    lines = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| model |")]
    assert len(lines) == len(rows)
    for line, row in zip(lines, rows):
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        assert cells[0] == row["model"].replace("|", "\\|")
        assert cells[1] == f"{row['mae_ev']:.3f}" and cells[3] == f"{row['r2']:.3f}"


def test_the_functional_table_is_the_committed_json():
    hooks = _load_hooks()
    data = json.loads((REPO / "benchmarks" / "cv" / "functional_results.json").read_text())
    lines = [line for line in hooks.functional_table().splitlines() if line.startswith("| ") and not line.startswith("| variant |")]
    stacks = [row for row in data["rows"] if row["model"].startswith("stack")]
    assert len(lines) == len(stacks)
    assert sorted(line.split(" | ")[-1].rstrip(" |") for line in lines) == sorted(f"{row['mae_ev']['all']:.3f}" for row in stacks)
    pooled = next(line for line in lines if line.startswith(f"| {data['variants']['pooled']} |"))
    assert f"| {next(r for r in stacks if r['variant'] == 'pooled')['mae_ev']['GGA+U']:.3f} |" in pooled


def test_the_scale_table_is_the_committed_json():
    hooks = _load_hooks()
    data = json.loads((REPO / "benchmarks" / "scale" / "results.json").read_text())
    table = hooks.scale_table()
    for size, run in data["runs"].items():
        assert f"{run['n_candidate_hops']} hops ({run['n_hosts']} hosts)" in table.splitlines()[0], size
        status = run["steps"].get("status")
        if status is not None:
            assert f"{status['wall_s']:.1f} s ({status['cpu_s']:.0f} s CPU)" in next(
                line for line in table.splitlines() if line.startswith("| status |"))


def test_benchmark_tables_follow_the_json(tmp_path, monkeypatch):
    """A re-run benchmark changes the page: the table is read from the file, not kept anywhere."""
    hooks = _load_hooks()
    copy = tmp_path / "benchmarks" / "replay" / "descriptor"
    copy.mkdir(parents=True)
    data = json.loads((REPO / "benchmarks" / "replay" / "descriptor" / "results.json").read_text())
    data["summary"]["explore"]["fraction_to_full_data_error"] = [0.11, 0.12, 0.13]
    (copy / "results.json").write_text(json.dumps(data))
    monkeypatch.setattr(hooks, "REPO", tmp_path)
    assert "| explore | 12 % |" in hooks.replay_table("descriptor")


def test_sphinx_roles_in_docstrings_become_inline_code():
    spec = importlib.util.spec_from_file_location("alem_docs_griffe_roles", DOCS / "griffe_roles.py")
    roles = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(roles)
    assert roles.plain_roles("a :class:`~alem.store.Store` and :func:`alem.hops.read_hops`, ``x``") == (
        "a `Store` and `alem.hops.read_hops`, ``x``")


def _slug(heading: str) -> str:
    """The anchor MkDocs and GitHub give a heading (lower case, punctuation dropped, spaces to dashes)."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def test_the_readme_links_resolve():
    """The README is read on the forge, not built: its links to docs pages and anchors must hold."""
    readme = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", FENCE.sub("", readme))
    assert links
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue
        target, _, anchor = link.partition("#")
        page = REPO / target if target else REPO / "README.md"
        assert page.exists(), f"README links to {target}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", FENCE.sub("", page.read_text()), re.MULTILINE)
            assert anchor in {_slug(h) for h in headings}, f"README links to {link}: no such heading there"
