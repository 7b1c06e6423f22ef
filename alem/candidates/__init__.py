"""Candidate hops: read host structures and enumerate the symmetry-distinct hops of the working ion.

The names are imported on first use (PEP 562): enumeration pulls in pymatgen-analysis-diffusion
(seconds on a login node), while the host answers (``alem hosts``, the review page) read only kept
networks (:mod:`alem.candidates.network_record`) and :class:`HostError`.
"""

from typing import TYPE_CHECKING

from alem import lazy_attributes

if TYPE_CHECKING:  # what type checkers and editors see; at run time names load on first use
    from alem.candidates.enumerate import EnumerationSettings, enumerate_hops
    from alem.candidates.hosts import HostError, read_host
    from alem.candidates.signature import hop_signature

_LAZY = {
    "EnumerationSettings": "enumerate", "enumerate_hops": "enumerate",
    "HostError": "hosts", "read_host": "hosts", "hop_signature": "signature",
}

__all__ = ["EnumerationSettings", "HostError", "enumerate_hops", "hop_signature", "read_host"]

__getattr__ = lazy_attributes(__name__, _LAZY)
