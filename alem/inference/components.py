"""The stack's components: one small interface that every kind of barrier model implements.

In the style of BoTorch's small abstract bases, a component fits on labelled hops, predicts a mean
and σ per hop, draws joint samples of the barriers of many hops, and saves itself into a model
directory (its class loads it back). The GNN members (:mod:`alem.inference.members`), the
descriptor trees and the kernel model (:mod:`alem.inference.trees`) and the trees of the
fidelity-aware add-on (:mod:`alem.inference.fidelity_aware`) implement it; :class:`Mixture`
combines any of them, and :class:`alem.ensemble.Ensemble` combines mixtures without knowing what
their components are.

What the components read for a set of hops (graphs, the frozen backbone's path tensors, the
descriptors, the backbone's features, paired cheap barriers) is :class:`HopInputs`, each part
computed once, on first use, and shared.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from alem.graphs.crystal_graph import GraphSettings, HopData
from alem.hops.fidelity import CheapBarrier
from alem.hops.hop import Hop
from alem.inference.backbone_features import backbone_path_features
from alem.inference.draw_randomness import DrawRandomness, hop_noise_keys
from alem.inference.feature_cache import (
    FeatureCache,
    backbone_key,
    featurisation_key,
    hop_content_key,
    join_path_tensors,
    split_path_tensors,
)
from alem.inference.fidelity_aware import usable_cheap_barriers
from alem.inference.hop_graphs import PathTensors, build_hop_graphs, host_context_tensors
from alem.inference.stacking import combine_components
from alem.inference.trees import ComponentInputs, tree_features_from_graphs
from alem.nn.models import BarrierModel

#: Hops featurised together before their cache rows are written: a multiple of the backbone's
#: batch sizes (32 and 128 hops), so chunking changes no batch and no bit of a result.
CACHE_CHUNK_HOPS = 1024


@dataclass
class ComponentPrediction:
    """One component's prediction of ``n_hops`` hops (eV)."""

    mean_ev: np.ndarray  # n_hops
    sigma_ev: np.ndarray  # n_hops, the component's own predictive σ (0 for a point model)
    #: For a component that is itself an ensemble of Laplace members: each member's location and
    #: scale, ``n_members x n_hops`` (None for other components).
    member_location_ev: np.ndarray | None = None
    member_scale_ev: np.ndarray | None = None


