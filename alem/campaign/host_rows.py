"""The joint posterior rows of the campaign's host hops, computed once per model version.

The host answers (``alem hosts``, ``alem show HOST_ID``, the report, the review page, the
``materials`` strategy) read the same rows the acquisition reads: :data:`POSTERIOR_DRAWS` joint
draws of the current model over every stored hop of every host (:func:`alem.campaign.score.posterior_table`,
so two hops co-vary as the model makes them co-vary). Predicting is the slow part (the model is
loaded and every hop featurised), so the rows are kept in ``<state dir>/posterior_rows/model-<N>.npz``
and read back while the model version, the hop set (a subset is cut out of the kept rows) and the
MLIP barriers fed to the model are unchanged. Writing the prediction also records it for the model
version, as a proposal does.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from alem.acquisition import PredictionTable
from alem.campaign.fidelity_labels import cheap_barriers_of
from alem.errors import AlemError

if TYPE_CHECKING:
    from pathlib import Path

    from alem.campaign.model_versions import LoadedModel
    from alem.config import CampaignConfig
    from alem.store import Store

ROWS_DIRNAME = "posterior_rows"


@dataclass(frozen=True)
class HostRows:
    """The rows (None: no model could give them) and one line saying what they are."""

    table: PredictionTable | None
    what: str

    @cached_property
    def index(self) -> dict[str, int]:
        """Column of each hop id (computed once: every host reads it)."""
        return {} if self.table is None else self.table.index_of()

    @cached_property
    def calibrated_ev(self) -> np.ndarray:
        """The calibrated rows, n_rows x n_hops (computed once)."""
        return np.zeros((0, 0)) if self.table is None else self.table.calibrated_members()


def rows_path(config: CampaignConfig, version_id: int) -> Path:
    return config.state_dir / ROWS_DIRNAME / f"model-{version_id}.npz"


def _cheap_digest(store: Store, hop_ids: list[str]) -> str:
    """A fingerprint of the MLIP barriers the model could read for these hops (a new screening
    result changes a fidelity-aware model's rows)."""
    wanted = set(hop_ids)
    cheap = sorted((h, b.fidelity, round(b.barrier_ev, 9)) for h, b in cheap_barriers_of(store).items() if h in wanted)
    return hashlib.sha256(repr(cheap).encode()).hexdigest()


def _read(path: Path, hop_ids: list[str], digest: str) -> PredictionTable | None:
    """The kept rows of ``hop_ids``, or None when they are not all kept under this digest."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as kept:
            if str(kept["cheap_digest"]) != digest:
                return None
            index = {h: k for k, h in enumerate(kept["hop_ids"].tolist())}
            if not all(h in index for h in hop_ids):
                return None
            columns = [index[h] for h in hop_ids]
            return PredictionTable(tuple(hop_ids), kept["rows_ev"][:, columns], kept["mean_ev"][columns], kept["std_ev"][columns])
    except (OSError, KeyError, ValueError):
        return None  # an unreadable file is recomputed, never trusted


def _write(path: Path, table: PredictionTable, digest: str) -> None:
    """Calibrated rows, written whole or not at all (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(
        partial, hop_ids=np.array(table.hop_ids, dtype=str), rows_ev=table.calibrated_members(),
        mean_ev=table.mean_ev, std_ev=table.std_ev, cheap_digest=np.array(digest),
    )
    os.replace(partial, path)


def host_rows(config: CampaignConfig, store: Store, progress: bool = False, model: LoadedModel | None = None) -> HostRows:
    """Joint posterior rows of every stored hop of a host under the current model, kept or
    computed (with ``model`` when it is the current version already loaded)."""
    from alem.campaign.fidelity_labels import campaign_cheap_barriers
    from alem.campaign.model_versions import load_current_model
    from alem.campaign.score import predict_pool

    records = [r for r in store.hops() if r.host_id is not None]
    if not records:
        return HostRows(None, "no host hops")
    hop_ids = [r.hop_id for r in records]
    current = store.current_model()
    digest = _cheap_digest(store, hop_ids)
    if current is not None:
        kept = _read(rows_path(config, current.id), hop_ids, digest)
        if kept is not None:
            return HostRows(kept, _what(current.id, kept))
    if model is None or current is None or model.version_id != current.id:
        try:
            model = load_current_model(store, config)
        except AlemError as exc:
            return HostRows(None, f"no model rows ({str(exc).splitlines()[0]})")
    cheap, _ = campaign_cheap_barriers(store, config, model.ensemble, model.version_id)
    table = predict_pool(store, model, records, progress, cheap)
    _write(rows_path(config, model.version_id), table, digest)
    return HostRows(table, _what(model.version_id, table))


def _what(version_id: int, table: PredictionTable) -> str:
    return f"joint posterior rows of model {version_id}, {table.member_ev.shape[0]} draws"
