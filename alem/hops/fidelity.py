"""Fidelity of a barrier label: which level of theory produced it.

A fidelity is written ``<kind>:<method>``: ``dft:GGA``, ``dft:GGA+U``, ``dft:SCAN``, ``dft:LDA`` for
DFT-NEB barriers (method = exchange-correlation functional), ``mlip:CHGNet``, ``mlip:MACE-MP``,
``mlip:SevenNet`` for NEBs run with a machine-learned interatomic potential (method = potential).
An MLIP barrier is never a DFT barrier: code that trains the DFT model selects labels by fidelity.

Selectors (what ``[model] train_fidelities`` holds) match fidelities: ``dft`` or ``dft:*`` matches
every DFT label, ``dft:GGA+U`` only that functional, ``mlip:CHGNet`` only CHGNet, ``*`` everything.
Matching ignores case; the stored spelling is kept as written by :func:`fidelity_label`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from alem.hops.validate import HopError

DFT = "dft"
MLIP = "mlip"
KINDS = (DFT, MLIP)
#: Functional assumed for a DFT label whose source does not say (the literature dataset's majority).
DEFAULT_DFT_METHOD = "GGA"


class FidelityError(HopError):
    """A fidelity or selector that is not ``dft:<functional>`` / ``mlip:<potential>``."""


#: The potential behind the paired cheap barriers shipped with alem (MACE-MP NEB, relaxed endpoints).
SHIPPED_CHEAP_FIDELITY = "mlip:MACE-MP"


@dataclass(frozen=True)
class CheapBarrier:
    """A barrier of a cheaper fidelity for a hop, fed to a fidelity-aware model beside the structure."""

    fidelity: str
    barrier_ev: float


def barriers_of_hop(value: CheapBarrier | Iterable[CheapBarrier] | None) -> tuple[CheapBarrier, ...]:
    """A hop's cheap barriers: a mapping of cheap barriers holds one per hop, or one per potential."""
    if value is None:
        return ()
    return (value,) if isinstance(value, CheapBarrier) else tuple(value)


def fidelity_label(kind: str, method: str | None) -> str:
    """Canonical label: kind lower case, method as given (``fidelity_label("DFT", "GGA+U")`` → ``dft:GGA+U``)."""
    kind_norm = kind.strip().lower()
    if kind_norm not in KINDS:
        raise FidelityError(f"fidelity kind {kind!r} is neither 'dft' nor 'mlip'")
    method_text = (method or "").strip()
    if not method_text:
        if kind_norm == MLIP:
            raise FidelityError("an MLIP fidelity must name its potential (e.g. mlip:CHGNet)")
        method_text = DEFAULT_DFT_METHOD
    return f"{kind_norm}:{method_text}"


def parse_fidelity(text: str) -> str:
    """Validate and canonicalise a written fidelity (``"DFT:GGA+U"`` → ``"dft:GGA+U"``)."""
    kind, sep, method = str(text).partition(":")
    if not sep or not method.strip():
        raise FidelityError(f"fidelity {text!r} must read <kind>:<method>, e.g. dft:GGA or mlip:CHGNet")
    return fidelity_label(kind, method)


def kind_of(fidelity: str) -> str:
    return parse_fidelity(fidelity).split(":", 1)[0]


def is_dft(fidelity: str | None) -> bool:
    return fidelity is not None and kind_of(fidelity) == DFT


def is_mlip(fidelity: str | None) -> bool:
    return fidelity is not None and kind_of(fidelity) == MLIP


def validate_selector(selector: str) -> str:
    """A selector is ``*``, a kind (``dft``, ``mlip``, ``dft:*``) or one fidelity."""
    text = selector.strip()
    if text == "*":
        return text
    kind, _, method = text.partition(":")
    if kind.lower() not in KINDS:
        raise FidelityError(f"fidelity selector {selector!r}: kind must be 'dft', 'mlip' or '*'")
    return kind.lower() if method in ("", "*") else parse_fidelity(text)


def matches(fidelity: str | None, selectors: Iterable[str]) -> bool:
    """Whether a label's fidelity is selected; a label without a fidelity is never selected."""
    if fidelity is None:
        return False
    canonical = parse_fidelity(fidelity)
    for selector in selectors:
        sel = validate_selector(selector)
        if sel == "*" or sel == canonical.split(":", 1)[0] or sel.lower() == canonical.lower():
            return True
    return False


def counts_by_fidelity(fidelities: Iterable[str | None]) -> dict[str, int]:
    """Labels per fidelity (``"unknown"`` for a label without one), most first, then by name:
    what a model card lists as the functionals and potentials it was trained on."""
    counts = Counter(parse_fidelity(f) if f else "unknown" for f in fidelities)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
