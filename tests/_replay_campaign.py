"""A replay campaign for loop tests: small shipped hops as candidates (labels hidden in the store,
answered by the replay backend), and the CLI run against it. The ensemble it ranks with is the
session fixture ``replay_ensemble_dir`` (tests/conftest.py)."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections import Counter
from pathlib import Path

from typer.testing import CliRunner

from alem.cli import app
from alem.store import Store
from tests._proposal_campaign import small_shipped_hops

runner = CliRunner()
TINY_TRAINING_HOPS = 24


def small_dataset_hops(n: int, offset: int = 0):
    """``n`` shipped hops with at most 60 sites (fast to featurise), from ``offset`` on."""
    hops = small_shipped_hops(max_sites=60)[offset : offset + n]
    assert len(hops) == n
    return list(hops)


def make_replay_campaign(
    directory: Path, ensemble_dir: Path, n_hops: int = 12, offset: int = TINY_TRAINING_HOPS, hops=None, **settings
):
    """A replay campaign whose candidates are ``n_hops`` small shipped hops from ``offset`` on
    (by default ones the tiny ensemble was not trained on), or ``hops`` when given, labels hidden
    in the store and answered by the replay backend. ``settings``: ``section__key=value`` overrides."""
    from alem.campaign import init_campaign
    from alem.hops import write_dataset

    hops = list(hops) if hops is not None else small_dataset_hops(n_hops, offset=offset)
    dataset = write_dataset(hops, directory / "replay.json")
    config = init_campaign(directory / "campaign", backend="replay", replay_dataset=str(dataset))
    config.model.path = str(ensemble_dir)
    for key, value in settings.items():
        *path, leaf = key.split("__")
        target = config
        for part in path:
            target = getattr(target, part)
        setattr(target, leaf, value)
    config.save()
    with Store.open(config.store_path) as store:
        store.add_hops([dataclasses.replace(h, barrier_ev=None) for h in hops])
    return config, {h.hop_id: h.barrier_ev for h in hops}


def invoke(config, *args):
    result = runner.invoke(app, [*args, "--campaign", str(config.campaign_dir)])
    return result


def replay_submissions(config) -> Counter:
    with sqlite3.connect(config.state_dir / "replay_backend.sqlite") as conn:
        return Counter(row[0] for row in conn.execute("SELECT hop_id FROM submissions"))
