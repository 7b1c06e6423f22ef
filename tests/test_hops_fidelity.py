"""Fidelity labels: parsing, selection, and that the shipped literature labels are DFT with their XC."""

import pytest

from alem.hops.fidelity import FidelityError, is_dft, is_mlip, matches, parse_fidelity
from alem.hops.io import hop_to_dataset_entry, load_training_hops, read_hops, write_dataset


def test_parse_and_match():
    assert parse_fidelity("DFT:GGA+U") == "dft:GGA+U"
    assert matches("dft:GGA+U", ["dft"]) and matches("dft:SCAN", ["dft:*"])
    assert not matches("mlip:CHGNet", ["dft"]) and matches("mlip:CHGNet", ["mlip:chgnet"])
    assert not matches(None, ["*"])
    assert is_dft("dft:LDA") and is_mlip("mlip:MACE-MP") and not is_dft("mlip:CHGNet")
    for bad in ("GGA", "mlip:", "classical:EAM"):
        with pytest.raises(FidelityError):
            parse_fidelity(bad)


def test_shipped_labels_are_dft_with_their_functional(tmp_path):
    hops = load_training_hops()
    fidelities = {h.provenance.fidelity for h in hops}
    assert fidelities <= {"dft:GGA", "dft:GGA+U", "dft:SCAN", "dft:LDA"}
    assert all(h.provenance.fidelity == f"dft:{h.provenance.xc}" for h in hops if h.provenance.xc)
    mlip = hops[0]
    mlip.provenance = type(mlip.provenance)(source="alem:local", xc="CHGNet", fidelity="mlip:CHGNet")
    assert hop_to_dataset_entry(mlip)["fidelity"] == "mlip:CHGNet"
    back = read_hops([write_dataset([mlip], tmp_path / "one.json")])
    assert back[0].provenance.fidelity == "mlip:CHGNet"


def test_shipped_cheap_barriers_are_mace_and_pair_with_training_hops():
    from alem.hops.io import load_shipped_cheap_barriers

    cheap = load_shipped_cheap_barriers()
    ids = {h.hop_id for h in load_training_hops()}
    assert len(cheap) > 550 and set(cheap) <= ids | set(cheap)
    assert len(set(cheap) & ids) > 550
    assert {c.fidelity for c in cheap.values()} == {"mlip:MACE-MP"}
    assert all(0.0 <= c.barrier_ev < 20 for c in cheap.values())
