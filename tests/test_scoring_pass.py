"""The loop's scoring runs the model once per hop: one chunked posterior pass records every
chunk's predictions and gathers the host hops' joint rows, written once at the end
(``alem.campaign.score``, ``alem.campaign.kept_rows``); the rows are exactly one whole-pool call's,
a kill leaves the recorded chunks and no rows file, and a proposal reads the kept rows instead of
predicting the pool again, with the very rows (so the very batch) predicting again gives.

Real data: shipped host CIFs enumerated by ``alem candidates add``, a real tiny ensemble, a real
SQLite store and feature cache.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from alem import PACKAGE_DATA
from alem.acquisition import PredictionTable, SelectionRequest, select_batch
from alem.cli import app
from alem.store import Store

HOST_FILES = [str(PACKAGE_DATA / "hosts" / name) for name in ("LiCoO2_layered.cif", "Li2O_antifluorite.cif")]
CHUNK_HOPS = 2


def _host_campaign(tmp_path, ensemble_dir, **model_settings):
    """A campaign of the host hops of two shipped hosts (8 hops)."""
    from alem.campaign import init_campaign

    config = init_campaign(tmp_path / "campaign", backend="local")
    config.model.path = str(ensemble_dir)
    for key, value in model_settings.items():
        setattr(config.model, key, value)
    config.save()
    added = CliRunner().invoke(app, ["candidates", "add", *HOST_FILES, "--max-hop-length", "5.0", "-C", str(config.campaign_dir)])
    assert added.exit_code == 0, added.output
    return config


@pytest.fixture
def campaign(tmp_path, replay_ensemble_dir, monkeypatch):
    """Members forward 2 hop graphs at a time and the loop scores 2 hops a chunk, so the pool takes
    several chunks; every chunk the model predicts is listed in ``chunks``."""
    import alem.inference.members
    from alem.ensemble import Ensemble

    config = _host_campaign(tmp_path, replay_ensemble_dir, score_chunk_hops=CHUNK_HOPS)
    monkeypatch.setattr(alem.inference.members, "GRAPH_BATCH", CHUNK_HOPS)
    chunks: list[list[str]] = []
    posterior_chunks = Ensemble.posterior_chunks

    def listing(self, given, *args, **kwargs):
        def seen():
            for hops in given:
                chunks.append([h.hop_id for h in hops])
                if getattr(listing, "die_at", None) == len(chunks):
                    raise KeyboardInterrupt  # a kill between chunks
                yield hops
        return posterior_chunks(self, seen(), *args, **kwargs)

    monkeypatch.setattr(Ensemble, "posterior_chunks", listing)
    return config, chunks, listing


def _whole_call_rows(config, store) -> PredictionTable:
    """The host hops' calibrated rows from one posterior call over all of them."""
    from alem.campaign.model_versions import load_current_model
    from alem.campaign.score import posterior_table

    records = [r for r in store.hops() if r.host_id is not None]
    _, table = posterior_table(load_current_model(store, config).ensemble, store.load_hops([r.hop_id for r in records]))
    return PredictionTable(table.hop_ids, table.calibrated_members(), table.mean_ev, table.std_ev)


def test_the_first_scoring_predicts_each_hop_once_and_keeps_the_whole_calls_rows(campaign):
    from alem.campaign.kept_rows import rows_path
    from alem.campaign.model_versions import load_current_model
    from alem.campaign.score import score_unscored_candidates

    config, chunks, _ = campaign
    with Store.open(config.store_path) as store:
        model = load_current_model(store, config)
        n_hops = len(store.hops())
        assert n_hops > 2 * CHUNK_HOPS
        assert score_unscored_candidates(store, model, config=config) == n_hops
        predicted = [h for chunk in chunks for h in chunk]
        assert sorted(predicted) == sorted(r.hop_id for r in store.hops())  # every hop once, in one pass
        assert len(chunks) > 2 and max(len(c) for c in chunks) <= CHUNK_HOPS + 1
        assert set(store.predictions(model.version_id)) == set(predicted)
        with np.load(rows_path(config, model.version_id)) as kept:
            expected = _whole_call_rows(config, store)
            assert kept["hop_ids"].tolist() == list(expected.hop_ids)
            assert np.array_equal(kept["rows_ev"], expected.member_ev)  # bit for bit
            assert np.array_equal(kept["mean_ev"], expected.mean_ev) and np.array_equal(kept["std_ev"], expected.std_ev)
        recorded = store.predictions(model.version_id)
        assert [recorded[h].mean_ev for h in expected.hop_ids] == pytest.approx(expected.mean_ev.tolist(), abs=1e-12)
        chunks.clear()
        assert score_unscored_candidates(store, model, config=config) == 0 and chunks == []


