"""alem: active learning of ionic migration barriers in battery materials."""

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

__version__ = "0.1.0"

#: The directory above the package: the repository root for a source checkout or an editable
#: install, a ``site-packages`` directory for a wheel. Package code asks :func:`shipped_dir`.
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Data shipped inside the package (the Em training set, demo hosts).
PACKAGE_DATA = Path(__file__).resolve().parent / "data"

#: Top-level directories of the repository that ship with alem: the trained model, the NEB
#: presets, the cluster templates and the pre-training corpus. A wheel carries them inside the
#: package under ``alem/_shipped/`` (``setup.py`` copies them there at build time).
SHIPPED_DIRS = ("models", "workflows", "hpc_configs", "data")
SHIPPED_PACKAGE_DIR = "_shipped"


def source_checkout() -> Path | None:
    """The repository this package runs from (editable install or ``PYTHONPATH``); None for a wheel."""
    if (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "alem" / "__init__.py").is_file():
        return REPO_ROOT
    return None


def shipped_dir(name: str) -> Path:
    """Where the shipped directory ``name`` (one of :data:`SHIPPED_DIRS`) is on this install.

    The copy inside the package (a wheel) wins; otherwise the source checkout's top-level
    directory (an editable install). Where neither exists (a broken install) it returns the
    package's path anyway, so the caller's own error names the file it looked for. A model
    directory or preset that the user names explicitly never comes through here.
    """
    if name not in SHIPPED_DIRS:
        raise ValueError(f"{name!r} is not a shipped directory ({', '.join(SHIPPED_DIRS)})")
    packaged = files(__name__) / SHIPPED_PACKAGE_DIR / name
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    checkout = source_checkout()
    if checkout is not None and (checkout / name).is_dir():
        return checkout / name
    return Path(str(packaged))


class _LazyPackage(types.ModuleType):
    """A package whose names load on first use: a name that is also one of its submodules
    (``alem.graphs.crystal_graph`` the function and the module) stays the name. The import system
    binds a loaded submodule to its package's attribute, which would otherwise shadow the name for
    every later ``from package import name``, depending on what happened to be imported first."""

    lazy_names: frozenset[str] = frozenset()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.lazy_names and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


def lazy_attributes(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A package's module ``__getattr__`` (PEP 562) that imports each name of ``where`` from its
    submodule (``where[name]``) on first use: a read command that needs one light module of a
    package does not pay for the heavy libraries (torch, pymatgen-analysis-diffusion) its
    other modules import. A loaded submodule never replaces one of these names (:class:`_LazyPackage`)."""
    module = sys.modules[package]
    module.__class__ = type(f"_LazyPackage[{package}]", (_LazyPackage,), {"lazy_names": frozenset(where)})

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
