"""Fine-tuning barrier models and ensembles of them on DFT-NEB barriers."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Batch

from alem.graphs.crystal_graph import GraphSettings, HopData
from alem.graphs.descriptors import LATEST_DESCRIPTOR_SET
from alem.hops.fidelity import CheapBarrier, counts_by_fidelity
from alem.hops.hop import Hop
from alem.inference.backbone_features import component_inputs
from alem.inference.device import device_description, peak_memory_mb, pick_device
from alem.inference.fidelity_aware import FIDELITY_CARD_KEY, FIDELITY_TREES_FILENAME
from alem.inference.hop_graphs import PathTensors, build_hop_graphs, host_context_tensors
from alem.inference.trees import ComponentInputs, TreeSpec, tree_features_from_graphs
from alem.model_dir import (
    BACKBONE_FILENAME,
    ENSEMBLE_KIND,
    TREES_FILENAME,
    ModelCard,
    default_pretrained_path,
    member_filename,
)
from alem.nn.backbone import BackboneConfig
from alem.nn.models import BarrierModel
from alem.progress import maybe_progress
from alem.training.fidelity_aware import refit_fidelity_trees
from alem.training.provenance import git_commit, utc_now
from alem.training.steps import gradient_step
from alem.training.trees import fit_trees, save_trees

#: How much of the pre-trained backbone stays fixed while fine-tuning.
#: ``frozen``: the whole backbone (host side computed once; only path convolutions + head train);
#: ``partial``: embedding and all but the last convolution; ``none``: nothing; ``scratch``: no
#: pre-training at all.
FREEZE_STRATEGIES = ("frozen", "partial", "none", "scratch")


@dataclass
class FinetuneConfig:
    freeze: str = "frozen"
    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 2e-3
    #: Pre-trained layers that do train move slower than the new path side.
    backbone_learning_rate: float = 3e-4
    weight_decay: float = 1e-4
    dropout: float = 0.1
    #: Plain L1 first, so the location settles before the Laplace scale is learned with it.
    l1_warmup_epochs: int = 20
    #: Bootstrap resampling per member. Off by default: on 559 hops, losing a third of the
    #: distinct hops per member cost more accuracy (grouped CV) than the diversity it buys.
    bootstrap: bool = False
    #: Hop descriptors the head reads (``v2``: adds the bond-valence / electrostatic profile along
    #: a relaxed path; chosen on inner folds, see benchmarks/cv).
    descriptor_set: str = LATEST_DESCRIPTOR_SET

    def __post_init__(self) -> None:
        if self.freeze not in FREEZE_STRATEGIES:
            raise ValueError(f"freeze must be one of {FREEZE_STRATEGIES}, not {self.freeze!r}")


@dataclass
class Pretrained:
    """A pre-trained backbone checkpoint, loaded."""

    state: dict
    backbone_config: BackboneConfig
    graph_settings: GraphSettings
    path: Path | None = None

    @classmethod
    def load(cls, path: str | Path) -> Pretrained:
        path = Path(path)
        file = path / BACKBONE_FILENAME if path.is_dir() else path
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
        return cls(
            state=checkpoint["backbone"],
            backbone_config=BackboneConfig(**checkpoint["backbone_config"]),
            graph_settings=GraphSettings(**checkpoint["graph_settings"]),
            path=file,
        )


def new_barrier_model(
    pretrained: Pretrained | None, config: FinetuneConfig, backbone_config: BackboneConfig, settings: GraphSettings
) -> BarrierModel:
    model = BarrierModel(backbone_config, settings.n_images, settings.n_descriptors, dropout=config.dropout)
    if config.freeze != "scratch":
        if pretrained is None:
            raise ValueError(f"freeze={config.freeze!r} needs a pre-trained backbone")
        model.backbone.load_state_dict(pretrained.state)
        model.init_path_layers_from_backbone()
        n_layers = backbone_config.n_layers
        model.backbone.set_frozen({"frozen": -1, "partial": n_layers - 1, "none": 0}[config.freeze])
    return model


def _optimizer(model: BarrierModel, config: FinetuneConfig) -> torch.optim.Optimizer:
    backbone_params = [p for p in model.backbone.parameters() if p.requires_grad]
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    other = [p for p in model.parameters() if id(p) not in backbone_ids]
    groups = [{"params": other, "lr": config.learning_rate}]
    if backbone_params:
        lr = config.learning_rate if config.freeze == "scratch" else config.backbone_learning_rate
        groups.append({"params": backbone_params, "lr": lr})
    return torch.optim.AdamW(groups, weight_decay=config.weight_decay)


def _loss(location, scale, target, weight, use_nll: bool) -> torch.Tensor:
    per_hop = (target - location).abs() / scale + torch.log(2 * scale) if use_nll else (target - location).abs()
    return (per_hop * weight).sum() / weight.sum()


def _batches(n_items: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    return list(torch.randperm(n_items, generator=generator).split(batch_size))


def train_member(
    model: BarrierModel,
    train_data: Sequence[HopData] | PathTensors,
    config: FinetuneConfig,
    seed: int,
    device: torch.device,
    progress=None,
    task=None,
) -> list[float]:
    """Train one member in place, on hop graphs or (frozen backbone) on precomputed
    :class:`PathTensors`. Bootstrap resampling enters as integer weights on the loss.
    Returns the training loss per epoch."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    cached = isinstance(train_data, PathTensors)
    n_items = train_data.n_hops if cached else len(train_data)
    if config.bootstrap:
        weight = torch.bincount(torch.randint(n_items, (n_items,), generator=generator), minlength=n_items).float()
    else:
        weight = torch.ones(n_items)
    if cached:
        train_data = train_data.to(device)
        targets = train_data.y
    else:
        graphs = list(train_data)
        targets = torch.cat([g.y for g in graphs])
    targets, weight = targets.to(device), weight.to(device)
    descriptors = train_data.path_desc if cached else torch.cat([g.path_desc for g in graphs])
    model.head.set_descriptor_scaling(descriptors.to(next(model.head.buffers()).device))
    model.to(device).train()
    optimizer = _optimizer(model, config)
    n_batches = (n_items + config.batch_size - 1) // config.batch_size
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=max(config.epochs * n_batches, 20), pct_start=0.1
    )
    losses = []
    for epoch in range(config.epochs):
        total = 0.0
        for index in _batches(n_items, config.batch_size, generator):
            index = index.to(device)
            if cached:
                location, scale = model.path_forward(**train_data.batch(index))
            else:
                location, scale = model(Batch.from_data_list([graphs[i] for i in index.tolist()]).to(device))
            loss = _loss(location, scale, targets[index], weight[index], epoch >= config.l1_warmup_epochs)
            gradient_step(loss, model, optimizer, scheduler)
            total += loss.item() * float(weight[index].sum())
        losses.append(total / float(weight.sum()))
        if progress is not None:
            progress.update(task, advance=1, info=f"loss {losses[-1]:.3f}")
    model.eval()
    return losses


