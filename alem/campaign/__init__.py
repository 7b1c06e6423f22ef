"""A campaign's steps, one module each, in the order one loop tick runs them:

* :mod:`~alem.campaign.reconcile`: the store brought in line with the backend (results recorded,
  failed and lost jobs retried);
* :mod:`~alem.campaign.ingest`: usable results as training hops, the dataset export;
* :mod:`~alem.campaign.retrain`: a new model version fine-tuned on them
  (:mod:`~alem.campaign.model_versions`: registering and loading versions, what a card says);
* :mod:`~alem.campaign.score`: the current model's predictions of the candidates;
* :mod:`~alem.campaign.propose`: one acquisition batch recorded as proposals;
* :mod:`~alem.campaign.approve`: proposals waiting for a decision, auto-approval within the
  budget (:mod:`~alem.campaign.budget`: the job budget approval and submission share);
* :mod:`~alem.campaign.submit`: approved hops submitted exactly once.

Around them: :mod:`~alem.campaign.init` (a new campaign), :mod:`~alem.campaign.enumeration`
(which candidate hops ``alem candidates add`` enumerates), :mod:`~alem.campaign.cancel`,
:mod:`~alem.campaign.hop_ids` (typed id prefixes) and :mod:`~alem.campaign.status` (what
``alem status`` shows). :mod:`alem.loop` runs the steps as a long-lived process.
"""

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
