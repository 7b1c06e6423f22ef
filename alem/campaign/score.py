"""Scoring the candidate pool: the current model's predictions, recorded per model version.

The loop scores candidates the current model has not predicted yet (so ``alem show``, the report
and the review page see a prediction for every candidate); proposing re-scores the whole pool it
chooses from.

With a model that has a sister correction (:mod:`alem.inference.sister_correction`), every
prediction reads the campaign's DFT labels: a candidate whose host has labelled hops is moved by
their residuals. After a result is ingested, the loop's scoring step re-scores the candidates of
its host whose prediction is older than the result (the fast path: no retraining), so ``alem
show`` of a sister of a just-labelled hop shows the prediction moving.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from alem.acquisition import PredictionTable
from alem.acquisition.model import POSTERIOR_DRAWS
from alem.config import ModelSection
from alem.hops.fidelity import CheapBarrier
from alem.inference.feature_cache import CACHE_FILENAME, FeatureCache
from alem.store import HopRecord, HopState, Prediction

if TYPE_CHECKING:
    from alem.campaign.model_versions import LoadedModel
    from alem.config import CampaignConfig
    from alem.ensemble import Ensemble, EnsemblePrediction
    from alem.hops.hop import Hop
    from alem.store import Store

#: Seed of the posterior rows: the same model and pool give the same rows, so a proposal repeats.
POSTERIOR_SEED = 0
#: Results whose barriers move their sisters' predictions: DFT of any functional (an MLIP barrier
#: is another level of theory, not a label of the stack's target).
SISTER_LABEL_FIDELITIES = ("dft",)
#: Hops predicted and recorded at a time when scoring (``[model] score_chunk_hops``).
DEFAULT_CHUNK_HOPS = ModelSection.model_fields["score_chunk_hops"].default


def sister_labels(store: Store, model: LoadedModel) -> list[Hop]:
    """The campaign's labelled hops the model's sister correction reads (none without one)."""
    from alem.campaign.ingest import result_hops

    if model.ensemble.sister is None:
        return []
    return result_hops(store, SISTER_LABEL_FIDELITIES)


def feature_cache_of(store: Store) -> FeatureCache:
    """The campaign's hop-feature cache, beside its store (``state/feature_cache.sqlite``): graphs'
    host context, descriptors and backbone features survive restarts and are shared by every
    model version with the same frozen backbone, so a rescoring after a retraining recomputes only
    what the new version changed."""
    return FeatureCache(Path(store.path).parent / CACHE_FILENAME)


def posterior_table(
    ensemble: Ensemble,
    hops: Sequence[Hop],
    progress: bool = False,
    cheap_barriers: Mapping[str, CheapBarrier] | None = None,
    labelled: Sequence[Hop] = (),
    cache: FeatureCache | None = None,
) -> tuple[EnsemblePrediction, PredictionTable]:
    """The calibrated prediction of ``hops`` and the acquisition's table: its rows are
    :data:`~alem.acquisition.model.POSTERIOR_DRAWS` joint draws of the model over the hops
    (seeded: the same model and pool give the same rows); ``labelled``: hops with a barrier whose
    sisters the model's correction moves."""
    prediction, draws = ensemble.posterior(
        hops, POSTERIOR_DRAWS, seed=POSTERIOR_SEED, cheap_barriers=cheap_barriers or None, progress=progress,
        labelled=labelled, cache=cache,
    )
    return prediction, PredictionTable.from_prediction([h.hop_id for h in hops], prediction, draws)


