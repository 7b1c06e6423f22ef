"""When `alem loop` stops by itself: the ``[loop]`` stop rule, read from the recorded rounds.

* ``stop_when_expected_good_below = k`` (0 = off): the last round expected fewer than k
  still-unlabelled good hops (E_m < ``good_barrier_ev``) in the whole pool;
* ``stop_after_rounds_below_floor = n`` (0 = off): the last n rounds' best acquisition values
  were all below ``acquisition_floor`` (a round that chose nothing counts as below);
* ``stop_when_hosts_classified = p`` (0 = off): every host's P(good) is at least p or at most
  1 − p (:func:`alem.campaign.materials.hosts_classified_reason`, on the model's joint rows).

Jobs in flight keep running; the next `alem loop` or `alem reconcile` collects them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alem.store import Store

if TYPE_CHECKING:
    from alem.config import CampaignConfig


def stop_reason(store: Store, loop, config: CampaignConfig | None = None) -> str | None:
    """A plain sentence why the campaign should stop now (None: go on). ``loop``: ``[loop]``;
    ``config``: the campaign's settings, needed by the host rule only."""
    if loop.stop_when_expected_good_below > 0:
        rounds = store.campaign_rounds(limit=1)
        if rounds and rounds[-1].expected_good < loop.stop_when_expected_good_below:
            last = rounds[-1]
            return (
                f"stop rule: the pool is expected to hold only {last.expected_good:.2f} more good hops "
                f"(E_m < {last.threshold_ev:g} eV) among {last.n_pool} unlabelled, fewer than "
                f"{loop.stop_when_expected_good_below:g} ([loop] stop_when_expected_good_below)"
            )
    n = loop.stop_after_rounds_below_floor
    if n > 0:
        rounds = store.campaign_rounds(limit=n)
        below = [r for r in rounds if r.best_acquisition is None or r.best_acquisition < loop.acquisition_floor]
        if len(rounds) == n and len(below) == n:
            return (
                f"stop rule: the best acquisition value stayed below {loop.acquisition_floor:g} for the last {n} "
                f"rounds ([loop] stop_after_rounds_below_floor)"
            )
    if loop.stop_when_hosts_classified and config is not None:
        from alem.campaign.materials import hosts_classified_reason

        return hosts_classified_reason(config, store)
    return None
