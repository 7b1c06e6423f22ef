"""The fine-tuned ensemble: load it, predict E_m with a calibrated uncertainty."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from alem.graphs.crystal_graph import GraphSettings
from alem.hops.hop import GOOD_CONDUCTOR_THRESHOLD_EV, Hop
from alem.nn.backbone import BackboneConfig
from alem.nn.models import BarrierModel
from alem.training.device import pick_device
from alem.training.finetune import predict_member
from alem.training.hop_graphs import build_hop_graphs, host_context_tensors


class ModelNotFoundError(FileNotFoundError):
    pass


def default_ensemble_path() -> Path:
    from alem import REPO_ROOT

    return REPO_ROOT / "models" / "ensemble"


@dataclass
class EnsemblePrediction:
    """Per hop: ensemble mean and calibrated σ (eV), each member's location, P(E_m < 0.65 eV)."""

    mean_ev: np.ndarray
    std_ev: np.ndarray
    member_ev: np.ndarray  # n_members x n_hops
    member_scale_ev: np.ndarray  # n_members x n_hops, Laplace scales
    prob_good: np.ndarray


def combine_members(location: np.ndarray, scale: np.ndarray, sigma_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and σ of the mixture of member Laplace distributions, σ multiplied by the calibration
    factor. Barriers are not negative, so the mean is clipped at 0."""
    mean = location.mean(0)
    variance = (2 * scale**2).mean(0) + location.var(0)
    return np.clip(mean, 0.0, None), sigma_scale * np.sqrt(variance)


class Ensemble:
    def __init__(self, members: list[BarrierModel], card: dict, path: Path | None = None):
        self.members = members
        self.card = card
        self.path = path
        self.settings = GraphSettings(**card["graph_settings"])
        self.sigma_scale = float(card.get("calibration", {}).get("sigma_scale", 1.0))

    @classmethod
    def load(cls, path: str | Path | None = None) -> Ensemble:
        path = Path(path) if path else default_ensemble_path()
        card_file = path / "model_card.json"
        if not card_file.exists():
            raise ModelNotFoundError(f"{path}: no model_card.json here (not an alem ensemble)")
        card = json.loads(card_file.read_text())
        backbone_config = BackboneConfig(**card["backbone_config"])
        n_images = card["graph_settings"]["n_images"]
        dropout = card.get("finetune_config", {}).get("dropout", 0.1)
        members = []
        for k in range(card["n_members"]):
            model = BarrierModel(backbone_config, n_images, GraphSettings(**card["graph_settings"]).n_descriptors, dropout=dropout)
            state = torch.load(path / f"member_{k}.pt", map_location="cpu", weights_only=True)
            model.load_state_dict(state)
            model.eval()
            members.append(model)
        return cls(members, card, path)

    @property
    def shares_frozen_backbone(self) -> bool:
        return self.card.get("finetune_config", {}).get("freeze") == "frozen"

    def raw_member_predictions(self, graphs: Sequence, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
        """Each member's (location, scale), shapes n_members x n_hops."""
        if self.shares_frozen_backbone:
            # every member carries the same frozen backbone: embed the hosts once
            graphs = host_context_tensors(self.members[0], graphs, device)
        outputs = [predict_member(m, graphs, device) for m in self.members]
        return np.stack([o[0] for o in outputs]), np.stack([o[1] for o in outputs])

    def predict(self, hops: Sequence[Hop], device: str | None = None, progress: bool = False) -> EnsemblePrediction:
        dev = pick_device(device)
        graphs = build_hop_graphs(hops, self.settings, progress)
        location, scale = self.raw_member_predictions(graphs, dev)
        mean, sigma = combine_members(location, scale, self.sigma_scale)
        prob_good = stats.norm.cdf((GOOD_CONDUCTOR_THRESHOLD_EV - mean) / sigma)
        return EnsemblePrediction(mean, sigma, location, scale, prob_good)
