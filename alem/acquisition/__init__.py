"""BoTorch acquisition over a pool of candidate hops scored by the ensemble.

The names are imported on first use (PEP 562): BoTorch takes seconds to import, and read
commands such as ``alem status`` only need the light :mod:`alem.acquisition.screening`, and the
host answers only :mod:`alem.acquisition.table` (numpy).
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers and editors see; at run time names load on first use
    from alem.acquisition.model import CandidatePoolModel
    from alem.acquisition.selection import Selection, SelectionRequest, select_batch
    from alem.acquisition.strategies import STRATEGIES, build_acquisition
    from alem.acquisition.table import PredictionTable

_LAZY = {
    "CandidatePoolModel": "model", "PredictionTable": "table",
    "Selection": "selection", "SelectionRequest": "selection", "select_batch": "selection",
    "STRATEGIES": "strategies", "build_acquisition": "strategies",
}

__all__ = [
    "CandidatePoolModel",
    "PredictionTable",
    "STRATEGIES",
    "Selection",
    "SelectionRequest",
    "build_acquisition",
    "select_batch",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"alem.acquisition.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'alem.acquisition' has no attribute {name!r}")
