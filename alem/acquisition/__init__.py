"""BoTorch acquisition over a pool of candidate hops scored by the ensemble."""

from alem.acquisition.model import CandidatePoolModel, PredictionTable
from alem.acquisition.selection import Selection, SelectionRequest, select_batch
from alem.acquisition.strategies import STRATEGIES, build_acquisition

__all__ = [
    "STRATEGIES",
    "CandidatePoolModel",
    "PredictionTable",
    "Selection",
    "SelectionRequest",
    "build_acquisition",
    "select_batch",
]