def predict_in_chunks(
    store: Store,
    model: LoadedModel,
    records: Sequence[HopRecord],
    chunk_hops: int = DEFAULT_CHUNK_HOPS,
    progress: bool = False,
    cheap_barriers: Mapping[str, CheapBarrier] | None = None,
    rows_of: Collection[str] | None = None,
    labelled: Sequence[Hop] | None = None,
) -> PredictionTable:
    """One posterior pass of ``model`` over ``records``, chunk by chunk
    (:meth:`~alem.ensemble.Ensemble.posterior_chunks`, chunks of ``chunk_hops`` rounded up to
    whole forward batches): each chunk's predictions are recorded when it is done (a killed pass
    keeps the chunks it recorded), and the calibrated joint rows of the hops ``rows_of`` (None:
    all) are gathered, exactly the rows one call over every record gives. One chunk's hops,
    features and draws are in memory at a time, plus the gathered rows. ``labelled``: the labelled
    hops the sister correction reads (None: :func:`sister_labels`). Returns the gathered rows,
    in the order of ``records``, their ``member_ev`` already calibrated."""
    ensemble = model.ensemble
    labelled = sister_labels(store, model) if labelled is None else labelled
    hop_ids = [r.hop_id for r in records]
    wanted = set(hop_ids) if rows_of is None else set(rows_of)
    kept_ids = [h for h in hop_ids if h in wanted]
    column = {h: k for k, h in enumerate(kept_ids)}
    rows, mean, std = np.empty((POSTERIOR_DRAWS, len(kept_ids))), np.empty(len(kept_ids)), np.empty(len(kept_ids))
    bounds = ensemble.chunk_bounds(len(hop_ids), chunk_hops)
    hosts = {r.group or r.hop_id for r in records}  # host_of of each hop, without loading it
    # the hops' content keys read with them: a hop whose features are cached is predicted without building its structures
    store.keep_content_keys(hop_ids)
    with feature_cache_of(store) as cache:
        chunks = (store.load_hops(hop_ids[start:stop]) for start, stop in bounds)
        n_draws = POSTERIOR_DRAWS if kept_ids else 0  # no rows wanted: no draws made
        passes = ensemble.posterior_chunks(chunks, hosts, n_draws, POSTERIOR_SEED, cheap_barriers or None, progress=progress,
                                           labelled=labelled, cache=cache)
        for (start, stop), (prediction, draws) in zip(bounds, passes, strict=True):
            chunk = hop_ids[start:stop]
            store.record_predictions(model.version_id, chunk, prediction.mean_ev, prediction.std_ev, prediction.prob_good)
            _log_unused_cheap_barriers(store, model, chunk, prediction.cheap_barrier_note or [])
            here = [k for k, h in enumerate(chunk) if h in wanted]
            if here:
                table = PredictionTable.from_prediction(chunk, prediction, draws)
                at = [column[chunk[k]] for k in here]
                rows[:, at] = table.calibrated_members()[:, here]  # per hop: a chunk's calibration is the whole call's
                mean[at], std[at] = table.mean_ev[here], table.std_ev[here]
    return PredictionTable(tuple(kept_ids), rows, mean, std)


def predict_pool(
    store: Store,
    model: LoadedModel,
    records: Sequence[HopRecord],
    progress: bool = False,
    cheap_barriers: Mapping[str, CheapBarrier] | None = None,
    chunk_hops: int = DEFAULT_CHUNK_HOPS,
) -> PredictionTable:
    """Predict ``records`` with ``model`` (in chunks, :func:`predict_in_chunks`) and record the
    predictions; hops with a cheap barrier of the model's potential get the fidelity-aware
    prediction. The rows are those of one :func:`posterior_table` call, calibrated."""
    return predict_in_chunks(store, model, records, chunk_hops, progress, cheap_barriers)


def pool_table(
    store: Store,
    model: LoadedModel,
    records: Sequence[HopRecord],
    progress: bool = False,
    cheap_barriers: Mapping[str, CheapBarrier] | None = None,
    config: CampaignConfig | None = None,
) -> PredictionTable:
    """The rows of a proposal's pool: the kept host rows of the model version
    (:mod:`alem.campaign.kept_rows`) when they cover ``records`` and were computed with the same
    MLIP barriers and sister labels (the same seed, so the very rows predicting again would give,
    already recorded), else :func:`predict_pool`. ``config``: the campaign (None: always predict);
    ``cheap_barriers`` must then be the campaign's (:func:`alem.campaign.fidelity_labels.campaign_cheap_barriers`)."""
    if config is not None:
        from alem.campaign.kept_rows import cheap_digest, labels_digest, read_rows, rows_path

        host_ids = [r.hop_id for r in store.hops() if r.host_id is not None]
        kept = read_rows(rows_path(config, model.version_id), [r.hop_id for r in records], cheap_digest(store, host_ids),
                         labels_digest(sister_labels(store, model)))
        if kept is not None:
            return kept
    chunk_hops = config.model.score_chunk_hops if config is not None else DEFAULT_CHUNK_HOPS
    return predict_pool(store, model, records, progress, cheap_barriers, chunk_hops)