def test_a_scoring_killed_between_chunks_keeps_its_chunks_and_writes_no_rows(campaign):
    from alem.campaign.kept_rows import rows_path
    from alem.campaign.model_versions import load_current_model
    from alem.campaign.score import candidates_to_score, score_unscored_candidates

    config, chunks, listing = campaign
    listing.die_at = 3
    with Store.open(config.store_path) as store:
        model = load_current_model(store, config)
        n_hops = len(store.hops())
        with pytest.raises(KeyboardInterrupt):
            score_unscored_candidates(store, model, config=config)
        assert len(store.predictions(model.version_id)) == 2 * CHUNK_HOPS  # the two chunks done are recorded
        assert len(candidates_to_score(store, model)[0]) == n_hops - 2 * CHUNK_HOPS
        assert not rows_path(config, model.version_id).parent.exists() or not any(rows_path(config, model.version_id).parent.iterdir())
        listing.die_at = None
        score_unscored_candidates(store, model, config=config)
        with np.load(rows_path(config, model.version_id)) as kept:
            assert np.array_equal(kept["rows_ev"], _whole_call_rows(config, store).member_ev)


def test_a_proposal_reads_the_kept_rows_and_chooses_what_predicting_again_would(campaign, monkeypatch):
    import alem.campaign.score
    from alem.campaign.fidelity_labels import campaign_cheap_barriers
    from alem.campaign.model_versions import load_current_model
    from alem.campaign.propose import PENDING_STATES, propose
    from alem.campaign.score import pool_table, score_unscored_candidates
    from alem.store import HopState

    config, chunks, _ = campaign
    with Store.open(config.store_path) as store:
        model = load_current_model(store, config)
        score_unscored_candidates(store, model, config=config)
        pool = store.hops(state=[HopState.CANDIDATE, *PENDING_STATES])
        cheap = campaign_cheap_barriers(store, config, model.ensemble, model.version_id)[0] or None
        chunks.clear()
        kept = pool_table(store, model, pool, cheap_barriers=cheap, config=config)
        assert chunks == []  # read, not predicted
        again = pool_table(store, model, pool, cheap_barriers=cheap)
        assert sum(len(c) for c in chunks) == len(pool)
        assert kept.hop_ids == again.hop_ids
        for name in ("member_ev", "mean_ev", "std_ev"):
            assert np.array_equal(getattr(kept, name), getattr(again, name)), name
        request = SelectionRequest(strategy="explore", batch_size=3, host_of={r.hop_id: str(r.host_id) for r in pool})
        assert [(s.hop_id, s.score) for s in select_batch(kept, request)] == [(s.hop_id, s.score) for s in select_batch(again, request)]

        def forbidden(*args, **kwargs):
            raise AssertionError("the proposal predicted the pool although its rows are kept")

        monkeypatch.setattr(alem.campaign.score, "predict_in_chunks", forbidden)
        outcome = propose(store, config, model, strategy="explore", batch_size=3)
        assert [p.hop_id for p in outcome.proposals] == [s.hop_id for s in select_batch(again, request)]


