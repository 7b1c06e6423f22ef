"""The joint posterior rows of the campaign's host hops, computed once per model version.

The host answers (``alem hosts``, ``alem show HOST_ID``, the report, the review page, the
``materials`` strategy) read the same rows the acquisition reads: :data:`POSTERIOR_DRAWS` joint
draws of the current model over every stored hop of every host (so two hops co-vary as the model
makes them co-vary), predicted in chunks that give exactly one whole call's rows
(:func:`alem.campaign.score.predict_in_chunks`: memory bounded by the chunk, not the pool).
Predicting is the slow part (the model is loaded and every hop featurised), so the rows are kept in
``<state dir>/posterior_rows/model-<N>.npz``
and read back while the model version, the hop set (a subset is cut out of the kept rows) and the
MLIP barriers fed to the model are unchanged. Writing the prediction also records it for the model
version, as a proposal does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from alem.acquisition import PredictionTable
from alem.campaign.kept_rows import cheap_digest, read_rows, rows_path
from alem.errors import AlemError

if TYPE_CHECKING:
    from alem.campaign.model_versions import LoadedModel
    from alem.config import CampaignConfig
    from alem.store import Store

__all__ = ["HostRows", "host_rows", "rows_path"]


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
        """The calibrated rows, n_rows x n_hops (computed once): the table's
        :meth:`~alem.acquisition.PredictionTable.calibrated_members`, each hop's column reduced on
        its own, so the rows of a few hosts' hops are bit for bit those of the whole campaign's (a
        reduction across the row axis of a wide array rounds differently with its width)."""
        if self.table is None:
            return np.zeros((0, 0))
        by_hop = np.ascontiguousarray(self.table.member_ev.T)  # n_hops x n_rows: one contiguous reduction per hop
        deviation = by_hop - by_hop.mean(axis=1, keepdims=True)
        raw_std = deviation.std(axis=1, ddof=1) if by_hop.shape[1] > 1 else np.zeros(len(by_hop))
        scale = np.divide(self.table.std_ev, raw_std, out=np.zeros_like(raw_std), where=raw_std > 1e-12)
        return (self.table.mean_ev[:, None] + deviation * scale[:, None]).T


def host_rows(
    config: CampaignConfig, store: Store, progress: bool = False, model: LoadedModel | None = None,
    hop_ids: Sequence[str] | None = None,
) -> HostRows:
    """Joint posterior rows of every stored hop of a host under the current model, kept or
    computed (with ``model`` when it is the current version already loaded). ``hop_ids``: only
    these hops' columns are wanted (a question about a few hosts): the kept rows are checked for
    the whole campaign as always, and only those columns read."""
    campaign = store.host_hop_ids()
    if not campaign:
        return HostRows(None, "no host hops")
    if hop_ids is None:
        wanted = campaign
    else:  # the rows are of host hops only: a hop without a host (lent by signature) has none to read
        of_hosts = set(campaign)
        wanted = list(dict.fromkeys(h for h in hop_ids if h in of_hosts))
    current = store.current_model()
    if current is not None:
        kept = read_rows(rows_path(config, current.id), wanted, cheap_digest(store, campaign), covering=campaign)
        if kept is not None:
            return HostRows(kept, _what(current.id, kept))
    # computing them loads the model stack (torch): imported only when the kept rows cannot serve
    from alem.campaign.model_versions import load_current_model
    from alem.campaign.score import keep_host_rows

    if model is None or current is None or model.version_id != current.id:
        try:
            model = load_current_model(store, config)
        except AlemError as exc:
            return HostRows(None, f"no model rows ({str(exc).splitlines()[0]})")
    records = [r for r in store.hops() if r.host_id is not None]
    table, _ = keep_host_rows(config, store, model, progress, records)
    return HostRows(table, _what(model.version_id, table))


def _what(version_id: int, table: PredictionTable) -> str:
    return f"joint posterior rows of model {version_id}, {table.member_ev.shape[0]} draws"