def _log_unused_cheap_barriers(store: Store, model: LoadedModel, hop_ids: Sequence[str], notes: Sequence[str]) -> None:
    """A hop whose cheap barrier the model was given but did not read (below the floor, not
    finite) says so in its history (``alem show``): its recorded prediction is structure-only."""
    for hop_id, note in zip(hop_ids, notes, strict=True):
        if note and not note.startswith("used "):
            store.log_event("cheap-barrier-unused", f"model version {model.version_id} predicted it structure-only: {note}",
                            hop_id=hop_id, payload={"model_version_id": model.version_id, "note": note})


def keep_host_rows(
    config: CampaignConfig, store: Store, model: LoadedModel, progress: bool = False,
    records: Sequence[HopRecord] | None = None, others: Sequence[HopRecord] = (),
) -> tuple[PredictionTable, bool]:
    """The joint posterior rows of every stored hop of a host under ``model``
    (:mod:`alem.campaign.kept_rows`): read back when kept, else predicted in one chunked pass
    (:func:`predict_in_chunks`: the rows one call gives) with the MLIP barriers the campaign feeds
    the model, recorded, and kept (the rows file written once, whole, at the end). ``others``:
    hops without a host predicted and recorded in the same pass (their rows are not kept).
    Returns the rows and whether they were predicted here. ``records``: the host hops, if already read."""
    from alem.campaign.fidelity_labels import campaign_cheap_barriers
    from alem.campaign.kept_rows import cheap_digest, labels_digest, read_rows, rows_path, write_rows

    records = [r for r in store.hops() if r.host_id is not None] if records is None else records
    hop_ids = [r.hop_id for r in records]
    digest = cheap_digest(store, hop_ids)
    path = rows_path(config, model.version_id)
    kept = read_rows(path, hop_ids, digest)
    if kept is not None:
        return kept, False
    cheap, _ = campaign_cheap_barriers(store, config, model.ensemble, model.version_id)
    labelled = sister_labels(store, model)
    table = predict_in_chunks(store, model, [*records, *others], config.model.score_chunk_hops, progress, cheap, rows_of=hop_ids,
                              labelled=labelled)
    write_rows(path, table, digest, labels_digest(labelled))
    return table, True


def candidates_to_score(store: Store, model: LoadedModel) -> tuple[list[HopRecord], dict[str, list[str]], dict[str, Prediction]]:
    """Candidates the current model has not scored yet, and candidates whose host got a labelled
    hop after their prediction (with those hops; only for a model with a sister correction); the
    model's recorded predictions."""
    scored = store.predictions(model.version_id)
    stale = sisters_of_new_labels(store, model, scored)
    missing = [r for r in store.hops(state=HopState.CANDIDATE) if r.hop_id not in scored or r.hop_id in stale]
    return missing, stale, scored


def score_unscored_candidates(
    store: Store, model: LoadedModel, progress: bool = False, cheap_barriers: Mapping[str, CheapBarrier] | None = None,
    chunk_hops: int = DEFAULT_CHUNK_HOPS, config: CampaignConfig | None = None,
) -> int:
    """Predict (in this process, :func:`predict_in_chunks`) the candidates of
    :func:`candidates_to_score`; a re-scored candidate whose prediction moved gets a
    ``sister-label`` event (``alem show`` lists it). Returns how many were scored.

    With the campaign's ``config``, the first scoring of a model version predicts every host hop
    in the same chunked pass and keeps their joint rows (:func:`keep_host_rows`): the host
    answers, proposals and the ``materials`` strategy then read them instead of predicting the
    hops again."""
    return score_in_process(store, model, *candidates_to_score(store, model), chunk_hops, progress, cheap_barriers, config)


