"""The fine-tuned ensemble: load it, predict E_m with a calibrated uncertainty.

An ensemble is the GNN members and, when its card has a ``stack`` section, tree models on the hop
descriptors (``trees.joblib``); their predictions are combined with the card's stacking weights
(:mod:`alem.inference.stacking`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from alem.graphs.crystal_graph import GraphSettings
from alem.hops.fidelity import CheapBarrier
from alem.hops.hop import GOOD_CONDUCTOR_THRESHOLD_EV, Hop
from alem.inference.backbone_features import component_inputs
from alem.inference.device import pick_device
from alem.inference.fidelity_aware import FIDELITY_TREES_FILENAME, fidelity_aware_mean_sigma, usable_cheap_barriers
from alem.inference.hop_graphs import PathTensors, build_hop_graphs, host_context_tensors
from alem.inference.members import predict_member
from alem.inference.stacking import combine_components, combine_members
from alem.inference.trees import ComponentInputs, TreeSpec, load_trees, predict_trees
from alem.model_dir import (
    TREES_FILENAME,
    ModelCard,
    ModelError,
    ModelNotFoundError,
    default_ensemble_path,
    member_filename,
)
from alem.nn.backbone import BackboneConfig
from alem.nn.models import BarrierModel

#: ModelNotFoundError and default_ensemble_path live in alem.model_dir; named here because load() uses them.
__all__ = ["Ensemble", "EnsemblePrediction", "ModelNotFoundError", "combine_members", "default_ensemble_path"]


@dataclass
class EnsemblePrediction:
    """Per hop: ensemble mean and calibrated σ (eV), each member's location, P(E_m < 0.65 eV)."""

    mean_ev: np.ndarray
    std_ev: np.ndarray
    member_ev: np.ndarray  # n_members x n_hops (GNN members)
    member_scale_ev: np.ndarray  # n_members x n_hops, Laplace scales
    prob_good: np.ndarray
    #: Per stack component (``gnn`` first, then trees): mean barrier, n_components x n_hops.
    component_ev: np.ndarray | None = None
    component_names: tuple[str, ...] = ()
    #: Per stack component: its own predictive σ before mixing and calibration (0 for point models).
    component_sigma_ev: np.ndarray | None = None
    #: Per hop: whether its prediction used a cheap barrier (the fidelity-aware part of the model).
    used_cheap_barrier: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.used_cheap_barrier is None:
            self.used_cheap_barrier = np.zeros(len(self.mean_ev), dtype=bool)


