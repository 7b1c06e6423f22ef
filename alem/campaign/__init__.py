"""A campaign's life between "approved" and "in the dataset": creating a campaign, submitting
approved hops (idempotently), reconciling the store with the backend, and ingesting results."""

from alem.campaign.cancel import CancelError, CancelReport, cancel_jobs
from alem.campaign.ingest import export_dataset, result_hops, usable_results_since
from alem.campaign.init import CampaignExistsError, init_campaign
from alem.campaign.reconcile import ReconcileReport, reconcile
from alem.campaign.submit import SubmitReport, resolve_unsubmitted, submit_approved

__all__ = [
    "CancelError",
    "CancelReport",
    "cancel_jobs",
    "CampaignExistsError",
    "ReconcileReport",
    "SubmitReport",
    "export_dataset",
    "init_campaign",
    "reconcile",
    "resolve_unsubmitted",
    "result_hops",
    "submit_approved",
    "usable_results_since",
]
