"""Reading hops in every supported layout, and one clear error per kind of bad input."""

import json

import numpy as np
import pytest
from pymatgen.core import Structure

from alem.hops import HopError, hop_to_dataset_entry, load_training_hops, read_hops, write_dataset
from tests._factories import rocksalt_hop


def test_shipped_dataset_reads_and_flags_overlapping_nasicon_hops():
    problems: list[str] = []
    hops = load_training_hops(problems=problems)
    assert len(hops) == 556
    assert len(problems) == 3 and all("overlapping atoms" in p for p in problems)
    assert all(h.initial[0].specie.symbol == h.working_ion for h in hops)
    assert hops[0].group == "Li4P2S7" and hops[0].barrier_ev == pytest.approx(0.3)
    kept = load_training_hops(on_invalid="warn")
    assert len(kept) == 559


def test_dataset_layout_round_trip(tmp_path):
    hop = rocksalt_hop("rt-1", barrier_ev=0.42)
    path = write_dataset([hop], tmp_path / "hops.json")
    (back,) = read_hops([path])
    assert back.hop_id == "rt-1" and back.barrier_ev == pytest.approx(0.42)
    assert np.allclose(back.final.frac_coords, hop.final.frac_coords)
    gz = write_dataset([hop], tmp_path / "hops.json.gz")
    assert read_hops([gz])[0].hop_id == "rt-1"


def test_pymatgen_json_and_poscar_pair(tmp_path):
    hop = rocksalt_hop("pm-1")
    (tmp_path / "hop.json").write_text(json.dumps({"initial": hop.initial.as_dict(), "final": hop.final.as_dict(), "hop_id": "pm-1"}))
    assert read_hops([tmp_path / "hop.json"])[0].hop_id == "pm-1"
    hop.initial.to(filename=str(tmp_path / "POSCAR_ini"), fmt="poscar")
    hop.final.to(filename=str(tmp_path / "ini.cif"))
    hop.final.to(filename=str(tmp_path / "POSCAR_fin"), fmt="poscar")
    pair = read_hops([tmp_path / "POSCAR_ini", tmp_path / "POSCAR_fin"])
    assert len(pair) == 1 and pair[0].working_ion == "Li"
    assert pair[0].hop_length_a == pytest.approx(hop.hop_length_a, abs=1e-4)


def _write(tmp_path, hop, name="bad.json"):
    path = tmp_path / name
    path.write_text(json.dumps([hop_to_dataset_entry(hop)]))
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h: setattr(h, "working_ion", "Na"), "working ion Na is not in the structure"),
        (lambda h: h.final.translate_sites([5], [0.3, 0.0, 0.0]), "host site 5 moves"),
        (lambda h: h.final.replace(0, "Li", h.initial[0].frac_coords + 0.01), "moves only"),
        (lambda h: h.initial.replace(1, "Li", h.initial[0].frac_coords + 0.01, coords_are_cartesian=False), "overlapping atoms in initial"),
    ],
)
def test_bad_hops_get_one_message_naming_file_hop_and_problem(tmp_path, mutate, message):
    hop = rocksalt_hop("bad-1")
    hop.final = hop.final.copy()
    hop.initial = hop.initial.copy()
    mutate(hop)
    path = _write(tmp_path, hop)
    with pytest.raises(HopError) as info:
        read_hops([path])
    text = str(info.value)
    assert str(path) in text and "bad-1" in text and message in text


def test_site0_not_the_ion_and_different_lattice(tmp_path):
    hop = rocksalt_hop("bad-2")
    swapped = hop.initial.copy()
    swapped.replace(0, "O")
    swapped.replace(1, "Li")
    hop.initial, hop.final = swapped, hop.final
    with pytest.raises(HopError, match="differ in species|site 0 must be"):
        read_hops([_write(tmp_path, hop)])
    hop = rocksalt_hop("bad-3")
    hop.final = Structure(hop.final.lattice.matrix * 1.05, hop.final.species, hop.final.frac_coords)
    with pytest.raises(HopError, match="different lattices"):
        read_hops([_write(tmp_path, hop)])


def test_unreadable_files(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(HopError, match=r"broken.json: not valid JSON"):
        read_hops([tmp_path / "broken.json"])
    (tmp_path / "x.cif").write_text("garbage")
    with pytest.raises(HopError, match=r"x.cif: not a readable structure file \(ValueError: Invalid CIF file"):
        read_hops([tmp_path / "x.cif", tmp_path / "x.cif"])
    with pytest.raises(HopError, match="file not found"):
        read_hops([tmp_path / "missing.json"])
    hop = rocksalt_hop("nan-1")
    entry = hop_to_dataset_entry(hop)
    entry["target"] = float("nan")
    (tmp_path / "nan.json").write_text(json.dumps([entry]))
    with pytest.raises(HopError, match="nan-1: barrier is nan"):
        read_hops([tmp_path / "nan.json"])
    hop.initial.to(filename=str(tmp_path / "POSCAR"), fmt="poscar")
    with pytest.raises(HopError, match="without a final structure"):
        read_hops([tmp_path / "POSCAR"])
