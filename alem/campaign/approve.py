"""Automatic approval within the campaign's budget (``[approval]`` in alem.toml).

With ``auto_approve = true`` the loop approves proposed hops, oldest proposal first (within a batch in
the order the acquisition picked them), only as far as
the budget allows: jobs in flight plus approved hops waiting stay within ``max_running_jobs``, and
jobs started in the last 24 h plus those waiting stay within ``max_jobs_per_day``. Everything else
stays proposed for a person (or a later round).
"""

from __future__ import annotations

from alem.store import HopState

DAY_S = 86400.0
AUTO_APPROVER = "alem-loop (auto_approve)"


def approval_room(store, approval) -> int:
    """How many more hops may be approved now without exceeding the budget."""
    live = len(store.jobs(live=True, stage="target"))
    waiting = sum(1 for r in store.hops(state=HopState.APPROVED) if store.live_job(r.hop_id) is None)
    started_today = store.count_jobs_created_since(store.now() - DAY_S)
    return max(0, min(approval.max_running_jobs - live - waiting, approval.max_jobs_per_day - started_today - waiting))


def auto_approve(store, approval) -> list[str]:
    """Approve proposed hops within the budget; returns the approved hop ids."""
    if not approval.auto_approve:
        return []
    room = approval_room(store, approval)
    if room <= 0:
        return []
    proposed = {r.hop_id for r in store.hops(state=HopState.PROPOSED)}
    latest: dict[str, int] = {}
    for proposal in store.proposals():
        if proposal.hop_id in proposed:
            latest[proposal.hop_id] = proposal.id  # ids grow in pick order; a re-proposal counts anew
    order = sorted(latest, key=latest.__getitem__)[:room]
    if order:
        store.approve(order, who=AUTO_APPROVER, reason=f"within budget ({room} free)")
    return order
