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


def test_the_literature_functionals_are_fidelities_and_the_shipped_card_lists_them():
    import gzip
    import json
    from collections import Counter

    from alem import PACKAGE_DATA
    from alem.hops.fidelity import counts_by_fidelity
    from alem.model_dir import ModelCard, default_ensemble_path

    rows = json.loads(gzip.decompress((PACKAGE_DATA / "em_dataset_train.json.gz").read_bytes()))
    assert Counter(r["XC"] for r in rows) == {"GGA": 493, "GGA+U": 41, "SCAN": 17, "LDA": 8}
    card = ModelCard.load(default_ensemble_path())
    trained = {h.hop_id: h for h in load_training_hops()}
    expected = counts_by_fidelity(trained[i].provenance.fidelity for i in card.training_hop_ids)
    assert card.training_fidelities == expected
    assert list(expected.items())[1:] == [("dft:GGA+U", 41), ("dft:SCAN", 17), ("dft:LDA", 8)]
    assert sum(expected.values()) == card.n_training_hops
    assert counts_by_fidelity(["dft:GGA", None, "mlip:CHGNet", "DFT:GGA"]) == {"dft:GGA": 2, "mlip:CHGNet": 1, "unknown": 1}


def test_train_fidelities_select_the_base_training_hops_by_functional(tmp_path):
    from alem.campaign.retrain import training_hops
    from alem.model_dir import default_ensemble_path
    from alem.store import Store

    with Store.open(tmp_path / "alem.sqlite") as store:
        every = training_hops(store, default_ensemble_path(), ["dft"])
        gga_u = training_hops(store, default_ensemble_path(), ["dft:GGA+U"])
        two = training_hops(store, default_ensemble_path(), ["dft:GGA", "dft:SCAN"])
        unselected = training_hops(store, default_ensemble_path(), None)
        nothing = training_hops(store, default_ensemble_path(), ["mlip:CHGNet"])
    assert len(every) == len(unselected) == 556
    assert len(gga_u) == 41 and {h.provenance.fidelity for h in gga_u} == {"dft:GGA+U"}
    assert len(two) == 490 + 17 and {h.provenance.fidelity for h in two} == {"dft:GGA", "dft:SCAN"}
    assert nothing == []
