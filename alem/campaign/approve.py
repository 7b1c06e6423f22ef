"""Approval: the proposals waiting for a decision, and automatic approval within the campaign's
budget (``[approval]`` in alem.toml).

With ``auto_approve = true`` the loop approves proposed hops, oldest proposal first (within a batch in
the order the acquisition picked them), only as far as
the budget allows: jobs in flight plus approved hops waiting stay within ``max_running_jobs``, and
jobs started in the last 24 h plus those waiting stay within ``max_jobs_per_day``. Everything else
stays proposed for a person (or a later round).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alem.campaign.budget import approved_waiting, job_budget
from alem.store import HopState, Proposal

if TYPE_CHECKING:
    from alem.config import ApprovalSection
    from alem.store import Store

AUTO_APPROVER = "alem-loop (auto_approve)"


def latest_proposals(store: Store) -> dict[str, Proposal]:
    """The latest proposal of every hop ever proposed, by hop id (a re-proposal replaces the
    earlier one)."""
    return {p.hop_id: p for p in store.proposals()}  # in id order: the last one wins


def waiting_proposals(store: Store) -> list[Proposal]:
    """The latest proposal of every hop still waiting for a decision, oldest first (proposal ids
    grow in pick order, so within a batch in the order the acquisition picked; a re-proposed hop
    counts from its latest proposal)."""
    proposed = {r.hop_id for r in store.hops(state=HopState.PROPOSED)}
    latest = [p for hop_id, p in latest_proposals(store).items() if hop_id in proposed]
    return sorted(latest, key=lambda p: p.id)


def approval_room(store: Store, approval: ApprovalSection) -> int:
    """How many more hops may be approved now without exceeding the budget."""
    budget = job_budget(store, approval)
    waiting = len(approved_waiting(store))
    return max(0, min(budget.free_running - waiting, budget.free_today - waiting))


def auto_approve(store: Store, approval: ApprovalSection) -> list[str]:
    """Approve proposed hops within the budget; returns the approved hop ids."""
    if not approval.auto_approve:
        return []
    room = approval_room(store, approval)
    if room <= 0:
        return []
    order = [proposal.hop_id for proposal in waiting_proposals(store)][:room]
    if order:
        store.approve(order, who=AUTO_APPROVER, reason=f"within budget ({room} free)")
    return order
