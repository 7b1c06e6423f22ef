"""Approval on a real store: the proposals waiting for a decision (latest per proposed hop), the
job budget (approved hops without a live job, the rolling 24 h), and auto-approval: oldest proposal
first (pick order within a batch), in flight + approved-waiting ≤ max_running_jobs, started in
24 h + approved-waiting ≤ max_jobs_per_day."""

from __future__ import annotations

import pytest

from alem.campaign.approve import AUTO_APPROVER, approval_room, auto_approve, waiting_proposals
from alem.campaign.budget import DAY_S, JobBudget, approved_waiting, job_budget
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


def test_waiting_proposals_are_the_latest_proposal_of_each_proposed_hop(store):
    _propose(store, ["h1", "h6"])  # h1 proposed again: its newer proposal counts, in the new pick order
    store.approve(["h2"], who="alice")
    store.reject(["h5"], who="alice", reason="no")
    waiting = waiting_proposals(store)
    assert [p.hop_id for p in waiting] == ["h3", "h4", "h1", "h6"]
    latest_batch = store.proposals(hop_id="h6")[0].batch_id
    assert {p.hop_id: p.batch_id for p in waiting}["h1"] == latest_batch
    assert len(store.proposals(hop_id="h1")) == 2


def test_approved_hops_without_a_live_job_are_what_the_budget_counts_as_waiting(store):
    approval = ApprovalSection(auto_approve=True, max_running_jobs=4, max_jobs_per_day=3)
    assert approved_waiting(store) == []
    assert job_budget(store, approval) == JobBudget(free_running=3, free_today=2)
    assert approval_room(store, approval) == 2
    store.approve(["h3", "h1"], who="alice")
    assert [r.hop_id for r in approved_waiting(store)] == ["h1", "h3"]
    # h1 is being submitted: still approved, but its job row is live, so it waits no more
    store.begin_submission("h1", "replay")
    assert store.hop("h1").state is HopState.APPROVED
    assert [r.hop_id for r in approved_waiting(store)] == ["h3"]
    assert job_budget(store, approval) == JobBudget(free_running=2, free_today=1)
    assert approval_room(store, approval) == 0  # min(4 - 2 - 1, 3 - 2 - 1)
    store.abandon_job(store.live_job("h1").id, "never reached the backend")
    assert approval_room(store, approval) == 0  # h1 waits again: min(4 - 1 - 2, 3 - 1 - 2)
    store.reject(["h1"], who="alice", reason="changed my mind")
    assert approval_room(store, approval) == 1  # min(4 - 1 - 1, 3 - 1 - 1)
    # h0's job fails and the hop goes back to approved for a retry: it waits again, its job no
    # longer runs, but the day still counts the attempt
    assert store.fail_job(store.live_job("h0").id, "node died", max_attempts=3) is HopState.APPROVED
    assert {r.hop_id for r in approved_waiting(store)} == {"h0", "h3"}
    assert job_budget(store, approval) == JobBudget(free_running=4, free_today=2)
    assert approval_room(store, approval) == 0  # min(4 - 0 - 2, 3 - 1 - 2)


def test_the_daily_budget_is_a_rolling_24_hours(tmp_path, tiny_hop):
    now = [1_000_000.0]
    approval = ApprovalSection(auto_approve=True, max_running_jobs=10, max_jobs_per_day=2)
    with Store.open(tmp_path / "clock.sqlite", clock=lambda: now[0]) as store:
        store.add_hops([tiny_hop(f"h{k}", 0.3 + 0.05 * k) for k in range(4)])
        store.approve(["h0", "h1"], who="alice")
        _submit(store, "h0")
        _submit(store, "h1")
        store.record_result(store.live_job("h0").id, _usable_outcome())
        store.record_result(store.live_job("h1").id, _usable_outcome())
        _propose(store, ["h2", "h3"])
        assert job_budget(store, approval) == JobBudget(free_running=10, free_today=0)
        assert auto_approve(store, approval) == []
        now[0] += DAY_S
        assert auto_approve(store, approval) == []  # started 24 h ago to the second: still counted
        now[0] += 1
        assert job_budget(store, approval).free_today == 2
        assert auto_approve(store, approval) == ["h2", "h3"]
