"""One review card per proposal waiting for a decision: what, why, how sure, at what cost, and
what the prediction leans on."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from alem.campaign.approve import waiting_proposals
from alem.errors import AlemError
from alem.hops.hop import GOOD_CONDUCTOR_THRESHOLD_EV, Hop
from alem.review.cost import CostEstimate, estimate_cost
from alem.review.neighbours import LiteratureIndex, NeighbourHop, hop_formula

if TYPE_CHECKING:
    from alem.config import CampaignConfig
    from alem.store import Proposal, Store


class ReviewError(AlemError, ValueError):
    """A proposal that cannot be reviewed (the message names the hop and what to do)."""


@dataclass(frozen=True)
class ReviewCard:
    hop_id: str
    formula: str
    working_ion: str
    hop_length_a: float
    n_sites: int
    host_name: str
    cost: CostEstimate
    strategy: str
    score: float
    batch_id: str
    model_version_id: int | None
    reason: str
    mean_ev: float
    std_ev: float
    prob_below_threshold: float
    picture_png: bytes
    min_host_distance_a: float
    neighbours: list[NeighbourHop]
    #: fraction of training hops closer to their own nearest neighbour than this hop is to its
    novelty: float
    #: the screening stage's MLIP barrier of the hop, e.g. "0.412 eV (mlip:CHGNet)"; "" = not screened
    cheap_barrier: str = ""
    #: the campaign's good-barrier threshold for the hop's working ion (eV)
    threshold_ev: float = GOOD_CONDUCTOR_THRESHOLD_EV
    #: what the hop means for its host: on the limiting path or not, and how far its label could
    #: move the host's P(good) ("" = the hop has no host)
    host_line: str = ""


def _normal_below(mean_ev: float, std_ev: float, threshold_ev: float) -> float:
    if std_ev <= 0:
        return float(mean_ev < threshold_ev)
    return 0.5 * (1.0 + math.erf((threshold_ev - mean_ev) / (std_ev * math.sqrt(2.0))))


def strategy_reason(strategy: str, score: float, mean_ev: float, std_ev: float, prob_below: float,
                    threshold_ev: float = GOOD_CONDUCTOR_THRESHOLD_EV, cost_weight: float = 0.0) -> str:
    """Why the acquisition picked the hop, in words a person can check against the numbers."""
    if strategy == "explore":
        text = (f"chosen because the ensemble members disagree most about it: σ {std_ev:.2f} eV "
                f"(explore: its σ given the hops already on their way and the batch, score {score:.3g})")
    elif strategy == "discover":
        text = (f"chosen because it may well beat {threshold_ev} eV: μ {mean_ev:.2f} eV, "
                f"P(E_m < {threshold_ev} eV) {prob_below:.2f} "
                f"(discover: log expected improvement below {threshold_ev} eV, score {score:.3g})")
    elif strategy == "balanced":
        text = (f"chosen for a low predicted barrier and a large uncertainty together: "
                f"σ − μ = {std_ev - mean_ev:+.2f} eV (balanced: upper confidence bound of −E_m, score {score:.3g})")
    elif strategy == "materials":
        text = (f"chosen because its label is expected to settle most of its host's good/not-good class "
                f"(materials: information about the host's class per core-hour, or in bits without costs; score {score:.3g})")
    else:
        text = f"chosen by strategy {strategy} (score {score:.3g})"
    if cost_weight > 0:
        text += f"; the score includes a supercell-cost penalty ({cost_weight} per 100 atoms)"
    return text


def _prediction(store: Store, proposal: Proposal) -> tuple[float, float]:
    """(μ, σ) the proposal was made with; ReviewError when there is none."""
    predictions = store.predictions(proposal.model_version_id, hop_ids=[proposal.hop_id]) if proposal.model_version_id else {}
    prediction = predictions.get(proposal.hop_id)
    if prediction is not None:
        return prediction.mean_ev, prediction.std_ev
    if proposal.mean_ev is not None and proposal.std_ev is not None:
        return proposal.mean_ev, proposal.std_ev
    raise ReviewError(
        f"hop {proposal.hop_id} (batch {proposal.batch_id}) has no prediction to review: no model scored it "
        "when it was proposed. Score it again (`alem propose` after `alem reject`/reopen) or decide without "
        "the page; nothing was written"
    )


def review_cards(store: Store, config: CampaignConfig, index: LiteratureIndex | None = None, k_neighbours: int = 5) -> list[ReviewCard]:
    """Cards of every waiting proposal (ReviewError, naming the hop, for one without prediction)."""
    from alem.review.picture import PICTURES_DIRNAME, bottleneck, kept_pictures

    proposals = waiting_proposals(store)
    predicted = [(proposal, _prediction(store, proposal)) for proposal in proposals]  # refuse before any work
    if not proposals:
        return []
    index = index if index is not None else LiteratureIndex.shipped(keep_in=config.state_dir)
    hops: dict[str, Hop] = {h.hop_id: h for h in store.load_hops([p.hop_id for p in proposals])}
    from alem.campaign.fidelity_labels import cheap_barriers_of

    cheap = cheap_barriers_of(store)
    host_lines = _host_lines(store, config, [p.hop_id for p in proposals])
    pictures = kept_pictures([hops[p.hop_id] for p in proposals], config.state_dir / PICTURES_DIRNAME)
    cards = []
    for proposal, (mean_ev, std_ev) in predicted:
        hop = hops[proposal.hop_id]
        # the campaign's threshold for the hop's ion, not the one the model's recorded P used
        threshold_ev = config.loop.good_barrier_ev_of(hop.working_ion)
        prob = _normal_below(mean_ev, std_ev, threshold_ev)
        record = store.hop(proposal.hop_id)
        host_name = (store.host(record.host_id).name or "") if record.host_id is not None else (record.group or "")
        neighbours = index.nearest(hop, k_neighbours)
        cards.append(ReviewCard(
            hop_id=hop.hop_id,
            formula=hop_formula(hop),
            working_ion=hop.working_ion,
            hop_length_a=hop.hop_length_a,
            n_sites=hop.n_sites,
            host_name=host_name,
            cost=estimate_cost(hop, config),
            strategy=proposal.strategy,
            score=proposal.score,
            batch_id=proposal.batch_id,
            model_version_id=proposal.model_version_id,
            reason=strategy_reason(proposal.strategy, proposal.score, mean_ev, std_ev, prob,
                                   threshold_ev=threshold_ev, cost_weight=config.acquisition.cost_weight),
            mean_ev=mean_ev,
            std_ev=std_ev,
            prob_below_threshold=prob,
            picture_png=pictures[hop.hop_id],
            min_host_distance_a=bottleneck(hop).min_distance_a,
            neighbours=neighbours,
            novelty=index.typicality(neighbours[0].distance) if neighbours else 1.0,
            cheap_barrier=f"{cheap[hop.hop_id].barrier_ev:.3f} eV ({cheap[hop.hop_id].fidelity})" if hop.hop_id in cheap else "",
            threshold_ev=threshold_ev,
            host_line=host_lines.get(hop.hop_id, ""),
        ))
    return cards


def host_line(influence: dict) -> str:
    """One sentence: does the hop limit its host's network, and how far could its label move the
    host's P(good) (E|ΔP| over the hop's joint posterior rows)."""
    where = "on" if influence["limiting_now"] else "not on"
    text = (f"host {influence['host_id']} {influence['formula']}: {where} the host's limiting path now "
            f"(limiting in {influence['limiting_share']:.0%} of the posterior rows)")
    prob = influence["prob_good"]
    if influence["expected_prob_change"] is not None and prob is not None:
        text += (f"; its label is expected to move the host's P(good) {prob:.2f} by "
                 f"{influence['expected_prob_change']:.2f} (E|ΔP| over its joint posterior rows)")
    elif prob is not None:
        text += f"; the host's P(good) {prob:.2f}"
    return text


def _host_lines(store: Store, config: CampaignConfig, hop_ids: list[str]) -> dict[str, str]:
    """:func:`host_line` of each proposed hop that belongs to a host."""
    host_ids = [host for host in (store.hop(h).host_id for h in hop_ids) if host is not None]
    if not host_ids:
        return {}
    from alem.campaign.materials import campaign_hosts, hop_influence

    influence = hop_influence(campaign_hosts(config, store, host_ids=host_ids), store, hop_ids)  # only the page's hosts
    return {hop_id: host_line(found) for hop_id, found in influence.items()}
