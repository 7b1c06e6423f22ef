"""The campaign state store: one SQLite file that remembers everything a campaign did.

Every state change is ONE transaction that also appends to the event log, so a killed process
leaves either the old state or the new one, never half of it. WAL mode lets ``alem status`` read
while the loop writes. Opening an older store migrates it (one transaction); a newer one is refused.

API (all methods raise :class:`StoreError` subclasses with a plain message; nothing is written then)::

    from alem.store import Store, HopState, JobStatus, ProposalInput

    store = Store.open(config.store_path)             # creates / migrates; close() or `with`

    # candidates
    host_id = store.add_host(structure, source_file="LiCoO2.cif")
    ids = store.add_hops(hops, host_id=host_id)       # de-duplicated by structure fingerprint
    store.hops(state="candidate")                     # -> [HopRecord]   (no structures)
    store.load_hops(ids)                              # -> [LazyHop]     (structures built on first use)
    store.keep_content_keys(ids)                      # each hop's content key, where it has none
    store.hop(hop_id); store.hop_counts()

    # model and predictions
    mv = store.add_model_version(path, card, dataset_hash, n_training_hops)   # becomes current
    store.current_model()                             # -> ModelVersion | None (card has CV metrics)
    store.record_predictions(mv, hop_ids, mean_ev, std_ev, prob_good)
    store.predictions()                               # {hop_id: Prediction} of the current model

    # proposals and decisions (the approval state machine, see alem.store.states)
    store.add_proposals(Store.new_batch_id(), "balanced", [ProposalInput(hop_id, score, mean, std)], mv)
    store.approve([hop_id], who="alice", reason=...)  # candidate|proposed|failed -> approved
    store.reject([hop_id], who="alice", reason=...)   # candidate|proposed|approved -> rejected
    store.withdraw_proposals([hop_id], reason)        # proposed -> candidate

    # jobs (used by alem.campaign.submit / reconcile)
    job = store.begin_submission(hop_id, backend.name)         # committed row with job.job_key
    store.mark_submitted(job.id, external_id)                  # id + states in one transaction
    store.update_job_state(job.id, "running")
    store.fail_job(job.id, error, max_attempts, state="lost")  # -> hop approved (retry) or failed
    store.record_result(job.id, neb_outcome)                   # -> hop done, or failed with reason
    store.jobs(live=True); store.results(usable=True)  # stage="target"|"screening" filters
    # screening (cheap NEBs without approval; the hop never moves; see alem.store.screening_jobs)
    job = store.begin_screening(hop_id, backend.name, "mlip:CHGNet")
    store.mark_screening_submitted(job.id, external_id); store.record_screening_result(job.id, outcome)
    store.fail_screening_job(job.id, error, state="lost"); store.screened_hop_ids("mlip:CHGNet")
    # retraining jobs ([model] retrain_on = "backend"; one live at a time; see alem.store.retrain_jobs)
    rj = store.begin_retrain_job("slurm", attempt, parent_model_id, n_new_results, run_root)
    store.mark_retrain_submitted(rj.id, external_id); store.update_retrain_state(rj.id, "running")
    store.finish_retrain_job(rj.id, "completed", model_version_id=mv); store.live_retrain_job()
    # scoring jobs ([model] score_on = "backend"; one live at a time; see alem.store.score_jobs)
    sj = store.begin_score_job("slurm", attempt, model_version_id, n_hops, run_root)
    store.mark_score_submitted(sj.id, external_id); store.finish_score_job(sj.id, "completed", n_recorded=n)
    # remaining promise per proposal round (status trend, stop rule)
    store.record_campaign_round(mv, batch_id, n_pool, threshold_ev, expected_good, best_acquisition)
    store.campaign_rounds()

    # log, loop status, health
    store.events(hop_id=..., limit=50); store.log_event("retrained", "model 3 trained on 571 hops")
    store.set_loop_status("proposing", "scoring 1200 candidates"); store.loop_status()
    store.integrity_check()                           # -> [problem sentence]
    with store.transaction(): ...                     # group several calls atomically (nests)

Event kinds written by the store: host_added, hops_added, model_added, model_current,
predictions, proposed, withdrawn, approved, rejected, reopened, job_created, job_submitted,
job_state, job_abandoned, job_failed, job_lost, retry, hop_failed, result, result_failed,
screening_created, screening_submitted, screened, screening_failed, screening_lost, campaign_round,
retrain_created, retrain_submitted, retrain_completed, retrain_failed, retrain_lost.
"""

from alem.store.records import (
    CampaignRound,
    Decision,
    Event,
    HopRecord,
    HostRecord,
    JobRecord,
    LoopStatus,
    ModelVersion,
    Prediction,
    Proposal,
    ProposalInput,
    ResultRecord,
)
from alem.store.schema import SCHEMA_VERSION, SchemaError
from alem.store.states import (
    LIVE_JOB_STATUSES,
    HopState,
    IllegalTransition,
    JobStatus,
    StoreError,
    StoreUnavailableError,
    UnknownHopError,
)
from alem.store.store import Store

__all__ = [
    "CampaignRound",
    "LIVE_JOB_STATUSES",
    "SCHEMA_VERSION",
    "Decision",
    "Event",
    "HopRecord",
    "HopState",
    "HostRecord",
    "IllegalTransition",
    "JobRecord",
    "JobStatus",
    "LoopStatus",
    "ModelVersion",
    "Prediction",
    "Proposal",
    "ProposalInput",
    "ResultRecord",
    "SchemaError",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "UnknownHopError",
]
