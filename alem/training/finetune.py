"""Fine-tuning: GNN members and the stack's components fitted on DFT-NEB barriers, saved as an
ensemble directory."""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import torch

from alem.graphs.crystal_graph import GraphSettings, HopData
from alem.hops.fidelity import CheapBarrier, counts_by_fidelity
from alem.hops.hop import Hop
from alem.hops.io import load_shipped_cheap_barriers
from alem.inference.components import BarrierComponent, HopInputs
from alem.inference.device import device_description, peak_memory_mb, pick_device
from alem.inference.fidelity_aware import warn_unmatched
from alem.inference.hop_graphs import PathTensors
from alem.inference.members import GnnMembers, Pretrained, new_barrier_model, train_member
from alem.inference.tree_components import FidelityTreeComponent, TreeComponent
from alem.inference.trees import ComponentInputs, TreeSpec
from alem.model_dir import (
    ENSEMBLE_KIND,
    FREEZE_STRATEGIES,
    Combination,
    EnsembleRecipe,
    FinetuneConfig,
    ModelCard,
    TrainingRecord,
    default_pretrained_path,
)
from alem.nn.backbone import BackboneConfig
from alem.nn.models import BarrierModel
from alem.training.fidelity_aware import MIN_PAIRED_HOPS
from alem.training.provenance import git_commit, utc_now

#: Named here for the callers that fine-tune (they live in :mod:`alem.inference.members` and
#: :mod:`alem.model_dir`, below the layers that read a model).
__all__ = [
    "FREEZE_STRATEGIES",
    "FinetuneConfig",
    "Pretrained",
    "TrainingSet",
    "fit_members",
    "new_barrier_model",
    "train_ensemble",
    "train_member",
]


@dataclass
class TrainingSet:
    """Hops ready for training (:class:`~alem.inference.components.HopInputs`: graphs, and the
    pre-trained backbone's host context computed once when the members keep it frozen)."""

    inputs: HopInputs
    config: FinetuneConfig
    pretrained: Pretrained | None
    backbone_config: BackboneConfig

    @classmethod
    def prepare(
        cls,
        hops: Sequence[Hop],
        pretrained: Pretrained | None,
        config: FinetuneConfig,
        device: torch.device,
        progress: bool = False,
        backbone_config: BackboneConfig | None = None,
        settings: GraphSettings | None = None,
    ) -> TrainingSet:
        backbone_config = backbone_config or (pretrained.backbone_config if pretrained else BackboneConfig())
        settings = settings or (pretrained.graph_settings if pretrained else GraphSettings())
        settings = settings.model_copy(update={"descriptor_set": config.descriptor_set})
        # the pre-trained backbone, frozen: the members' host context and the kernel model's features
        encoder = None
        if pretrained is not None:
            encoder = new_barrier_model(pretrained, config.model_copy(update={"freeze": "frozen"}), backbone_config, settings)
        inputs = HopInputs(hops, settings, device, encoder.to(device) if encoder else None, progress=progress)
        inputs.graphs  # noqa: B018 - built now, under the progress bar
        if config.freeze == "frozen":
            inputs.path_tensors  # noqa: B018 - every fold and member reuses it
        return cls(inputs, config, pretrained, backbone_config)

    @property
    def graphs(self) -> list[HopData]:
        return self.inputs.graphs

    @property
    def settings(self) -> GraphSettings:
        return self.inputs.settings

    @property
    def cached(self) -> PathTensors | None:
        return self.inputs.path_tensors if self.config.freeze == "frozen" else None

    def component_inputs(self, hops: Sequence[Hop], specs: Sequence[TreeSpec], device: torch.device) -> ComponentInputs:
        """What the stack components ``specs`` read for ``hops`` (the hops of :attr:`graphs`, in order)."""
        reads_backbone = any(spec.reads_backbone for spec in specs)
        if reads_backbone and self.pretrained is None:
            raise ValueError("backbone features need a pre-trained backbone; freeze='scratch' has none")
        return self.inputs.component_inputs(reads_backbone)

    def subset(self, indices: Sequence[int] | np.ndarray | None) -> HopInputs:
        return self.inputs if indices is None else self.inputs.subset(np.asarray(indices, dtype=int))

    def items(self, indices: Sequence[int] | np.ndarray | None = None) -> list[HopData] | PathTensors:
        """The training items (all, or a subset such as a CV fold)."""
        part = self.subset(indices)
        return part.path_tensors if self.config.freeze == "frozen" else part.graphs


def check_stack_fits_config(specs: Sequence[TreeSpec], config: FinetuneConfig) -> None:
    """Components reading backbone features need members that keep the pre-trained backbone: a
    saved ensemble recomputes those features from its first member's backbone."""
    readers = [spec.name for spec in specs if spec.reads_backbone]
    if readers and config.freeze != "frozen":
        raise ValueError(
            f"stack components {readers} read the pre-trained backbone's features; they need freeze='frozen', not {config.freeze!r}"
        )


def fit_members(
    training_set: TrainingSet,
    indices: Sequence[int] | np.ndarray | None,
    config: FinetuneConfig,
    n_members: int,
    seed: int,
    device: torch.device,
    progress: bool = False,
    description: str = "fine-tuning",
) -> tuple[list[BarrierModel], list[float]]:
    """Train ``n_members`` models (different seeds and bootstrap resamples) on the hops
    ``indices`` (None: all). Returns the models and the wall time of each."""
    inputs = training_set.subset(indices)
    inputs.device = device
    gnn = GnnMembers(
        config=config, n_members=n_members, pretrained=training_set.pretrained,
        backbone_config=training_set.backbone_config, progress=progress, description=description,
    ).fit(inputs, seed=seed)
    return gnn.members, gnn.seconds_per_member


