"""Shared pytest fixtures. Each area keeps its additions in its own clearly marked section."""

import pytest

# ---------------------------------------------------------------- store / campaign (alem.store, alem.campaign)


def make_tiny_hop(hop_id: str, ion_x: float = 0.4, barrier_ev: float | None = None):
    """A valid 3-site Li hop in a 5 Å cubic O host; ``ion_x`` sets where the Li ends (distinct
    values give distinct hops)."""
    from pymatgen.core import Lattice, Structure

    from alem.hops import Hop

    lattice = Lattice.cubic(5.0)
    host = [[0.5, 0.5, 0.5], [0.0, 0.5, 0.5]]
    initial = Structure(lattice, ["Li", "O", "O"], [[0.0, 0.0, 0.0], *host])
    final = Structure(lattice, ["Li", "O", "O"], [[ion_x, 0.0, 0.0], *host])
    return Hop(hop_id, initial, final, "Li", barrier_ev=barrier_ev)


@pytest.fixture
def tiny_hop():
    """Factory: ``tiny_hop(hop_id, ion_x=0.4, barrier_ev=None)``."""
    return make_tiny_hop
