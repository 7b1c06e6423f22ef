"""A replay campaign whose candidates are small shipped hops renamed like enumerated ones
(``<16-hex host id>-p<N>``, as `alem candidates add` names hops of a host file called by its
corpus id), for the table, approval and review tests."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from alem.store import ProposalInput, Store

HOSTS = ("1b7a4c0e9d2f3a51", "1b7a4c0e9d2f3a77", "d6b19462186b3a86")


@functools.cache
def small_shipped_hops(max_sites: int = 40):
    from alem.hops import load_training_hops

    return tuple(h for h in load_training_hops() if h.n_sites <= max_sites)


def candidate_hops(n: int, offset: int = 0):
    """``n`` small shipped hops with enumerated-style ids (hosts share a long prefix) and no label."""
    hops = small_shipped_hops()[offset : offset + n]
    assert len(hops) == n
    return [
        dataclasses.replace(h, hop_id=f"{HOSTS[k % len(HOSTS)]}-p{k + 1}", barrier_ev=None)
        for k, h in enumerate(hops)
    ]


def make_campaign(directory: Path, n_hops: int = 6, ensemble_dir: Path | None = None):
    """A replay campaign with ``n_hops`` candidates (no proposals yet)."""
    from alem.campaign import init_campaign
    from alem.hops import write_dataset

    hops = candidate_hops(n_hops, offset=30)
    labelled = [dataclasses.replace(h, barrier_ev=0.5) for h in hops]
    dataset = write_dataset(labelled, directory / "replay.json")
    config = init_campaign(directory / "campaign", backend="replay", replay_dataset=str(dataset))
    if ensemble_dir is not None:
        config.model.path = str(ensemble_dir)
        config.save()
    with Store.open(config.store_path) as store:
        store.add_hops(hops)
    return config, [h.hop_id for h in hops]


def propose_by_hand(config, hop_ids, predicted=True, strategy="explore"):
    """Record a model version, its predictions and a proposal batch of ``hop_ids`` directly in the
    store (μ, σ chosen per hop), as `alem propose` would."""
    with Store.open(config.store_path) as store:
        version = store.add_model_version("models/ensemble", {"cv": {"mae_ev": 0.2}}, "sha256:abc", 556)
        means = [0.3 + 0.1 * k for k in range(len(hop_ids))]
        sigmas = [0.5 + 0.2 * k for k in range(len(hop_ids))]
        if predicted:
            store.record_predictions(version, hop_ids, means, sigmas, [0.6] * len(hop_ids))
        items = [
            ProposalInput(h, score=s, mean_ev=m if predicted else None, std_ev=s if predicted else None)
            for h, m, s in zip(hop_ids, means, sigmas)
        ]
        batch = store.new_batch_id()
        store.add_proposals(batch, strategy, items, model_version_id=version)
    return batch
