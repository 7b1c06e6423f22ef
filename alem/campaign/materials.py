"""Material-level decisions: each host's classification on the joint rows, what each hop could
change about it, the ``materials`` proposal and its stop rule.

A host is *classified* when P(good) (its percolation barrier below the campaign's threshold for its
working ion, over the joint posterior rows with computed hops fixed) is at least p or at most 1 − p.
The ``materials`` strategy (:mod:`alem.acquisition.materials`) proposes the candidate hops expected
to settle the most unclassified hosts' classes per core-hour; the stop rule ``[loop]
stop_when_hosts_classified = p`` stops the loop when every host is classified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from alem.acquisition.materials import expected_prob_change, select_materials_batch
from alem.campaign.host_answers import kept_analyses
from alem.campaign.host_networks import HostAnalysis, analysis_of, paths_of_hosts
from alem.campaign.host_rows import HostRows, host_rows

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from alem.acquisition import Selection
    from alem.campaign.model_versions import LoadedModel
    from alem.config import CampaignConfig
    from alem.store import HopRecord, Store


@dataclass(frozen=True)
class CampaignHosts:
    """Every host's analysis on one set of joint rows."""

    rows: HostRows
    analyses: dict[int, HostAnalysis]

    def values_ev(self, hop_id: str) -> np.ndarray | None:
        """The hop's barrier on each row (clipped at 0 eV as the networks read it); None: not in the rows."""
        if hop_id not in self.rows.index:
            return None
        return np.clip(self.rows.calibrated_ev[:, self.rows.index[hop_id]], 0.0, None)


def campaign_hosts(config: CampaignConfig, store: Store, model: LoadedModel | None = None,
                   host_ids: Sequence[int] | None = None) -> CampaignHosts:
    """Every host analysed on the campaign's joint rows (``model``: the current one, if loaded), or
    only ``host_ids`` (a page about a few hops reads only their hosts' rows, networks and columns
    of the joint rows; a host whose network cannot be built is left out)."""
    if host_ids is None:  # every host: the kept answers, refreshed where they no longer hold
        rows = host_rows(config, store, model=model)
        return CampaignHosts(rows, kept_analyses(config, store, rows, whole=False))
    found = paths_of_hosts(config, store, host_ids)
    wanted = [hop_id for paths in found.values() for hop_id in paths.row_hop_ids]
    rows = host_rows(config, store, model=model, hop_ids=wanted)
    return CampaignHosts(rows, {host_id: analysis_of(config, store, paths, rows) for host_id, paths in found.items()})


def hop_influence(hosts: CampaignHosts, store: Store, hop_ids: list[str]) -> dict[str, dict[str, Any]]:
    """For each hop of a host: whether it limits the host's network now, in what share of the rows
    it does, and E|ΔP(good)| of the host once its label is known (review page)."""
    out: dict[str, dict[str, Any]] = {}
    records = {h: store.hop(h) for h in hop_ids}
    for hop_id in hop_ids:
        record = records.get(hop_id)
        analysis = hosts.analyses.get(record.host_id) if record is not None and record.host_id is not None else None
        if analysis is None:
            continue
        summary = analysis.summary
        spread = summary["spread"] or {}
        values = hosts.values_ev(hop_id)
        change = None
        if analysis.good_rows is not None and values is not None:
            change = expected_prob_change(analysis.good_rows, values)
        out[hop_id] = {
            "host_id": summary["host_id"],
            "formula": summary["formula"],
            "limiting_now": summary["limiting_hop"] == hop_id,
            "limiting_share": spread.get("limiting_share", {}).get(hop_id, 0.0),
            "prob_good": summary["prob_good"],
            "expected_prob_change": change,
        }
    return out


def unclassified(analyses: Mapping[int, HostAnalysis], certainty: float) -> dict[str, np.ndarray]:
    """Good-rows of hosts whose P(good) lies strictly between 1 − certainty and certainty."""
    return {
        str(host_id): a.good_rows
        for host_id, a in analyses.items()
        if a.good_rows is not None and 1 - certainty < float(np.mean(a.good_rows)) < certainty
    }


def materials_selections(
    store: Store,
    config: CampaignConfig,
    model: LoadedModel,
    candidates: list[HopRecord],
    pending: list[HopRecord],
    batch_size: int,
    cost_core_hours_of: Mapping[str, float] | None = None,
) -> list[Selection]:
    """The ``materials`` batch: the candidates expected to settle the most unclassified hosts'
    classes (per core-hour when costs are known), conditioned on the pending hops."""
    from alem.acquisition import Selection

    hosts = campaign_hosts(config, store, model)
    pool = candidates + pending
    values = {r.hop_id: v for r in pool if (v := hosts.values_ev(r.hop_id)) is not None}
    picks = select_materials_batch(
        unclassified(hosts.analyses, config.loop.stop_when_hosts_classified or DEFAULT_CERTAINTY),
        values,
        {r.hop_id: str(r.host_id) for r in pool if r.host_id is not None},
        [r.hop_id for r in candidates],
        batch_size,
        pending=[r.hop_id for r in pending],
        max_per_host=config.acquisition.max_per_host,
        cost_core_hours_of=cost_core_hours_of,
    )
    table, index = hosts.rows.table, hosts.rows.index
    assert table is not None or not picks  # picks come from its rows
    return [
        Selection(p.hop_id, index[p.hop_id], p.score, float(table.mean_ev[index[p.hop_id]]), float(table.std_ev[index[p.hop_id]]))
        for p in picks
    ] if table is not None else []


#: P(good) a host must reach either way to count as classified when the stop rule is off.
DEFAULT_CERTAINTY = 0.9


def hosts_classified_reason(config: CampaignConfig, store: Store) -> str | None:
    """The stop rule's sentence when every host is classified with P ≥ p either way (None: go on)."""
    certainty = config.loop.stop_when_hosts_classified
    if not certainty or not store.hosts():
        return None
    hosts = campaign_hosts(config, store)
    probs = [a.summary["prob_good"] for a in hosts.analyses.values()]
    if any(p is None or 1 - certainty < p < certainty for p in probs):
        return None
    good = sum(p >= certainty for p in probs)
    return (
        f"stop rule: every host is classified with P ≥ {certainty:g} ({good} good, {len(probs) - good} not good; "
        "[loop] stop_when_hosts_classified)"
    )
