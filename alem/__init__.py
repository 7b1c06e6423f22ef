"""alem: active learning of ionic migration barriers in battery materials."""

from pathlib import Path

__version__ = "0.1.0"

#: Repository root when installed in editable mode (where ``models/`` and ``workflows/`` live).
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Data shipped inside the package (the Em training set, demo hosts).
PACKAGE_DATA = Path(__file__).resolve().parent / "data"