class Ensemble:
    """GNN members (and, with a stack, tree components) that predict E_m together.

    Args:
        members: the GNN members, in eval mode.
        card: the directory's :class:`~alem.model_dir.ModelCard` (a plain dict is validated into one).
        path: the model directory (trees are loaded from it when the card has a stack).
    """

    def __init__(self, members: list[BarrierModel], card: ModelCard | dict, path: Path | None = None):
        self.members = members
        self.model_card = card if isinstance(card, ModelCard) else ModelCard.model_validate(card)
        self.path = path
        self.settings = GraphSettings(**self.model_card.graph_settings)
        self.sigma_scale = self.model_card.sigma_scale
        self.stack = self.model_card.stack
        self.tree_specs = [TreeSpec(**spec) for spec in self.stack.tree_specs] if self.stack else []
        self.trees = load_trees(path / TREES_FILENAME) if self.stack and path is not None else []
        if self.stack and (self.stack.descriptor_set or self.settings.descriptor_set) != self.settings.descriptor_set:
            raise ModelError(f"{path}: trees and GNN head read different descriptor sets")
        #: The fidelity-aware add-on (:mod:`alem.inference.fidelity_aware`): card section and its trees.
        self.fidelity_aware = self.model_card.fidelity_aware if self.stack and path is not None else None
        self.fidelity_trees = load_trees(path / FIDELITY_TREES_FILENAME) if self.fidelity_aware else []

    @property
    def card(self) -> dict:
        """The card as plain JSON data, every key as written (typed: :attr:`model_card`)."""
        return self.model_card.as_dict()

    @property
    def cheap_fidelity(self) -> str | None:
        """The potential whose barriers the fidelity-aware part reads (None: the model has none)."""
        return self.fidelity_aware["cheap_fidelity"] if self.fidelity_aware else None

    @classmethod
    def load(cls, path: str | Path | None = None) -> Ensemble:
        """The ensemble in ``path`` (default: the shipped ``models/ensemble``).

        Raises:
            ModelNotFoundError: ``path`` holds no model card.
            ModelError: the card is not a valid ensemble card.
        """
        path = Path(path) if path else default_ensemble_path()
        card = ModelCard.load(path)
        backbone_config = BackboneConfig(**card.backbone_config)
        settings = GraphSettings(**card.graph_settings)
        dropout = card.finetune_config.get("dropout", 0.1)
        members = []
        for k in range(card.n_members):
            model = BarrierModel(backbone_config, settings.n_images, settings.n_descriptors, dropout=dropout)
            state = torch.load(path / member_filename(k), map_location="cpu", weights_only=True)
            model.load_state_dict(state)
            model.eval()
            members.append(model)
        return cls(members, card, path)

    @property
    def shares_frozen_backbone(self) -> bool:
        return self.model_card.freeze == "frozen"

    def raw_member_predictions(
        self, graphs: Sequence | PathTensors, device: torch.device
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each member's (location, scale), shapes n_members x n_hops."""
        if self.shares_frozen_backbone and not isinstance(graphs, PathTensors):
            # every member carries the same frozen backbone: embed the hosts once
            graphs = host_context_tensors(self.members[0], graphs, device)
        outputs = [predict_member(m, graphs, device) for m in self.members]
        return np.stack([o[0] for o in outputs]), np.stack([o[1] for o in outputs])

    def component_inputs(self, hops: Sequence[Hop], graphs: Sequence, tensors: PathTensors | None, device: torch.device) -> ComponentInputs:
        """What the stack's non-GNN components read; backbone features come from the first
        member's backbone (training refuses them unless the backbone is frozen, so it is the
        pre-trained one they were fitted on)."""
        return component_inputs(hops, graphs, self.tree_specs, self.members[0], tensors, device)

    def predict(
        self,
        hops: Sequence[Hop],
        cheap_barriers: Mapping[str, CheapBarrier] | None = None,
        device: str | None = None,
        progress: bool = False,
    ) -> EnsemblePrediction:
        """Predictions for ``hops``. Hops with a cheap barrier of :attr:`cheap_fidelity` in
        ``cheap_barriers`` (by hop id) get the fidelity-aware prediction, all others the
        structure-only one; barriers of another potential are ignored with a warning."""
        dev = pick_device(device)
        graphs = build_hop_graphs(hops, self.settings, progress)
        tensors = host_context_tensors(self.members[0], graphs, dev) if self.shares_frozen_backbone and graphs else None
        location, scale = self.raw_member_predictions(tensors if tensors is not None else graphs, dev)
        if not self.stack:
            mean, sigma = combine_members(location, scale, self.sigma_scale)
            prob_good = stats.norm.cdf((GOOD_CONDUCTOR_THRESHOLD_EV - mean) / sigma)
            return EnsemblePrediction(mean, sigma, location, scale, prob_good)
        gnn_mean, gnn_sigma = combine_members(location, scale, 1.0)
        inputs = self.component_inputs(hops, graphs, tensors, dev)
        features = inputs.descriptors
        tree_mean, tree_sigma = predict_trees(self.tree_specs, self.trees, inputs)
        means, sigmas = np.vstack([gnn_mean, tree_mean]), np.vstack([gnn_sigma, tree_sigma])
        mean, sigma = combine_components(means, sigmas, np.asarray(self.stack.weights), self.sigma_scale)
        used, cheap_ev = usable_cheap_barriers([h.hop_id for h in hops], cheap_barriers, self.cheap_fidelity)
        if used.any():
            mean[used], sigma[used] = fidelity_aware_mean_sigma(
                self.fidelity_aware, self.fidelity_trees, features[used], cheap_ev[used], means[:, used], sigmas[:, used]
            )
        prob_good = stats.norm.cdf((GOOD_CONDUCTOR_THRESHOLD_EV - mean) / sigma)
        names = ("gnn", *(spec.name for spec in self.tree_specs))
        return EnsemblePrediction(mean, sigma, location, scale, prob_good, means, names, sigmas, used)
