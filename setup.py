"""Build hook: the wheel carries the repository's top-level ``models/``, ``workflows/``,
``hpc_configs/`` and ``data/`` inside the package, as ``alem/_shipped/<name>/``.

They stay top-level in the repository (where people look for them); :func:`alem.shipped_dir` finds
the packaged copy in a wheel and the checkout's directory in an editable install. Everything else
about the build is in ``pyproject.toml``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
#: Keep in step with alem.SHIPPED_DIRS and alem.SHIPPED_PACKAGE_DIR (setup.py cannot import alem:
#: its dependencies are not installed yet when the wheel is built).
SHIPPED_DIRS = ("models", "workflows", "hpc_configs", "data")
SHIPPED_PACKAGE_DIR = "_shipped"


class BuildPyWithShippedDirs(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the checkout's directories in place
            return
        target = Path(self.build_lib) / "alem" / SHIPPED_PACKAGE_DIR
        shutil.rmtree(target, ignore_errors=True)  # a stale build/ must not carry removed files
        for name in SHIPPED_DIRS:
            shutil.copytree(HERE / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))


setup(cmdclass={"build_py": BuildPyWithShippedDirs})
