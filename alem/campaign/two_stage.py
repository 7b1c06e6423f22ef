"""What a DFT proposal needs from the campaign's fidelity settings, in one place for the loop and
``alem propose``: the screening stage's cheap barriers (fidelity-aware model of the same potential
only), the good-barrier threshold of the promise estimate, and the cost-aware selection fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alem.campaign.model_versions import LoadedModel
    from alem.config import CampaignConfig
    from alem.store import Store


@dataclass
class ProposalContext:
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra keyword arguments of propose_batch
    warning: str | None = None  # said once: the model's and the screening stage's potentials differ


def proposal_context(store: Store, config: CampaignConfig, model: LoadedModel) -> ProposalContext:
    """``propose_batch`` keyword arguments for ``model`` (a ``LoadedModel``) under ``config``."""
    from alem.campaign.fidelity_labels import backend_fidelity, campaign_cheap_barriers
    from alem.campaign.neb_costs import backend_preset_or_none, cost_request_fields
    from alem.campaign.propose import PENDING_STATES
    from alem.store import HopState

    cheap, warning = campaign_cheap_barriers(store, config, model.ensemble, model.version_id)
    cost_fields = {}
    if config.costs.aware:  # the structures are read only when the costs are used
        records = store.hops(state=[HopState.CANDIDATE, *PENDING_STATES])
        hops = store.load_hops([r.hop_id for r in records])
        cost_fields = cost_request_fields(hops, backend_fidelity(config), config.costs, backend_preset_or_none(config))
    kwargs = {
        "cheap_barriers": cheap or None,
        "good_barrier_ev": config.loop.good_barrier_ev,
        "cost_fields": cost_fields,
    }
    return ProposalContext(kwargs, warning)