class HopInputs:
    """What components read for ``hops``, each part computed once on first use.

    Args:
        hops: the hops, in order.
        settings: how they become graphs.
        device: where tensors are computed.
        backbone: a barrier model carrying the (frozen, pre-trained) backbone whose host context
            and path features components read; None when no component reads them.
        cheap_barriers: paired cheap barriers by hop id (for the fidelity-aware add-on).
        progress: a progress bar while the graphs are built.
        cache: where the path tensors, descriptors and backbone features of hops seen before are
            read from and those of new hops written to (:mod:`alem.inference.feature_cache`; needs
            ``backbone``); None computes everything.
    """

    def __init__(
        self,
        hops: Sequence[Hop],
        settings: GraphSettings,
        device: torch.device,
        backbone: BarrierModel | None = None,
        cheap_barriers: Mapping[str, CheapBarrier] | None = None,
        progress: bool = False,
        cache: FeatureCache | None = None,
    ):
        self.hops = list(hops)
        self.settings = settings
        self.device = device
        self.backbone = backbone
        self.cheap_barriers = cheap_barriers
        self.progress = progress
        self.cache = cache if backbone is not None else None
        #: Results a component computed for these hops, by the component's key (so that predicting
        #: and sampling the same hops runs a network once).
        self.computed: dict[tuple[str, int], object] = {}

    def __len__(self) -> int:
        return len(self.hops)

    @cached_property
    def graphs(self) -> list[HopData]:
        return build_hop_graphs(self.hops, self.settings, self.progress)

    @cached_property
    def path_tensors(self) -> PathTensors:
        """The hops' host context computed once with :attr:`backbone` (frozen-backbone members read it)."""
        if self.backbone is None:
            raise ValueError("path tensors need a model carrying the backbone")
        if self.cache is not None:
            return self._from_cache[0]
        return host_context_tensors(self.backbone, self.graphs, self.device)

    @cached_property
    def descriptors(self) -> np.ndarray:
        """``n_hops x (n_descriptors + n_ions)``: the head's descriptors and the ion one-hot."""
        if self.cache is not None:
            return self._from_cache[1]
        return tree_features_from_graphs(self.hops, self.graphs)

    @cached_property
    def backbone_features(self) -> np.ndarray:
        """The backbone's view of each hop (:func:`alem.inference.backbone_features.backbone_path_features`)."""
        if self.backbone is None:
            raise ValueError("backbone features need a model carrying the backbone")
        if self.cache is not None:
            return self._from_cache[2]
        return backbone_path_features(self.backbone, self.path_tensors, self.device)

    @cached_property
    def _from_cache(self) -> tuple[PathTensors, np.ndarray, np.ndarray]:
        """Path tensors, descriptors and backbone features of every hop: cached rows read, the
        hops without one computed together (no graph is built for a hop the cache holds) and written."""
        assert self.cache is not None and self.backbone is not None
        keys = [hop_content_key(h) for h in self.hops]
        featurisation, backbone = featurisation_key(self.settings), backbone_key(self.backbone)
        found = self.cache.get(keys, featurisation, backbone)
        first_of_key = {key: i for i, key in reversed(list(enumerate(keys))) if key not in found}
        missing = sorted(first_of_key.values())
        self.cache.hits += len(self.hops) - len(missing)
        self.cache.misses += len(missing)
        # in chunks, each written when done: a pool's graphs never all sit in memory at once, and a
        # killed scoring goes on from the last chunk written
        for start in range(0, len(missing), CACHE_CHUNK_HOPS):
            chunk = missing[start : start + CACHE_CHUNK_HOPS]
            fresh = HopInputs([self.hops[i] for i in chunk], self.settings, self.device, self.backbone, progress=self.progress)
            rows = split_path_tensors(fresh.path_tensors, fresh.descriptors, fresh.backbone_features)
            computed = {keys[i]: row for i, row in zip(chunk, rows, strict=True)}
            self.cache.put(computed, featurisation, backbone)
            found.update(computed)
        features = [found[key] for key in keys]
        width = 4 * self.backbone.path_marker.numel()
        if not features:
            return host_context_tensors(self.backbone, [], self.device), np.zeros((0, 0)), np.zeros((0, width))
        descriptors = np.stack([f.descriptors for f in features])
        return join_path_tensors(features, self.hops), descriptors, np.stack([f.backbone_features for f in features])

    @cached_property
    def noise_keys(self) -> np.ndarray:
        """Per hop, the key of its per-hop noise in joint draws
        (:func:`alem.inference.draw_randomness.hop_noise_keys`): hops whose descriptors agree to
        1e-4 (the same hop listed twice, symmetry-equivalent paths: the descriptors are invariant
        under the host's symmetry) share it, and so their noise, in any call and any chunk."""
        return hop_noise_keys(self.descriptors)

    def component_inputs(self, reads_backbone: bool) -> ComponentInputs:
        return ComponentInputs(self.descriptors, self.backbone_features if reads_backbone else None)

    def cheap_barriers_of(self, fidelity: str | None) -> tuple[np.ndarray, np.ndarray]:
        """``(used, cheap_ev)`` per hop for a potential (:func:`alem.inference.fidelity_aware.usable_cheap_barriers`)."""
        return usable_cheap_barriers([h.hop_id for h in self.hops], self.cheap_barriers, fidelity)

    def subset(self, index: np.ndarray) -> HopInputs:
        """The hops ``index`` (positions or a boolean mask), with every part computed so far cut
        to them (nothing is computed again)."""
        positions = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index, dtype=int)
        part = HopInputs(
            [self.hops[i] for i in positions], self.settings, self.device, self.backbone, self.cheap_barriers, cache=self.cache
        )
        done = self.__dict__
        if "graphs" in done:
            part.graphs = [self.graphs[i] for i in positions]
        if "path_tensors" in done:
            part.path_tensors = self.path_tensors.subset(torch.as_tensor(positions, dtype=torch.long, device=self.path_tensors.y.device))
        for name in ("descriptors", "backbone_features", "noise_keys"):
            if name in done:
                setattr(part, name, done[name][positions])
        # what components computed per hop (the GNN members' outputs): cut, not computed again on
        # another batch of hops (a forward pass over other hops may differ in the last bit)
        for key, value in self.computed.items():
            if isinstance(value, tuple) and all(isinstance(v, np.ndarray) and v.shape[-1:] == (len(self),) for v in value):
                part.computed[key] = tuple(v[..., positions] for v in value)
        return part


