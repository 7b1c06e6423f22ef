"""Imports point down the layers of the house, and no two files import each other in a circle.

The layers, bottom to top, are :data:`LAYERS`; the layout table of docs/development.md draws the same picture.
Every import of the package counts, wherever it stands: module level, inside a function (the lazy
imports that keep ``alem --help`` fast) or under ``TYPE_CHECKING``. A module may import its own
layer's package and any layer below it; modules that share a layer are independent siblings and
import neither each other nor anything above. The checker is plain ``ast`` over the source files,
so it runs without importing torch or atomate2; the last tests run it on a small package written
to a temporary folder, to show it reports an upward import, a sibling import and a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

import alem

#: Bottom to top (layer 1 first, numbered as in the layout table of docs/development.md). Each entry is one
#: layer: a tuple of independent siblings (a package or module name; ``alem`` itself is the root
#: module only). A module belongs to the longest name it starts with.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("alem", "alem.errors", "alem.progress", "alem.toml_writer"),  # install paths, the exception root, progress bars, TOML out
    ("alem.hops",),  # the hop data model and fidelity labels
    # campaign settings (they validate fidelity labels); hop graphs and descriptors; metrics; parity plots; hop enumeration;
    # a model's kept out-of-fold predictions (numpy only)
    ("alem.config", "alem.graphs", "alem.metrics", "alem.parity", "alem.candidates", "alem.out_of_fold"),
    ("alem.nn",),  # PyG models
    ("alem.model_dir",),  # model directories and their typed cards (graph settings, backbone, recipe sections)
    ("alem.inference",),  # models -> predictions: hop tensors, one member, trees, stacking, device
    ("alem.ensemble",),  # a loaded ensemble: mean and calibrated σ
    ("alem.evaluate",),  # an ensemble against labelled hops: metrics, parity plot
    ("alem.training",),  # fitting: pre-training, fine-tuning, CV, the recipe that writes an ensemble
    ("alem.acquisition", "alem.neb"),  # which hop next; NEB flows, presets and barrier readers
    ("alem.backends", "alem.store"),  # where NEBs run; the campaign's SQLite state
    ("alem.campaign",),  # the campaign steps: propose, approve, submit, reconcile, ingest, retrain
    ("alem.review", "alem.report", "alem.doctor"),  # what a person reads: review page, report, doctor
    ("alem.loop",),  # the long-running process: runner, lock, heartbeat, signals
    ("alem.demo",),
    ("alem.cli",),  # thin typer commands
)

#: Upward imports that exist and are on their way out, as (importer, imported). Keep empty: the
#: test below fails while an entry lingers after its import is gone.
KNOWN_UPWARD: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} imports {self.imported}"


def package_modules(package_dir: Path) -> dict[str, Path]:
    """Dotted name of every ``.py`` file below ``package_dir`` (whose name is the package's)."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a module of the package."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def package_imports(package_dir: Path) -> list[Import]:
    """Every import of a module of the package by a module of the package, lazy ones included.
    ``from P import name`` counts as an import of ``P.name`` when that is a module, else of ``P``."""
    modules = package_modules(package_dir)
    root = package_dir.name
    found = []
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source for alias in node.names]
            for target in targets:
                if target.split(".")[0] != root:
                    continue
                imported = _known(target, modules)
                if imported and imported != module:
                    found.append(Import(module, imported, path, node.lineno))
    return found


def layer_of(module: str, layers: Sequence[Sequence[str]]) -> tuple[int, str] | None:
    """(layer index, sibling name) of ``module``; None when no layer names it."""
    best = None
    for index, siblings in enumerate(layers):
        for name in siblings:
            # the package's own name stands for its __init__ only, not for everything in it
            matches = module == name or ("." in name and module.startswith(name + "."))
            if matches and (best is None or len(name) > len(best[1])):
                best = (index, name)
    return best


def layer_violations(imports: Sequence[Import], layers: Sequence[Sequence[str]]) -> list[str]:
    """Imports that point up a layer or sideways to a sibling, as readable lines."""
    problems = []
    for imp in imports:
        low, high = layer_of(imp.imported, layers), layer_of(imp.importer, layers)
        if low is None or high is None:
            continue  # reported by unlayered_modules
        if low[0] > high[0]:
            problems.append(f"{imp}: upward (layer {high[0] + 1} {high[1]} -> layer {low[0] + 1} {low[1]})")
        elif low[0] == high[0] and low[1] != high[1]:
            problems.append(f"{imp}: sideways between siblings {high[1]} and {low[1]}")
    return sorted(problems)


