"""Auto-approval on a real store: oldest proposal first (pick order within a batch), and the
approve-time budget: in flight + approved-waiting ≤ max_running_jobs, started in 24 h +
approved-waiting ≤ max_jobs_per_day."""

from __future__ import annotations

import pytest

from alem.campaign.approve import AUTO_APPROVER, auto_approve
from alem.config import ApprovalSection
from alem.store import HopState, ProposalInput, Store


def _propose(store: Store, hop_ids: list[str]) -> None:
    """One batch, picked in the order given."""
    items = [ProposalInput(hop_id, score=1.0 - 0.1 * k, mean_ev=0.5, std_ev=0.1) for k, hop_id in enumerate(hop_ids)]
    store.add_proposals(Store.new_batch_id(), "explore", items)


def _submit(store: Store, hop_id: str) -> None:
    job = store.begin_submission(hop_id, "replay")
    store.mark_submitted(job.id, f"ext-{hop_id}")


@pytest.fixture
def store(tmp_path, tiny_hop):
    """Hops h0..h6; h0 already running (one job in flight, started today); two batches proposed:
    [h3, h1] first, then [h2, h5, h4]."""
    with Store.open(tmp_path / "s.sqlite") as store:
        store.add_hops([tiny_hop(f"h{k}", 0.3 + 0.05 * k) for k in range(7)])
        _propose(store, ["h0"])
        store.approve(["h0"], who="alice")
        _submit(store, "h0")
        _propose(store, ["h3", "h1"])
        _propose(store, ["h2", "h5", "h4"])
        yield store


def test_oldest_proposal_first_within_the_daily_budget(store):
    approval = ApprovalSection(auto_approve=True, max_running_jobs=4, max_jobs_per_day=3)
    # room = min(4 running - 1 live, 3 per day - 1 started) = 2: the first batch, in pick order
    assert auto_approve(store, approval) == ["h3", "h1"]
    assert all(d.who == AUTO_APPROVER for d in store.decisions() if d.hop_id in ("h3", "h1"))
    # approved-but-waiting hops count against both budgets: nothing more now
    assert auto_approve(store, approval) == []
    _submit(store, "h3")
    _submit(store, "h1")
    # 3 in flight (running room 1) but 3 started today: the daily budget binds
    assert auto_approve(store, approval) == []
    assert [r.hop_id for r in store.hops(state=HopState.PROPOSED)] == ["h2", "h4", "h5"]


def test_jobs_in_flight_bind_when_the_day_has_room(store):
    approval = ApprovalSection(auto_approve=True, max_running_jobs=3, max_jobs_per_day=100)
    assert auto_approve(store, approval) == ["h3", "h1"]  # 3 - 1 live
    _submit(store, "h3")
    assert auto_approve(store, approval) == []  # 2 live + h1 waiting = 3
    _submit(store, "h1")
    store.record_result(store.live_job("h0").id, _usable_outcome())
    assert auto_approve(store, approval) == ["h2"]  # h0 finished: one slot, the oldest proposal left
    assert auto_approve(store, ApprovalSection(auto_approve=False, max_running_jobs=99, max_jobs_per_day=99)) == []


def _usable_outcome():
    from alem.neb.schemas import NebOutcome

    return NebOutcome(barrier_ev=0.4, converged=True, method="replay:test")
