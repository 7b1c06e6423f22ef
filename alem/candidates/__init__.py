"""Candidate hops: read host structures and enumerate the symmetry-distinct hops of the working ion."""

from alem.candidates.enumerate import EnumerationSettings, enumerate_hops
from alem.candidates.hosts import HostError, read_host
from alem.candidates.signature import hop_signature

__all__ = ["EnumerationSettings", "HostError", "enumerate_hops", "hop_signature", "read_host"]