def unlayered_modules(modules: Sequence[str], layers: Sequence[Sequence[str]]) -> list[str]:
    return sorted(m for m in modules if layer_of(m, layers) is None)


def import_cycles(imports: Sequence[Import]) -> list[list[str]]:
    """Groups of two or more files that import each other in a circle (Tarjan's components)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        graph.setdefault(imp.importer, set()).add(imp.imported)
        graph.setdefault(imp.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


PACKAGE_DIR = Path(alem.__file__).parent


def test_every_module_of_alem_has_a_layer():
    assert unlayered_modules(list(package_modules(PACKAGE_DIR)), LAYERS) == []


def test_alem_imports_point_down_the_layers():
    imports = package_imports(PACKAGE_DIR)
    problems = layer_violations([i for i in imports if (i.importer, i.imported) not in KNOWN_UPWARD], LAYERS)
    assert problems == [], "\n".join(problems)
    stale = KNOWN_UPWARD - {(i.importer, i.imported) for i in imports}
    assert not stale, f"no longer imported, delete from KNOWN_UPWARD: {sorted(stale)}"


def test_no_files_of_alem_import_each_other_in_a_circle():
    assert import_cycles(package_imports(PACKAGE_DIR)) == []


# --- the checker itself, on a package written here -------------------------------------------


def _write_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "house"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in [package, *(p for p in package.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    return package


HOUSE_LAYERS = (("house.low",), ("house.mid_a", "house.mid_b"), ("house.top",))


def test_checker_accepts_a_package_whose_imports_point_down(tmp_path):
    package = _write_package(tmp_path, {
        "low.py": "X = 1\n",
        "mid_a/__init__.py": "",
        "mid_a/core.py": "from house.low import X\nfrom . import helpers\n",
        "mid_a/helpers.py": "import house.low\n",
        "top.py": "from house.mid_a.core import X\nfrom house import mid_b\n",
        "mid_b.py": "",
    })
    imports = package_imports(package)
    assert {(i.importer, i.imported) for i in imports} >= {
        ("house.mid_a.core", "house.low"), ("house.mid_a.core", "house.mid_a.helpers"), ("house.top", "house.mid_b"),
    }
    assert layer_violations(imports, HOUSE_LAYERS) == []
    assert import_cycles(imports) == []


def test_checker_reports_an_upward_import_even_a_lazy_one(tmp_path):
    package = _write_package(tmp_path, {
        "low.py": "def helper():\n    from house.top import main  # lazy, still upward\n    return main\n",
        "top.py": "from house.low import helper\n\ndef main():\n    return helper\n",
        "mid_a.py": "",
        "mid_b.py": "",
    })
    problems = layer_violations(package_imports(package), HOUSE_LAYERS)
    assert problems == [f"{package / 'low.py'}:2: house.low imports house.top: upward (layer 1 house.low -> layer 3 house.top)"]
    assert import_cycles(package_imports(package)) == [["house.low", "house.top"]]


def test_checker_reports_sibling_and_type_checking_imports_and_unlayered_modules(tmp_path):
    package = _write_package(tmp_path, {
        "low.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .mid_b import Thing\n",
        "mid_a.py": "from house import mid_b\n",
        "mid_b.py": "class Thing: ...\n",
        "top.py": "",
        "attic.py": "",
    })
    problems = layer_violations(package_imports(package), HOUSE_LAYERS)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "house.low imports house.mid_b: upward (layer 1 house.low -> layer 2 house.mid_b)",
        "house.mid_a imports house.mid_b: sideways between siblings house.mid_a and house.mid_b",
    ]
    assert unlayered_modules(list(package_modules(package)), HOUSE_LAYERS) == ["house", "house.attic"]


@pytest.mark.parametrize("module, layer", [("alem", 0), ("alem.neb.schemas", 9), ("alem.inference.members", 5), ("alem.cli.app", 15)])
def test_layer_of_takes_the_longest_name(module, layer):
    assert layer_of(module, LAYERS)[0] == layer
