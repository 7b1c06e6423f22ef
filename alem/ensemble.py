"""The fine-tuned ensemble: load it, predict E_m with a calibrated uncertainty.

An ensemble is a :class:`~alem.inference.components.Mixture` of stack components (the GNN members
and, when its card has a ``stack`` section, the descriptor trees and the kernel model) and, when
the card has a ``fidelity_aware`` section, a second mixture for hops that come with a cheap barrier
of that potential (:mod:`alem.inference.fidelity_aware`). Which components there are is read from
the card once, at load; prediction only asks each component for its mean and σ."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from alem.graphs.crystal_graph import GraphSettings
from alem.hops.fidelity import CheapBarrier
from alem.hops.hop import GOOD_CONDUCTOR_THRESHOLD_EV, Hop
from alem.inference.allocator import keep_freed_blocks
from alem.inference.components import BarrierComponent, ComponentPrediction, HopInputs, Mixture
from alem.inference.device import pick_device
from alem.inference.draw_randomness import DrawRandomness
from alem.inference.feature_cache import FeatureCache
from alem.inference.fidelity_aware import cheap_barrier_notes, warn_unmatched
from alem.inference.members import GnnMembers
from alem.inference.sister_correction import SisterCorrection, SisterModel, host_of
from alem.inference.stacking import combine_members
from alem.inference.tree_components import FidelityTreeComponent, TreeComponent
from alem.model_dir import ModelCard, ModelError, ModelNotFoundError, default_ensemble_path
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
    #: Per hop: the stack's mean before the sister correction (equal to ``mean_ev`` where no
    #: labelled sister hop informed it) and how many labelled sisters did.
    stack_mean_ev: np.ndarray | None = None
    n_sisters: np.ndarray | None = None
    #: Per hop: what became of its cheap barrier ("" without one; "used mlip:CHGNet 0.412 eV"; or why
    #: the structure-only prediction was kept: below the floor, no add-on of that potential).
    cheap_barrier_note: list[str] | None = None

    def __post_init__(self) -> None:
        if self.used_cheap_barrier is None:
            self.used_cheap_barrier = np.zeros(len(self.mean_ev), dtype=bool)
        if self.stack_mean_ev is None:
            self.stack_mean_ev = self.mean_ev.copy()
        if self.n_sisters is None:
            self.n_sisters = np.zeros(len(self.mean_ev), dtype=int)
        if self.cheap_barrier_note is None:
            self.cheap_barrier_note = [""] * len(self.mean_ev)


@dataclass
class CheapFidelityMixture:
    """A mixture that replaces the structure-only one for hops with a cheap barrier of ``cheap_fidelity``."""

    cheap_fidelity: str
    mixture: Mixture


class Ensemble:
    """Stack components that predict E_m together.

    Args:
        members: the GNN members, in eval mode.
        card: the directory's :class:`~alem.model_dir.ModelCard` (a plain dict is validated into one).
        path: the model directory (the other components are loaded from it when the card has a stack).
    """

    def __init__(self, members: list[BarrierModel], card: ModelCard | dict, path: Path | None = None):
        self.model_card = card if isinstance(card, ModelCard) else ModelCard.model_validate(card)
        self.path = path
        self.settings: GraphSettings = self.model_card.graph_settings
        self.sigma_scale = self.model_card.sigma_scale
        self.gnn = GnnMembers(members, self.model_card.finetune_config, backbone_config=self.model_card.backbone_config)
        stack = self.model_card.stack
        if stack and (stack.descriptor_set or self.settings.descriptor_set) != self.settings.descriptor_set:
            raise ModelError(f"{path}: trees and GNN head read different descriptor sets")
        # the other components live in the directory: a card alone makes a GNN-only ensemble
        stack = stack if path is not None else None
        components: list[BarrierComponent] = [self.gnn]
        if stack and path is not None:
            components += TreeComponent.load_all(path, stack.tree_specs)
        #: The structure-only prediction: every hop gets it.
        self.structure = Mixture(components, np.asarray(stack.weights) if stack else None, self.sigma_scale)
        #: Mixtures for hops that come with a cheap barrier of their potential.
        self.cheap_mixtures: list[CheapFidelityMixture] = []
        for addon in self.model_card.addons if stack else []:
            assert path is not None  # a card alone has no stack (above)
            trees = FidelityTreeComponent.load_all(path, addon.tree_specs, addon.form, addon.cheap_fidelity, addon.trees_file)
            mixture = Mixture([*components, *trees], np.asarray(addon.weights), float(addon.sigma_scale))
            self.cheap_mixtures.append(CheapFidelityMixture(addon.cheap_fidelity, mixture))
        #: The correction by labelled sister hops (None: the model has none).
        section = self.model_card.sister_correction
        self.sister = SisterModel.load(path, section) if section and path is not None else None

    @property
    def members(self) -> list[BarrierModel]:
        return self.gnn.members

    @property
    def card(self) -> dict:
        """The card as plain JSON data, every key as written (typed: :attr:`model_card`)."""
        return self.model_card.as_dict()

    @property
    def cheap_fidelity(self) -> str | None:
        """The potential of the first fidelity-aware add-on (None: the model has none)."""
        return self.cheap_mixtures[0].cheap_fidelity if self.cheap_mixtures else None

    @property
    def cheap_fidelities(self) -> list[str]:
        """The potentials the model has a fidelity-aware add-on for, in the order they are tried."""
        return [cheap.cheap_fidelity for cheap in self.cheap_mixtures]

    @classmethod
    def load(cls, path: str | Path | None = None) -> Ensemble:
        """The ensemble in ``path`` (default: the shipped ``models/ensemble``).

        Raises:
            ModelNotFoundError: ``path`` holds no model card.
            ModelError: the card is not a valid ensemble card.
        """
        path = Path(path) if path else default_ensemble_path()
        card = ModelCard.load(path)
        gnn = GnnMembers.load(path, card.n_members, card.finetune_config, card.backbone_config, card.graph_settings)
        return cls(gnn.members, card, path)

    def hop_inputs(
        self,
        hops: Sequence[Hop],
        cheap_barriers: Mapping[str, CheapBarrier] | None = None,
        device: str | torch.device | None = None,
        progress: bool = False,
        cache: FeatureCache | None = None,
        warn: bool = True,
    ) -> HopInputs:
        """What the components read for ``hops``; the backbone features and the frozen host
        context come from the first member's backbone (training refuses backbone-reading
        components unless the backbone is frozen, so it is the pre-trained one they were fitted on).
        ``cache``: hop features kept on disk across model versions that share the backbone
        (:mod:`alem.inference.feature_cache`)."""
        dev = device if isinstance(device, torch.device) else pick_device(device)
        if warn:  # once per prediction: barriers of a potential no add-on reads
            warn_unmatched(cheap_barriers, self.cheap_fidelities, stacklevel=4)
        return HopInputs(hops, self.settings, dev, self.members[0], cheap_barriers, progress, cache)

    def predict(
        self,
        hops: Sequence[Hop],
        cheap_barriers: Mapping[str, CheapBarrier] | None = None,
        device: str | None = None,
        progress: bool = False,
        labelled: Sequence[Hop] = (),
        cache: FeatureCache | None = None,
    ) -> EnsemblePrediction:
        """Predictions for ``hops``. Hops with a cheap barrier of :attr:`cheap_fidelity` in
        ``cheap_barriers`` (by hop id) get the fidelity-aware prediction, all others the
        structure-only one; barriers of another potential are ignored with a warning. Where the
        model has a sister correction, hops whose host has labelled hops (in the model's residual
        store, or in ``labelled``: hops with a barrier the model was not trained on) are corrected
        by them (:meth:`sister_correction`). ``cache`` keeps the hops' features across model versions."""
        inputs = self.hop_inputs(hops, cheap_barriers, device, progress, cache)
        prediction = self._predict(inputs)
        return self._corrected(prediction, self.sister_correction(inputs, prediction, labelled, device))

    def labelled_sister(
        self, hosts: Collection[str], labelled: Sequence[Hop] = (), cheap_barriers: Mapping[str, CheapBarrier] | None = None,
        device: str | None = None,
    ) -> SisterModel | None:
        """The sister correction with the labelled hops of ``hosts`` added to its residual store:
        ``labelled``'s hops with their residuals against this model's stack prediction of them
        (predicted together, as their sisters are: with ``cheap_barriers``); hops it was trained
        on are left out (an in-sample residual would teach nothing). None: the model has no correction."""
        if self.sister is None:
            return None
        trained = set(self.model_card.training_hop_ids or ())
        wanted = set(hosts)
        fresh = [h for h in labelled if h.barrier_ev is not None and h.hop_id not in trained and host_of(h) in wanted]
        if not fresh:
            return self.sister
        label_inputs = self.hop_inputs(fresh, cheap_barriers, device, warn=False)
        stack = self._predict(label_inputs)
        return self.sister.with_labels(
            [h.hop_id for h in fresh], [host_of(h) for h in fresh], label_inputs.descriptors,
            np.array([h.barrier_ev for h in fresh], dtype=float), stack.mean_ev,
        )

    def sister_correction(
        self, inputs: HopInputs, prediction: EnsemblePrediction, labelled: Sequence[Hop] = (), device: str | None = None,
        sister: SisterModel | None = None,
    ) -> SisterCorrection | None:
        """The correction of ``prediction`` (the stack's, of ``inputs``' hops) by the labelled hops
        of their hosts: ``sister`` (:meth:`labelled_sister`, made once for a pool predicted in
        chunks), else the residual store plus ``labelled`` (:meth:`labelled_sister` of these hops'
        hosts). None: the model has no correction."""
        if self.sister is None:
            return None
        hosts = [host_of(h) for h in inputs.hops]
        if sister is None:
            sister = self.labelled_sister(set(hosts), labelled, inputs.cheap_barriers, device)
        assert sister is not None
        return sister.apply([h.hop_id for h in inputs.hops], hosts, inputs.descriptors, prediction.mean_ev, prediction.std_ev)

    @staticmethod
    def _corrected(prediction: EnsemblePrediction, correction: SisterCorrection | None) -> EnsemblePrediction:
        if correction is None or not correction.n_sisters.any():
            return prediction
        moved = correction.n_sisters > 0
        prediction.stack_mean_ev = prediction.mean_ev.copy()
        prediction.mean_ev = np.where(moved, correction.mean_ev, prediction.mean_ev)
        prediction.std_ev = np.where(moved, correction.sigma_ev, prediction.std_ev)
        prediction.prob_good = np.where(
            moved, stats.norm.cdf((GOOD_CONDUCTOR_THRESHOLD_EV - prediction.mean_ev) / prediction.std_ev), prediction.prob_good
        )
        prediction.n_sisters = correction.n_sisters
        return prediction

    def _predict(self, inputs: HopInputs) -> EnsemblePrediction:
        hops = inputs.hops
        predicted = {id(c): c.predict(inputs) for c in self.structure.components}
        structure = [predicted[id(c)] for c in self.structure.components]
        mean, sigma = self.structure.combine(structure)
        used = np.zeros(len(hops), dtype=bool)
        for cheap in self.cheap_mixtures:
            here, _ = inputs.cheap_barriers_of(cheap.cheap_fidelity)
            here &= ~used
            if here.any():
                part = inputs.subset(here)
                parts = [_cut(predicted[id(c)], here) if id(c) in predicted else c.predict(part) for c in cheap.mixture.components]
                mean[here], sigma[here] = cheap.mixture.combine(parts)
                used |= here
        prob_good = stats.norm.cdf((GOOD_CONDUCTOR_THRESHOLD_EV - mean) / sigma)
        members = next(p for p in structure if p.member_location_ev is not None)
        location, scale = members.member_location_ev, members.member_scale_ev
        assert location is not None and scale is not None
        notes = cheap_barrier_notes([h.hop_id for h in hops], inputs.cheap_barriers, self.cheap_fidelities)
        if self.structure.weights is None:
            return EnsemblePrediction(mean, sigma, location, scale, prob_good, cheap_barrier_note=notes)
        names = tuple(c.name for c in self.structure.components)
        means, sigmas = np.vstack([p.mean_ev for p in structure]), np.vstack([p.sigma_ev for p in structure])
        return EnsemblePrediction(mean, sigma, location, scale, prob_good, means, names, sigmas, used, cheap_barrier_note=notes)

    def sample(
        self,
        hops: Sequence[Hop],
        n_draws: int,
        seed: int = 0,
        cheap_barriers: Mapping[str, CheapBarrier] | None = None,
        device: str | None = None,
        labelled: Sequence[Hop] = (),
    ) -> np.ndarray:
        """``n_draws x n_hops`` joint draws of the barriers (eV) from the structure-only mixture,
        uncalibrated (:meth:`~alem.inference.components.Mixture.sample`); hops with a cheap barrier
        of :attr:`cheap_fidelity` are drawn from the fidelity-aware mixture instead; hops with
        labelled sisters are moved and narrowed as their prediction is (:meth:`predict`)."""
        inputs = self.hop_inputs(hops, cheap_barriers, device)
        if self.sister is None:
            return self._sample(inputs, n_draws, seed)
        stack = self._predict(inputs)
        return _moved_draws(self._sample(inputs, n_draws, seed), stack, self.sister_correction(inputs, stack, labelled, device))

    def posterior(
        self,
        hops: Sequence[Hop],
        n_draws: int,
        seed: int = 0,
        cheap_barriers: Mapping[str, CheapBarrier] | None = None,
        device: str | None = None,
        progress: bool = False,
        labelled: Sequence[Hop] = (),
        cache: FeatureCache | None = None,
    ) -> tuple[EnsemblePrediction, np.ndarray]:
        """:meth:`predict` and :meth:`sample` of ``hops`` from one pass over their inputs."""
        hosts = {host_of(h) for h in hops}
        return next(self.posterior_chunks([hops], hosts, n_draws, seed, cheap_barriers, device, progress, labelled, cache))

    def posterior_chunks(
        self,
        chunks: Iterable[Sequence[Hop]],
        hosts: Collection[str],
        n_draws: int,
        seed: int = 0,
        cheap_barriers: Mapping[str, CheapBarrier] | None = None,
        device: str | None = None,
        progress: bool = False,
        labelled: Sequence[Hop] = (),
        cache: FeatureCache | None = None,
    ) -> Iterator[tuple[EnsemblePrediction, np.ndarray]]:
        """:meth:`posterior` of a pool given chunk by chunk (``chunks`` is read one chunk at a
        time, so only one chunk's hops and features are in memory; ``hosts``: the pool's hosts,
        :func:`~alem.inference.sister_correction.host_of` of every hop). Each chunk's prediction
        and draws are exactly (bit for bit) its hops' columns of one :meth:`posterior` of the
        whole pool when the chunks are :meth:`chunk_bounds` and the hops' features come from
        ``cache`` or are computed in the same batches: draws are keyed by hop
        (:mod:`alem.inference.draw_randomness`) and the labelled sisters are predicted once for
        the pool."""
        keep_freed_blocks()  # the same batches many times over: their temporaries reuse freed memory
        sister = self.labelled_sister(hosts, labelled, cheap_barriers, device) if self.sister is not None else None
        for k, hops in enumerate(chunks):
            inputs = self.hop_inputs(hops, cheap_barriers, device, progress, cache, warn=k == 0)
            stack = self._predict(inputs)
            correction = self.sister_correction(inputs, stack, device=device, sister=sister)
            draws = _moved_draws(self._sample(inputs, n_draws, seed), stack, correction)
            yield self._corrected(stack, correction), draws

    @property
    def chunk_alignment(self) -> int:
        """Hops per forward batch of the GNN members: a chunk of a multiple of it splits no batch,
        and a forward pass over the same batch gives the same bits (another batch of float32
        products may differ in the last bit). The hops' features are computed once and cached
        (:mod:`alem.inference.feature_cache`), so they are the same bits in every later pass."""
        return self.gnn.batch_hops

    def aligned_chunk_hops(self, chunk_hops: int) -> int:
        """``chunk_hops`` rounded up to a multiple of :attr:`chunk_alignment`."""
        alignment = self.chunk_alignment
        return max(1, -(-int(chunk_hops) // alignment)) * alignment

    def chunk_bounds(self, n_hops: int, chunk_hops: int) -> list[tuple[int, int]]:
        """``(start, stop)`` of the chunks :meth:`posterior_chunks` gives a pool of ``n_hops``
        exactly the whole pool's columns in: :meth:`aligned_chunk_hops` each, and a lone last hop
        joins the chunk before (a single row goes through other BLAS and numpy reduction paths
        than many, so its last bits may differ)."""
        size = self.aligned_chunk_hops(chunk_hops)
        bounds = [(start, min(start + size, n_hops)) for start in range(0, n_hops, size)]
        if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
            bounds[-2:] = [(bounds[-2][0], n_hops)]
        return bounds

    def _sample(self, inputs: HopInputs, n_draws: int, seed: int) -> np.ndarray:
        randomness = DrawRandomness(seed)  # one stream per mixture: which draws a mixture makes never depends on the hops
        draws = self.structure.sample(inputs, n_draws, randomness.child(0))
        used = np.zeros(len(inputs.hops), dtype=bool)
        for k, cheap in enumerate(self.cheap_mixtures):
            here, _ = inputs.cheap_barriers_of(cheap.cheap_fidelity)
            here &= ~used  # the first add-on with a usable barrier, as in _predict
            used |= here
            if here.any():
                draws[:, here] = cheap.mixture.sample(inputs.subset(here), n_draws, randomness.child(1 + k))
        return draws


def _moved_draws(draws: np.ndarray, stack: EnsemblePrediction, correction: SisterCorrection | None) -> np.ndarray:
    """Draws of hops with labelled sisters moved to the corrected mean and scaled by the σ's
    ratio (other hops' draws untouched, bit for bit)."""
    if correction is None or not correction.n_sisters.any():
        return draws
    moved = np.flatnonzero(correction.n_sisters > 0)
    ratio = correction.sigma_ev[moved] / stack.std_ev[moved]
    draws = draws.copy()
    draws[:, moved] = np.clip(correction.mean_ev[moved] + (draws[:, moved] - stack.mean_ev[moved]) * ratio, 0.0, None)
    return draws


def _cut(prediction: ComponentPrediction, index: np.ndarray) -> ComponentPrediction:
    """A component's prediction of the hops ``index`` only."""
    return ComponentPrediction(prediction.mean_ev[index], prediction.sigma_ev[index])