class BarrierComponent(ABC):
    """A barrier model that is one component of a stack."""

    #: Its name in the card and in :attr:`alem.ensemble.EnsemblePrediction.component_names`.
    name: str

    @abstractmethod
    def fit(self, inputs: HopInputs, y_ev: np.ndarray, seed: int = 0) -> BarrierComponent:
        """Fit on the hops of ``inputs`` and their barriers ``y_ev`` (eV); returns itself."""

    @abstractmethod
    def predict(self, inputs: HopInputs) -> ComponentPrediction:
        """Mean and σ (eV) of every hop of ``inputs``."""

    @abstractmethod
    def sample(self, inputs: HopInputs, n_draws: int, randomness: DrawRandomness) -> np.ndarray:
        """``n_draws x n_hops`` joint draws of the barriers (eV): within one draw the hops share
        whatever the component is unsure of (which member, which tree), so their correlations
        survive. Draw-level choices come from ``randomness.choices``, per-hop noise from
        :meth:`~alem.inference.draw_randomness.DrawRandomness.unit_laplace` with
        :attr:`HopInputs.noise_keys`, so a hop's column does not depend on the other hops."""

    @abstractmethod
    def save(self, model_dir: Path) -> None:
        """Write the fitted component into ``model_dir``."""


@dataclass
class Mixture:
    """Components mixed with non-negative weights summing to one (:mod:`alem.inference.stacking`),
    σ times a calibration factor. No weights: a single component, its σ times the factor."""

    components: list[BarrierComponent]
    weights: np.ndarray | None
    sigma_scale: float

    def combine(self, predictions: Sequence[ComponentPrediction]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and calibrated σ (eV) of the mixture of ``predictions`` (one per component)."""
        if self.weights is None:
            (only,) = predictions
            return only.mean_ev, only.sigma_ev * self.sigma_scale
        means = np.vstack([p.mean_ev for p in predictions])
        sigmas = np.vstack([p.sigma_ev for p in predictions])
        return combine_components(means, sigmas, self.weights, self.sigma_scale)

    def sample(self, inputs: HopInputs, n_draws: int, randomness: DrawRandomness) -> np.ndarray:
        """``n_draws x n_hops`` joint draws: each draw picks a component with probability its
        weight and takes one joint draw of it (each component from its own stream of
        ``randomness``); barriers are not negative."""
        if self.weights is None:
            (only,) = self.components
            return np.clip(only.sample(inputs, n_draws, randomness.child(0)), 0.0, None)
        picks = randomness.choices.choice(len(self.components), size=n_draws, p=self.weights / self.weights.sum())
        draws = np.empty((n_draws, len(inputs)))
        for k, component in enumerate(self.components):
            chosen = np.flatnonzero(picks == k)
            if len(chosen):
                draws[chosen] = component.sample(inputs, len(chosen), randomness.child(k))
        return np.clip(draws, 0.0, None)
