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

from typing import TYPE_CHECKING

from alem import lazy_attributes

if TYPE_CHECKING:  # what type checkers and editors see; at run time names load on first use
    from alem.campaign.cancel import CancelError, CancelReport, cancel_jobs
    from alem.campaign.ingest import export_dataset, result_hops, usable_results_since
    from alem.campaign.init import CampaignExistsError, init_campaign
    from alem.campaign.reconcile import ReconcileReport, reconcile
    from alem.campaign.submit import SubmitReport, resolve_unsubmitted, submit_approved

#: Where each name of the package lives; imported on first use (PEP 562), so that a read command
#: such as ``alem status`` importing ``alem.campaign.status`` does not pull in the NEB and
#: enumeration libraries that the other steps need (seconds of start-up on a login node).
_LAZY = {
    "CancelError": "cancel", "CancelReport": "cancel", "cancel_jobs": "cancel",
    "export_dataset": "ingest", "result_hops": "ingest", "usable_results_since": "ingest",
    "CampaignExistsError": "init", "init_campaign": "init",
    "ReconcileReport": "reconcile", "reconcile": "reconcile",
    "SubmitReport": "submit", "resolve_unsubmitted": "submit", "submit_approved": "submit",
}

__all__ = [
    "CampaignExistsError",
    "CancelError",
    "CancelReport",
    "ReconcileReport",
    "SubmitReport",
    "cancel_jobs",
    "export_dataset",
    "init_campaign",
    "reconcile",
    "resolve_unsubmitted",
    "result_hops",
    "submit_approved",
    "usable_results_since",
]


__getattr__ = lazy_attributes(__name__, _LAZY)  # a loaded submodule (reconcile) never shadows its function