def save_ensemble(components: Sequence[BarrierComponent], out_dir: Path, card: ModelCard) -> Path:
    """Every component's files and ``model_card.json``, written to a temporary folder and renamed
    so a crash never leaves a half-written ensemble."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for component in components:  # card order: siblings sharing a file are written in turn
        component.save(tmp)
    card.save(tmp)
    if out_dir.exists():
        old = out_dir.with_name(out_dir.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old)
    else:
        tmp.rename(out_dir)
    return out_dir


def train_ensemble(
    hops: Sequence[Hop],
    out_dir: str | Path,
    recipe: EnsembleRecipe | None = None,
    combination: Combination | None = None,
    record: TrainingRecord | None = None,
    device: str | None = None,
    progress: bool = True,
    cheap_barriers: Mapping[str, CheapBarrier] | None = None,
) -> Path:
    """Fine-tune an ensemble on every hop with a barrier and save it to ``out_dir``.

    Args:
        hops: training hops (those without a barrier are skipped).
        out_dir: the ensemble directory (replaced whole when it exists).
        recipe: members, fine-tuning and seed (its CV settings are not used here).
        combination: how the components combine: with a ``stack``, its tree components are fitted
            on the same hops and combined with its weights; with a ``fidelity_aware`` section, the
            add-on's trees are refitted on the hops paired with a cheap barrier of its potential in
            ``cheap_barriers`` (None: the MACE-MP pairs shipped with alem), its weights and σ factor
            kept. None: GNN members only, σ factor 1.
        record: CV metrics and provenance written into the card.
        device: where to train.
        progress: progress bars.
        cheap_barriers: paired cheap barriers by hop id.
    """
    recipe = recipe or EnsembleRecipe()
    combination = combination or Combination()
    config = recipe.finetune
    dev = pick_device(device)
    labelled = [h for h in hops if h.barrier_ev is not None]
    if not labelled:
        raise ValueError("no hop with a barrier to train on")
    stack = combination.stack
    specs = stack.tree_specs if stack else []
    check_stack_fits_config(specs, config)
    pretrained = None
    if config.freeze != "scratch":
        pretrained = Pretrained.load(recipe.pretrained_path or default_pretrained_path())
    started = time.time()
    training_set = TrainingSet.prepare(labelled, pretrained, config, dev, progress)
    inputs = training_set.inputs
    y = np.array([h.barrier_ev for h in labelled], dtype=float)
    gnn = GnnMembers(config=config, n_members=recipe.n_members, pretrained=pretrained,
                     backbone_config=training_set.backbone_config, progress=progress).fit(inputs, seed=recipe.seed)
    if stack:
        training_set.component_inputs(labelled, specs, dev)  # refuses backbone readers without a backbone
    trees = [TreeComponent(spec, position=k).fit(inputs, y, recipe.seed) for k, spec in enumerate(specs)]
    components: list[BarrierComponent] = [gnn, *trees]
    calibration = combination.calibration.model_dump(mode="json", exclude_unset=True) or {"sigma_scale": 1.0, "method": "none"}
    card: dict[str, Any] = {"calibration": calibration}
    if stack:
        card["stack"] = {**stack.model_dump(mode="json", exclude_unset=True), "descriptor_set": training_set.settings.descriptor_set,
                         "sklearn_version": sklearn.__version__}
    if stack and combination.addons:
        # the parent's fidelity-aware add-ons, each one's trees refitted on the hops paired with a
        # cheap barrier of its potential (the shipped pairs unless the caller passes the campaign's)
        inputs.cheap_barriers = load_shipped_cheap_barriers() if cheap_barriers is None else cheap_barriers
        warn_unmatched(inputs.cheap_barriers, [addon.cheap_fidelity for addon in combination.addons])
        kept = []
        for addon in combination.addons:
            paired, _ = inputs.cheap_barriers_of(addon.cheap_fidelity)
            if paired.sum() < MIN_PAIRED_HOPS:
                continue
            part = inputs.subset(paired)
            components += [
                FidelityTreeComponent(spec, addon.form, addon.cheap_fidelity, position=k, file=addon.trees_file)
                .fit(part, y[paired], recipe.seed)
                for k, spec in enumerate(addon.tree_specs)
            ]
            kept.append({**addon.model_dump(mode="json", exclude_unset=True), "n_paired_hops": int(paired.sum()),
                         "sklearn_version": sklearn.__version__})
        first = combination.fidelity_aware
        if kept and first is not None and kept[0]["cheap_fidelity"] == first.cheap_fidelity:
            card["fidelity_aware"] = kept.pop(0)
        if kept:
            card["fidelity_addons"] = kept
    card.update(
        {
            **(record.entries() if record else {}),
            "kind": ENSEMBLE_KIND,
            "n_members": recipe.n_members,
            "finetune_config": config.as_dict(),
            "graph_settings": training_set.settings.as_dict(),
            "backbone_config": training_set.backbone_config.as_dict(),
            "n_training_hops": len(labelled),
            "training_hop_ids": [h.hop_id for h in labelled],
            "training_fidelities": counts_by_fidelity(h.provenance.fidelity for h in labelled),
            "pretrained_backbone": str(pretrained.path.parent.name) if pretrained and pretrained.path else None,
            # absolute, for re-training from a backbone outside models/ (the name above is portable)
            "pretrained_path": str(pretrained.path.parent) if pretrained and pretrained.path else None,
            "wall_time_s": round(time.time() - started, 1),
            "seconds_per_member": [round(s, 1) for s in gnn.seconds_per_member],
            "device": device_description(dev),
            "peak_memory_mb": round(peak_memory_mb(dev), 1),
            "git_commit": git_commit(),
            "created": utc_now(),
        }
    )
    return save_ensemble(components, Path(out_dir), ModelCard.model_validate(card))