@dataclass
class TrainingSet:
    """Hop graphs ready for training, with the frozen-backbone context cached when it applies."""

    graphs: list[HopData]
    cached: PathTensors | None
    pretrained: Pretrained | None
    settings: GraphSettings
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
        settings = replace(settings, descriptor_set=config.descriptor_set)
        graphs = build_hop_graphs(hops, settings, progress)
        cached = None
        if config.freeze == "frozen":
            encoder = new_barrier_model(pretrained, config, backbone_config, settings).to(device)
            cached = host_context_tensors(encoder, graphs, device)
        return cls(graphs, cached, pretrained, settings, backbone_config)

    def component_inputs(self, hops: Sequence[Hop], specs: Sequence[TreeSpec], device: torch.device) -> ComponentInputs:
        """What the stack components ``specs`` read for ``hops`` (the hops of :attr:`graphs`, in order)."""
        reads_backbone = any(spec.reads_backbone for spec in specs)
        if reads_backbone and self.pretrained is None:
            raise ValueError("backbone features need a pre-trained backbone; freeze='scratch' has none")
        encoder = (
            new_barrier_model(self.pretrained, FinetuneConfig(freeze="frozen"), self.backbone_config, self.settings)
            if reads_backbone else None
        )
        return component_inputs(hops, self.graphs, specs, encoder, self.cached, device)

    def items(self, indices: Sequence[int] | None = None) -> list[HopData] | PathTensors:
        """The training items (all, or a subset such as a CV fold)."""
        if self.cached is None:
            return list(self.graphs) if indices is None else [self.graphs[i] for i in indices]
        if indices is None:
            return self.cached
        return self.cached.subset(torch.as_tensor(np.asarray(indices), dtype=torch.long))


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
    indices: Sequence[int] | None,
    config: FinetuneConfig,
    n_members: int,
    seed: int,
    device: torch.device,
    progress: bool = False,
    description: str = "fine-tuning",
) -> tuple[list[BarrierModel], list[float]]:
    """Train ``n_members`` models (different seeds and bootstrap resamples). Returns the models and
    the wall time of each."""
    data = training_set.items(indices)
    models, seconds = [], []
    with maybe_progress(progress) as bar:
        task = bar.add_task(description, total=n_members * config.epochs, info="") if bar else None
        for member in range(n_members):
            started = time.time()
            model = new_barrier_model(
                training_set.pretrained, config, training_set.backbone_config, training_set.settings
            )
            train_member(model, data, config, seed=seed * 1000 + member, device=device, progress=bar, task=task)
            models.append(model.cpu())
            seconds.append(time.time() - started)
    return models, seconds


