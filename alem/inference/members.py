"""The GNN members: fine-tune one, predict with one, and the members as one stack component.

A member is a :class:`~alem.nn.models.BarrierModel` started from the pre-trained backbone and
fitted on DFT-NEB barriers with a Laplace likelihood; :class:`GnnMembers` is the ensemble of them
as a :class:`~alem.inference.components.BarrierComponent` (mean and σ of the mixture of the
members' Laplace distributions).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from alem.graphs.crystal_graph import GraphSettings, HopData
from alem.inference.components import BarrierComponent, ComponentPrediction, HopInputs
from alem.inference.draw_randomness import DrawRandomness
from alem.inference.hop_graphs import PathTensors
from alem.inference.stacking import combine_members
from alem.model_dir import BACKBONE_FILENAME, FinetuneConfig, member_filename
from alem.nn.backbone import BackboneConfig
from alem.nn.models import BarrierModel
from alem.nn.steps import gradient_step
from alem.progress import maybe_progress


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
    tensors = train_data.to(device) if isinstance(train_data, PathTensors) else None
    graphs = [] if isinstance(train_data, PathTensors) else list(train_data)
    n_items = tensors.n_hops if tensors is not None else len(graphs)
    if config.bootstrap:
        weight = torch.bincount(torch.randint(n_items, (n_items,), generator=generator), minlength=n_items).float()
    else:
        weight = torch.ones(n_items)
    targets = tensors.y if tensors is not None else torch.cat([g.y for g in graphs])
    targets, weight = targets.to(device), weight.to(device)
    descriptors = tensors.path_desc if tensors is not None else torch.cat([g.path_desc for g in graphs])
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
            if tensors is not None:
                location, scale = model.path_forward(**tensors.batch(index))
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


#: Hops per forward pass of a member on precomputed path tensors. A batch is a slice
#: (:meth:`PathTensors.consecutive_batches`), so small batches cost no cutting; at 128 hops a
#: convolution's edge-sized intermediates (~10,000 edges x 128) stay in the CPU's caches: 0.98 ms of
#: CPU per hop for five members (one thread), 1.6 ms at 1024 hops.
PATH_TENSOR_BATCH = 128
#: Hop graphs per forward pass of a member (a member that does not read path tensors).
GRAPH_BATCH = 64


@torch.inference_mode()
def predict_member(
    model: BarrierModel,
    data: Sequence[HopData] | PathTensors | list[dict[str, torch.Tensor]],
    device: torch.device,
    batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One member's Laplace location and scale for every hop.

    Args:
        model: a fine-tuned member.
        data: ``n_hops`` hop graphs, or (frozen backbone) their :class:`PathTensors`, or those cut
            into batches already (:func:`path_batches`, on ``device``).
        device: where to run the model.
        batch_size: hops per forward pass of hop graphs (default :data:`GRAPH_BATCH`; path
            tensors: :data:`PATH_TENSOR_BATCH`).

    Returns:
        ``(location_ev, scale_ev)``, each a float array of shape ``n_hops``, in input order.
    """
    model.to(device).eval()
    locations, scales = [], []
    if isinstance(data, PathTensors) or (isinstance(data, list) and data and isinstance(data[0], dict)):
        batches = path_batches(data, device) if isinstance(data, PathTensors) else data
        for inputs in batches:
            location, scale = model.path_forward(**inputs)
            locations.append(location.cpu())
            scales.append(scale.cpu())
    else:
        for batch in DataLoader(list(data), batch_size=batch_size or GRAPH_BATCH):
            location, scale = model(batch.to(device))
            locations.append(location.cpu())
            scales.append(scale.cpu())
    if not locations:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    return torch.cat(locations).numpy(), torch.cat(scales).numpy()


def path_batches(data: PathTensors, device: torch.device, members: Sequence[BarrierModel] = ()) -> list[dict[str, torch.Tensor]]:
    """``data`` cut into :data:`PATH_TENSOR_BATCH` consecutive hops per forward pass, once for all
    members; when ``members`` share one radial basis (a frozen backbone), each batch carries its
    edges' basis (``path_edge_attr``) so that it is computed once, not once per member."""
    batches = data.to(device).consecutive_batches(PATH_TENSOR_BATCH)
    bases = [m.backbone.rbf for m in members]
    centers = [cast(torch.Tensor, b.centers) for b in bases]
    if bases and all(b.width == bases[0].width and torch.equal(c, centers[0]) for b, c in zip(bases, centers, strict=True)):
        with torch.inference_mode():
            for inputs in batches:
                inputs["path_edge_attr"] = bases[0].to(device)(inputs["path_dist"])
    return batches


