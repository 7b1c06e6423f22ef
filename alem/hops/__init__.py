"""Hops: the data model, readers/writers and validation."""

from alem.hops.hop import GOOD_CONDUCTOR_THRESHOLD_EV, Hop, Provenance, group_of
from alem.hops.io import hop_to_dataset_entry, load_training_hops, read_hops, write_dataset
from alem.hops.validate import HopError, check_hop, hop_problems

__all__ = [
    "GOOD_CONDUCTOR_THRESHOLD_EV",
    "Hop",
    "HopError",
    "Provenance",
    "check_hop",
    "group_of",
    "hop_problems",
    "hop_to_dataset_entry",
    "load_training_hops",
    "read_hops",
    "write_dataset",
]