def save_ensemble(
    models: Sequence[BarrierModel],
    out_dir: Path,
    card: dict,
    config: FinetuneConfig,
    settings: GraphSettings,
    backbone_config: BackboneConfig,
    trees: Sequence = (),
    fidelity_trees: Sequence = (),
) -> Path:
    """Members as ``member_K.pt`` (state dicts), stacked trees (``trees.joblib``) + ``model_card.json``;
    written to a temporary folder and renamed so a crash never leaves a half-written ensemble."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for k, model in enumerate(models):
        torch.save(model.state_dict(), tmp / member_filename(k))
    if trees:
        save_trees(trees, tmp / TREES_FILENAME)
    if fidelity_trees:
        save_trees(fidelity_trees, tmp / FIDELITY_TREES_FILENAME)
    ModelCard(**{
        **card,
        "kind": ENSEMBLE_KIND,
        "n_members": len(models),
        "finetune_config": asdict(config),
        "graph_settings": settings.as_dict(),
        "backbone_config": backbone_config.as_dict(),
        "git_commit": git_commit(),
        "created": utc_now(),
    }).save(tmp)
    if out_dir.exists():
        import shutil

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
    n_members: int = 5,
    config: FinetuneConfig | None = None,
    pretrained_path: str | Path | None = None,
    calibration_scale: float | None = None,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    extra_card: dict | None = None,
    stack: dict | None = None,
    fidelity_aware: dict | None = None,
    cheap_barriers: Mapping[str, CheapBarrier] | None = None,
) -> Path:
    """Fine-tune an ensemble on every hop with a barrier and save it to ``out_dir``.

    ``calibration_scale`` multiplies the ensemble σ (fit on out-of-fold predictions by
    :func:`alem.training.cv.cross_validate`); None keeps the scale of the ``extra_card`` or 1.
    ``stack`` (a card's ``stack`` section: ``tree_specs`` and ``weights``, GNN first) adds tree
    models fitted on the same hops, combined with those weights. ``fidelity_aware`` (a card's
    section of that name) refits the fidelity-aware trees on the hops that have a barrier in
    ``cheap_barriers`` of its potential (None: the MACE-MP pairs shipped with alem); its weights
    and σ factor are kept.
    """
    config = config or FinetuneConfig()
    dev = pick_device(device)
    labelled = [h for h in hops if h.barrier_ev is not None]
    if not labelled:
        raise ValueError("no hop with a barrier to train on")
    specs = [TreeSpec(**spec) for spec in stack["tree_specs"]] if stack else []
    check_stack_fits_config(specs, config)
    pretrained = None
    if config.freeze != "scratch":
        pretrained = Pretrained.load(pretrained_path or default_pretrained_path())
    started = time.time()
    training_set = TrainingSet.prepare(labelled, pretrained, config, dev, progress)
    models, seconds = fit_members(training_set, None, config, n_members, seed, dev, progress)
    trees = []
    card = dict(extra_card or {})
    if stack:
        y = np.array([h.barrier_ev for h in labelled], dtype=float)
        trees = fit_trees(specs, training_set.component_inputs(labelled, specs, dev), y, seed)
        card["stack"] = {**stack, "descriptor_set": training_set.settings.descriptor_set, "sklearn_version": _sklearn_version()}
    fidelity_trees: list = []
    if stack and fidelity_aware:
        # the parent's fidelity-aware add-on, its trees refitted on the hops paired with a cheap
        # barrier of its potential (the shipped pairs unless the caller passes the campaign's)
        features = tree_features_from_graphs(labelled, training_set.graphs)
        refit = refit_fidelity_trees(fidelity_aware, labelled, features, cheap_barriers, seed)
        if refit is not None:
            fidelity_trees, card[FIDELITY_CARD_KEY] = refit
    card.setdefault("calibration", {"sigma_scale": 1.0, "method": "none"})
    if calibration_scale is not None:
        card["calibration"] = {**card["calibration"], "sigma_scale": float(calibration_scale)}
    card.update(
        {
            "n_training_hops": len(labelled),
            "training_hop_ids": [h.hop_id for h in labelled],
            "training_fidelities": counts_by_fidelity(h.provenance.fidelity for h in labelled),
            "pretrained_backbone": str(pretrained.path.parent.name) if pretrained and pretrained.path else None,
            # absolute, for re-training from a backbone outside models/ (the name above is portable)
            "pretrained_path": str(pretrained.path.parent) if pretrained and pretrained.path else None,
            "wall_time_s": round(time.time() - started, 1),
            "seconds_per_member": [round(s, 1) for s in seconds],
            "device": device_description(dev),
            "peak_memory_mb": round(peak_memory_mb(dev), 1),
        }
    )
    return save_ensemble(models, Path(out_dir), card, config, training_set.settings, training_set.backbone_config, trees, fidelity_trees)


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__

