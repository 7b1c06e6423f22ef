"""Candidate hops given as hop files (the Em dataset layout or pymatgen ``initial``/``final`` JSON)
rather than enumerated from hosts.

One invalid hop never sinks the file: every hop is validated (:mod:`alem.hops.validate`), the
valid ones are stored and each invalid one is reported with its file, id and problem;
``strict=True`` stores nothing when any hop is invalid. Hops the campaign already knows (same
signature as a training hop or a stored hop) are not stored again, as for enumerated hosts.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from alem.candidates.pool import SIGNATURE_KEY, known_signatures, store_signatures
from alem.candidates.signature import hop_signature
from alem.hops.hop import Hop
from alem.hops.io import read_hops
from alem.hops.validate import HopError


@dataclass
class HopFileReport:
    added: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)  # hop ids already in the dataset or the store
    invalid: list[str] = field(default_factory=list)  # one line per invalid hop: file, id, problem


def is_hop_file(path: Path) -> bool:
    """Whether ``path`` is a JSON file of hops (not a host structure)."""
    name = path.name.lower()
    if not (name.endswith(".json") or name.endswith(".json.gz")) or not path.is_file():
        return False
    try:
        with (gzip.open if name.endswith(".gz") else open)(path, "rt") as handle:
            data = json.load(handle)
    except (OSError, EOFError, json.JSONDecodeError):
        return False  # the host reader names the problem
    first = data[0] if isinstance(data, list) and data else data
    return isinstance(first, dict) and ("structure_ini" in first or ("initial" in first and "final" in first))


def add_hop_files(
    store,
    paths: Sequence[Path],
    working_ion: str | None,
    dataset_hops: Sequence[Hop] | None = None,
    strict: bool = False,
) -> HopFileReport:
    """Store the valid, new hops of ``paths`` as candidates (one transaction).

    Raises:
        HopError: a file cannot be read at all, or ``strict`` and a hop is invalid (every invalid
            hop named); nothing is stored then.
    """
    report = HopFileReport()
    hops_by_file = {path: read_hops([path], working_ion=working_ion, on_invalid="skip", problems=report.invalid) for path in paths}
    if strict and report.invalid:
        raise HopError("; ".join(report.invalid))
    every_hop = [hop for hops in hops_by_file.values() for hop in hops]
    if dataset_hops is None and every_hop:
        from alem.hops.io import load_training_hops

        dataset_hops = load_training_hops()
    known = known_signatures(dataset_hops or [], every_hop)
    known |= store_signatures(store)
    with store.transaction():
        for path, hops in hops_by_file.items():
            new = []
            for hop in hops:
                signature = hop_signature(hop)
                if signature in known:
                    report.known.append(hop.hop_id)
                    continue
                known.add(signature)
                new.append(replace(hop, metadata={**hop.metadata, SIGNATURE_KEY: signature}))
            report.added.extend(store.add_hops(new, source=str(path)))
    return report