def test_a_scoring_job_keeps_the_host_rows_too(tmp_path, replay_ensemble_dir):
    """``score_on = "backend"``: a local job predicts the pool and the host hops' rows chunk by
    chunk in its run directory; the loop records the predictions and writes the rows at completion."""
    import time

    from alem.campaign.kept_rows import rows_path
    from alem.campaign.model_versions import load_current_model
    from alem.campaign.score_job import advance_scoring
    from alem.store import HopState

    config = _host_campaign(tmp_path, replay_ensemble_dir, score_on="backend", score_job_min_hops=1)
    with Store.open(config.store_path) as store:
        model = load_current_model(store, config)
        n_candidates = len(store.hops(state=HopState.CANDIDATE))
        step = advance_scoring(store, config, model)
        assert step.live is not None and store.predictions(model.version_id) == {}
        exit_marker = Path(step.live.run_dir) / "exit.json"
        deadline = time.time() + 300
        while not exit_marker.exists() and time.time() < deadline:
            time.sleep(1)
        assert not rows_path(config, model.version_id).exists()  # written by the loop, once the job is done
        step = advance_scoring(store, config, model)
        assert step.scored == n_candidates and "finished" in " ".join(step.messages)
        with np.load(rows_path(config, model.version_id)) as kept:
            expected = _whole_call_rows(config, store)
            assert kept["hop_ids"].tolist() == list(expected.hop_ids)
            np.testing.assert_array_equal(kept["rows_ev"], expected.member_ev)


def _retrained_version(store, config, tmp_path) -> None:
    """A second model version, registered as current: the shipped members with their heads' last
    bias moved (as a retraining changes the heads), the same frozen backbone."""
    import shutil

    import torch

    from alem.campaign.model_versions import ensure_model_version, load_ensemble, store_card
    from alem.model_dir import default_ensemble_path, member_filename

    ensure_model_version(store, config)
    target = tmp_path / "retrained"
    shutil.copytree(default_ensemble_path(), target)
    ensemble = load_ensemble(target)
    with torch.no_grad():
        for k, member in enumerate(ensemble.members):
            member.head.net[-1].bias[0] += 0.02
            torch.save(member.state_dict(), target / member_filename(k))
    store.add_model_version(target, store_card(load_ensemble(target).card))


def test_a_rescoring_after_a_retraining_builds_no_structure_and_predicts_the_same_bits(tmp_path, monkeypatch):
    """The shipped (frozen-backbone) model scores the pool, filling the feature cache; after a
    retraining the rescoring reads every hop's features by the content key kept in the store
    (computed from the stored columns first where a hop has none), so no pymatgen structure is
    built, and its predictions and kept rows are bit for bit those of
    one call over hops read with their structures (no cache)."""
    import alem.store.structure_json
    from alem.campaign.kept_rows import rows_path
    from alem.campaign.model_versions import load_current_model
    from alem.campaign.score import posterior_table, score_unscored_candidates
    from alem.hops.hop import Hop

    config = _host_campaign(tmp_path, "")  # "": the shipped ensemble
    with Store.open(config.store_path) as store:
        score_unscored_candidates(store, load_current_model(store, config), config=config)
        with store.transaction():  # hops as a store migrated from schema 10 holds them: no content key yet
            store._conn.execute("UPDATE hops SET content_key = NULL")
        _retrained_version(store, config, tmp_path)
        model = load_current_model(store, config)
        records = [r for r in store.hops() if r.host_id is not None]
        built = []
        endpoints = alem.store.structure_json.endpoints_from_columns
        monkeypatch.setattr(alem.store.structure_json, "_structure", lambda data: built.append(data) or 1 / 0)
        n_hops = score_unscored_candidates(store, model, config=config)
        assert n_hops == len(records) > 2 and built == []  # no structure of any hop was built
        assert store._conn.execute("SELECT COUNT(*) FROM hops WHERE content_key IS NULL").fetchone()[0] == 0
        monkeypatch.undo()
        with_structures = [Hop(h.hop_id, *endpoints(*store._conn.execute(
            "SELECT initial_json, final_json FROM hops WHERE hop_id = ?", (h.hop_id,)).fetchone()), h.working_ion, group=h.group)
            for h in store.load_hops([r.hop_id for r in records])]
        prediction, table = posterior_table(model.ensemble, with_structures)
        recorded = store.predictions(model.version_id)
        assert [recorded[h.hop_id].mean_ev for h in with_structures] == prediction.mean_ev.tolist()  # SQLite REAL: the same float
        assert [recorded[h.hop_id].std_ev for h in with_structures] == prediction.std_ev.tolist()
        with np.load(rows_path(config, model.version_id)) as kept:
            assert kept["hop_ids"].tolist() == list(table.hop_ids)
            assert np.array_equal(kept["rows_ev"], table.calibrated_members())  # bit for bit