def members_on_one_thread(
    members: Sequence[BarrierModel], batches: list[dict[str, torch.Tensor]], device: torch.device
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`predict_member` of each member on ``batches``, torch's ops on one thread on the CPU:
    an op on :data:`PATH_TENSOR_BATCH` hops is too small to share out over cores, and on a shared
    machine (a login node) a second op thread mostly waits. Measured on 2,000 hops of a 10^4-hop
    campaign on a busy 2-core machine: 0.94-0.98 ms of CPU per hop (1.4-2.0 ms wall) on one thread,
    1.5-2.0 ms of CPU (2.1-4.0 ms wall) with the members on two threads side by side, 1.7-1.9 ms
    of CPU with two op threads at 1024 hops per pass."""
    n_threads = torch.get_num_threads()
    if device.type != "cpu" or n_threads == 1:
        return [predict_member(m, batches, device) for m in members]
    torch.set_num_threads(1)
    try:
        return [predict_member(m, batches, device) for m in members]
    finally:
        torch.set_num_threads(n_threads)


class GnnMembers(BarrierComponent):
    """The fine-tuned GNN members as one stack component.

    Args:
        members: fitted members (empty until :meth:`fit`).
        config: how members are (or were) fine-tuned; None for a card without one.
        n_members: members :meth:`fit` trains.
        pretrained: the backbone new members start from (None: ``scratch``).
        backbone_config: the members' backbone (default: the pre-trained one's).
        progress: a progress bar while fitting.
        description: its label.
    """

    name = "gnn"

    def __init__(
        self,
        members: Sequence[BarrierModel] = (),
        config: FinetuneConfig | None = None,
        n_members: int | None = None,
        pretrained: Pretrained | None = None,
        backbone_config: BackboneConfig | None = None,
        progress: bool = False,
        description: str = "fine-tuning",
    ):
        self.members = list(members)
        self.config = config
        self.n_members = len(self.members) if n_members is None else n_members
        self.pretrained = pretrained
        self.backbone_config = backbone_config or (pretrained.backbone_config if pretrained else BackboneConfig())
        self.progress = progress
        self.description = description
        #: Wall time of fitting each member, s.
        self.seconds_per_member: list[float] = []

    @property
    def frozen(self) -> bool:
        """Every member carries the same frozen pre-trained backbone: hosts are embedded once."""
        return self.config is not None and self.config.freeze == "frozen"

    @property
    def batch_hops(self) -> int:
        """Hops per forward pass of :meth:`predict` (:func:`predict_member`)."""
        return PATH_TENSOR_BATCH if self.frozen else GRAPH_BATCH

    def _data(self, inputs: HopInputs) -> list[HopData] | PathTensors:
        return inputs.path_tensors if self.frozen else inputs.graphs

    def fit(self, inputs: HopInputs, y_ev: np.ndarray | None = None, seed: int = 0) -> GnnMembers:
        """Train :attr:`n_members` members (seeds ``seed * 1000 + k``) on the hops of ``inputs``;
        their graphs carry the barriers (``y_ev``, when given, must be those)."""
        config = self.config or FinetuneConfig()
        data = self._data(inputs)
        if y_ev is not None:
            labels = data.y if isinstance(data, PathTensors) else torch.cat([g.y for g in data])
            if not np.allclose(labels.cpu().numpy(), y_ev):
                raise ValueError("the hops' graphs carry other barriers than y_ev")
        self.members, self.seconds_per_member = [], []
        with maybe_progress(self.progress) as bar:
            task = bar.add_task(self.description, total=self.n_members * config.epochs, info="") if bar else None
            for member in range(self.n_members):
                started = time.time()
                model = new_barrier_model(self.pretrained, config, self.backbone_config, inputs.settings)
                train_member(model, data, config, seed=seed * 1000 + member, device=inputs.device, progress=bar, task=task)
                self.members.append(model.cpu())
                self.seconds_per_member.append(time.time() - started)
        return self

    def member_predictions(self, inputs: HopInputs) -> tuple[np.ndarray, np.ndarray]:
        """Each member's (location, scale), shapes ``n_members x n_hops``."""
        key = ("gnn_members", id(self))
        if key not in inputs.computed:  # predict and sample of one set of hops share one forward pass
            data = self._data(inputs)
            if isinstance(data, PathTensors):  # cut once, the radial basis computed once
                batches = path_batches(data, inputs.device, self.members)
                outputs = members_on_one_thread(self.members, batches, inputs.device)
            else:
                outputs = [predict_member(m, data, inputs.device) for m in self.members]
            inputs.computed[key] = (np.stack([o[0] for o in outputs]), np.stack([o[1] for o in outputs]))
        location, scale = cast(tuple[np.ndarray, np.ndarray], inputs.computed[key])
        return location, scale

    def predict(self, inputs: HopInputs) -> ComponentPrediction:
        location, scale = self.member_predictions(inputs)
        mean, sigma = combine_members(location, scale, 1.0)
        return ComponentPrediction(mean, sigma, location, scale)

    def sample(self, inputs: HopInputs, n_draws: int, randomness: DrawRandomness) -> np.ndarray:
        """Each draw: one member picked at random for every hop (the members' disagreement is
        shared across hops), then each hop's barrier from that member's Laplace distribution,
        drawn independently per hop; hops with the same inputs (the same hop listed twice, a
        symmetry-equivalent path: :attr:`HopInputs.noise_keys`) share that draw, since a
        member's error on a hop is a function of what it reads."""
        location, scale = self.member_predictions(inputs)
        picks = randomness.choices.integers(len(location), size=n_draws)
        unit = randomness.unit_laplace(inputs.noise_keys, n_draws)
        return location[picks] + scale[picks] * unit

    def save(self, model_dir: Path) -> None:
        for k, model in enumerate(self.members):
            torch.save(model.state_dict(), Path(model_dir) / member_filename(k))

    @classmethod
    def load(
        cls, model_dir: Path, n_members: int, config: FinetuneConfig | None, backbone_config: BackboneConfig, settings: GraphSettings
    ) -> GnnMembers:
        """The ``n_members`` members saved in ``model_dir``, in eval mode."""
        dropout = config.dropout if config else FinetuneConfig().dropout
        members = []
        for k in range(n_members):
            model = BarrierModel(backbone_config, settings.n_images, settings.n_descriptors, dropout=dropout)
            model.load_state_dict(torch.load(Path(model_dir) / member_filename(k), map_location="cpu", weights_only=True))
            model.eval()
            members.append(model)
        return cls(members, config, backbone_config=backbone_config)