def score_in_process(
    store: Store, model: LoadedModel, missing: Sequence[HopRecord], stale: Mapping[str, list[str]], scored: Mapping[str, Prediction],
    chunk_hops: int = DEFAULT_CHUNK_HOPS, progress: bool = False, cheap_barriers: Mapping[str, CheapBarrier] | None = None,
    config: CampaignConfig | None = None,
) -> int:
    """Score ``missing`` (:func:`candidates_to_score`'s three answers) here and tell the sister moves;
    with ``config``, while the model version's host rows are not kept, one pass predicts every
    host hop and the missing hops without a host, recording them all and keeping the host rows
    (:func:`keep_host_rows`); the model runs once per hop."""
    n_missing = len(missing)
    if missing and config is not None and any(r.host_id is not None for r in missing):
        others = [r for r in missing if r.host_id is None]
        _, predicted = keep_host_rows(config, store, model, progress, others=others)
        if predicted:  # every host hop and the others were just predicted (sister labels read) and recorded
            missing = []
    if missing and config is not None and cheap_barriers is None:  # as the kept rows and proposals read them
        cheap_barriers = _campaign_cheap(store, config, model)
    if missing:
        predict_in_chunks(store, model, missing, chunk_hops, progress, cheap_barriers, rows_of=())
    if stale:
        log_moves(store, model, {h: scored[h] for h in stale}, stale)
    return n_missing


def _campaign_cheap(store: Store, config: CampaignConfig, model: LoadedModel) -> Mapping[str, CheapBarrier] | None:
    from alem.campaign.fidelity_labels import campaign_cheap_barriers

    return campaign_cheap_barriers(store, config, model.ensemble, model.version_id)[0] or None


#: A re-scored prediction that moved less than this is not worth an event.
MOVE_WORTH_TELLING_EV = 0.005


def log_moves(store: Store, model: LoadedModel, before: Mapping[str, Prediction], labels: Mapping[str, list[str]]) -> None:
    after = store.predictions(model.version_id, hop_ids=list(before))
    for hop_id, old in before.items():
        new = after[hop_id]
        if abs(new.mean_ev - old.mean_ev) < MOVE_WORTH_TELLING_EV:
            continue
        by = ", ".join(labels[hop_id])
        store.log_event(
            "sister-label",
            f"prediction moved {old.mean_ev:.3f} ± {old.std_ev:.3f} -> {new.mean_ev:.3f} ± {new.std_ev:.3f} eV by the "
            f"label of sister hop {by} (model version {model.version_id}, no retraining)",
            hop_id=hop_id,
            payload={"before_ev": old.mean_ev, "after_ev": new.mean_ev, "before_std_ev": old.std_ev, "after_std_ev": new.std_ev,
                     "labelled_sisters": labels[hop_id], "model_version_id": model.version_id},
        )


def sisters_of_new_labels(store: Store, model: LoadedModel, scored: Mapping[str, Prediction]) -> dict[str, list[str]]:
    """Candidates whose recorded prediction is older than a usable DFT result of a hop of their
    host, with those hops (none for a model without a sister correction)."""
    from alem.hops.fidelity import matches

    if model.ensemble.sister is None:
        return {}
    results = [r for r in store.results(usable=True) if matches(r.fidelity, SISTER_LABEL_FIDELITIES)]
    if not results:
        return {}
    records = store.hops()
    host = {r.hop_id: r.group or r.hop_id for r in records}
    labels_by_host: dict[str, list[tuple[float, str]]] = {}
    for result in results:
        labels_by_host.setdefault(host.get(result.hop_id, result.hop_id), []).append((result.created_at, result.hop_id))
    stale: dict[str, list[str]] = {}
    for record in records:
        if record.state is not HopState.CANDIDATE or record.hop_id not in scored:
            continue
        since = scored[record.hop_id].created_at
        newer = sorted({hop for when, hop in labels_by_host.get(host[record.hop_id], []) if when > since})
        if newer:
            stale[record.hop_id] = newer
    return stale
