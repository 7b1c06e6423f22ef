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

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

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


def predict_pool(
    store: Store,
    model: LoadedModel,
    records: Sequence[HopRecord],
    progress: bool = False,
    cheap_barriers: Mapping[str, CheapBarrier] | None = None,
) -> PredictionTable:
    """Predict ``records`` with ``model`` and record the predictions; hops with a cheap barrier of
    the model's potential get the fidelity-aware prediction (:func:`posterior_table`)."""
    hop_ids = [r.hop_id for r in records]
    labelled = sister_labels(store, model)
    with feature_cache_of(store) as cache:
        prediction, table = posterior_table(model.ensemble, store.load_hops(hop_ids), progress, cheap_barriers, labelled,
                                            cache)
    store.record_predictions(model.version_id, hop_ids, prediction.mean_ev, prediction.std_ev, prediction.prob_good)
    _log_unused_cheap_barriers(store, model, hop_ids, prediction.cheap_barrier_note or [])
    return table


def _log_unused_cheap_barriers(store: Store, model: LoadedModel, hop_ids: Sequence[str], notes: Sequence[str]) -> None:
    """A hop whose cheap barrier the model was given but did not read (below the floor, not
    finite) says so in its history (``alem show``): its recorded prediction is structure-only."""
    for hop_id, note in zip(hop_ids, notes, strict=True):
        if note and not note.startswith("used "):
            store.log_event("cheap-barrier-unused", f"model version {model.version_id} predicted it structure-only: {note}",
                            hop_id=hop_id, payload={"model_version_id": model.version_id, "note": note})


def keep_host_rows(
    config: CampaignConfig, store: Store, model: LoadedModel, progress: bool = False,
    records: Sequence[HopRecord] | None = None,
) -> tuple[PredictionTable, bool]:
    """The joint posterior rows of every stored hop of a host under ``model``
    (:mod:`alem.campaign.kept_rows`): read back when kept, else predicted in one call (so they
    stay joint) with the MLIP barriers the campaign feeds the model, recorded and kept. Returns
    the rows and whether they were predicted here. ``records``: the host hops, if already read."""
    from alem.campaign.fidelity_labels import campaign_cheap_barriers
    from alem.campaign.kept_rows import cheap_digest, read_rows, rows_path, write_rows

    records = [r for r in store.hops() if r.host_id is not None] if records is None else records
    hop_ids = [r.hop_id for r in records]
    digest = cheap_digest(store, hop_ids)
    path = rows_path(config, model.version_id)
    kept = read_rows(path, hop_ids, digest)
    if kept is not None:
        return kept, False
    cheap, _ = campaign_cheap_barriers(store, config, model.ensemble, model.version_id)
    table = predict_pool(store, model, records, progress, cheap)
    write_rows(path, table, digest)
    return table, True


#: Hops predicted and recorded at a time when scoring (``[model] score_chunk_hops``).
DEFAULT_CHUNK_HOPS = ModelSection.model_fields["score_chunk_hops"].default


def candidates_to_score(store: Store, model: LoadedModel) -> tuple[list[HopRecord], dict[str, list[str]], dict[str, Prediction]]:
    """Candidates the current model has not scored yet, and candidates whose host got a labelled
    hop after their prediction (with those hops; only for a model with a sister correction); the
    model's recorded predictions."""
    scored = store.predictions(model.version_id)
    stale = sisters_of_new_labels(store, model, scored)
    missing = [r for r in store.hops(state=HopState.CANDIDATE) if r.hop_id not in scored or r.hop_id in stale]
    return missing, stale, scored


def record_in_chunks(
    store: Store, model: LoadedModel, hop_ids: Sequence[str], chunk_hops: int = DEFAULT_CHUNK_HOPS, progress: bool = False,
    cheap_barriers: Mapping[str, CheapBarrier] | None = None,
) -> int:
    """Predict ``hop_ids`` with ``model`` ``chunk_hops`` at a time and record each chunk's
    predictions when it is done: one chunk's structures and features are in memory at a time,
    and a killed scoring keeps the chunks it recorded. Returns how many were recorded."""
    labelled = sister_labels(store, model)
    with feature_cache_of(store) as cache:
        for start in range(0, len(hop_ids), chunk_hops):
            chunk = list(hop_ids[start:start + chunk_hops])
            prediction = model.ensemble.predict(store.load_hops(chunk), cheap_barriers or None, progress=progress, labelled=labelled,
                                                cache=cache)
            store.record_predictions(model.version_id, chunk, prediction.mean_ev, prediction.std_ev, prediction.prob_good)
            _log_unused_cheap_barriers(store, model, chunk, prediction.cheap_barrier_note or [])
    return len(hop_ids)


def score_unscored_candidates(
    store: Store, model: LoadedModel, progress: bool = False, cheap_barriers: Mapping[str, CheapBarrier] | None = None,
    chunk_hops: int = DEFAULT_CHUNK_HOPS, config: CampaignConfig | None = None,
) -> int:
    """Predict (in this process, :func:`record_in_chunks`) the candidates of
    :func:`candidates_to_score`; a re-scored candidate whose prediction moved gets a
    ``sister-label`` event (``alem show`` lists it). Returns how many were scored.

    With the campaign's ``config``, the first scoring of a model version predicts every host hop
    in one call and keeps those joint rows (:func:`keep_host_rows`): the host answers and the
    ``materials`` strategy then read them instead of predicting the hops again."""
    return score_in_process(store, model, *candidates_to_score(store, model), chunk_hops, progress, cheap_barriers, config)


def score_in_process(
    store: Store, model: LoadedModel, missing: Sequence[HopRecord], stale: Mapping[str, list[str]], scored: Mapping[str, Prediction],
    chunk_hops: int = DEFAULT_CHUNK_HOPS, progress: bool = False, cheap_barriers: Mapping[str, CheapBarrier] | None = None,
    config: CampaignConfig | None = None,
) -> int:
    """Score ``missing`` (:func:`candidates_to_score`'s three answers) here and tell the sister moves;
    with ``config``, host hops through :func:`keep_host_rows` (one joint call, kept)."""
    n_missing = len(missing)
    if missing and config is not None and any(r.host_id is not None for r in missing):
        table, predicted = keep_host_rows(config, store, model, progress)
        if predicted:  # every host hop was just predicted (sister labels read) and recorded
            done = set(table.hop_ids)
            missing = [r for r in missing if r.hop_id not in done]
    if missing:
        record_in_chunks(store, model, [r.hop_id for r in missing], chunk_hops, progress, cheap_barriers)
    if stale:
        log_moves(store, model, {h: scored[h] for h in stale}, stale)
    return n_missing


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
