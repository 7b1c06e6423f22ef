"""The INCARs the VASP flow writes for a shipped host: endpoints, images and the host relaxation
share every electronic tag (written with potcar_spec=True: no POTCARs exist here)."""

import pytest
from pymatgen.io.vasp import Incar, Kpoints

from alem.neb.flows import neb_flow_for_hop
from alem.neb.presets import load_preset
from alem.neb.vasp_inputs import SHARED_TAGS, example_hop, step_input_sets

#: Tags that legitimately differ: how the ions move, not the Hamiltonian.
IONIC_TAGS = {"IBRION", "ISIF", "NSW", "EDIFFG", "POTIM", "IOPT", "IMAGES", "LCLIMB", "SPRING"}


@pytest.fixture(scope="module")
def licoo2_hop():
    return example_hop("LiCoO2_layered.cif")


def _written(input_set, directory):
    input_set.write_input(directory)
    return Incar.from_file(directory / "INCAR"), Kpoints.from_file(directory / "KPOINTS")


def _by_species(incar: Incar, symbols: list[str]) -> dict:
    """Per-species tags (LDAUU/L/J) as {species: value}, so cells with another species order compare."""
    return {key: dict(zip(symbols, incar[key])) for key in ("LDAUU", "LDAUL", "LDAUJ") if key in incar}


@pytest.mark.parametrize("preset_name", ["vasp_gga_u", "vasp_gga"])
def test_endpoint_and_image_incars_share_every_electronic_tag(licoo2_hop, preset_name, tmp_path):
    preset = load_preset(preset_name)
    flow = neb_flow_for_hop(licoo2_hop, preset)
    endpoint_job, neb_job = flow.jobs[0], next(job for job in flow.jobs if job.name.endswith(" NEB"))
    assert (endpoint_job.name, neb_job.name) == (f"{preset.vasp.functional} endpoint relax endpoint 1", f"{preset.vasp.functional} NEB")
    initial = endpoint_job.function_args[0]
    assert len(initial) == 71
    endpoint_incar, endpoint_kpoints = _written(
        endpoint_job.function.__self__.input_set_generator.get_input_set(initial, potcar_spec=True), tmp_path / "endpoint")
    # atomate2's NEB job writes its top-level inputs from the first image, i.e. the endpoint
    neb_inputs = neb_job.function.__self__.input_set_generator.get_input_set(initial, potcar_spec=True)
    neb_incar, neb_kpoints = _written(neb_inputs, tmp_path / "neb")
    for tag in SHARED_TAGS:
        assert endpoint_incar.get(tag) == neb_incar.get(tag), f"{tag}: endpoint {endpoint_incar.get(tag)} != NEB {neb_incar.get(tag)}"
    assert set(endpoint_incar) ^ set(neb_incar) <= IONIC_TAGS
    for tag in set(endpoint_incar) - IONIC_TAGS:
        assert endpoint_incar[tag] == neb_incar[tag], tag
    assert endpoint_kpoints.kpts == neb_kpoints.kpts and endpoint_kpoints.style == neb_kpoints.style
    # the values a practitioner checks first
    assert neb_incar["ISYM"] == 0 and neb_incar["EDIFF"] <= 1e-5 and neb_incar["PREC"] == "Accurate"
    assert (neb_incar["ISMEAR"], neb_incar["SIGMA"], neb_incar["ENCUT"]) == (0, 0.05, 520)
    assert neb_incar["ISPIN"] == 2 and neb_incar["LORBIT"] == 11 and neb_incar["LMAXMIX"] == 4
    assert neb_incar["IBRION"] == 3 and neb_incar["LCLIMB"] and endpoint_incar["ISIF"] == 2
    if preset_name == "vasp_gga_u":
        assert neb_incar["LDAU"] and neb_incar["LDAUU"] == [0, 3.32, 0]  # Li, Co, O
    else:
        assert not neb_incar.get("LDAU", False)


def test_both_endpoints_start_from_one_magnetic_state(licoo2_hop):
    flow = neb_flow_for_hop(licoo2_hop, load_preset("vasp_gga_u"))
    initial, final = flow.jobs[0].function_args[0], flow.jobs[1].function_args[0]
    assert initial.site_properties["magmom"] == final.site_properties["magmom"]
    generator = flow.jobs[0].function.__self__.input_set_generator
    assert generator.get_input_set(initial, potcar_spec=True).incar["MAGMOM"] == \
        generator.get_input_set(final, potcar_spec=True).incar["MAGMOM"]


def test_host_relaxation_uses_the_same_block(licoo2_hop, tmp_path):
    preset = load_preset("vasp_gga_u")
    preset.vasp.relax_host = True
    preset.vasp.ncore, preset.vasp.kpar = 16, 2
    sets = step_input_sets(licoo2_hop, preset)
    host_incar, _ = _written(sets["host"], tmp_path / "host")
    neb_incar, _ = _written(sets["neb"], tmp_path / "neb")
    assert host_incar["ISIF"] == 3
    for tag in set(SHARED_TAGS) - {"LDAUU", "LDAUL", "LDAUJ", "MAGMOM"}:
        assert host_incar.get(tag) == neb_incar.get(tag), tag
    assert _by_species(host_incar, sets["host"].poscar.site_symbols) == _by_species(neb_incar, sets["neb"].poscar.site_symbols)
    assert (neb_incar["NCORE"], neb_incar["KPAR"]) == (16, 2)
    flow = neb_flow_for_hop(licoo2_hop, preset)
    assert [job.name for job in flow.jobs][:2] == ["GGA+U host relax", "endpoints_on_relaxed_host"]


def test_endpoints_follow_the_relaxed_host_lattice(li2o_hop):
    import numpy as np

    from alem.neb.supercell import neb_endpoints, pristine_host
    from alem.neb.vasp_jobs import endpoints_on_relaxed_host

    initial, final = neb_endpoints(li2o_hop, 8.0, 400, group_species=True)  # 2x2x2 of the 11-site cell
    host = pristine_host(li2o_hop)
    assert host.composition.reduced_formula == "Li2O" and len(host) == 3
    relaxed = host.copy()
    relaxed.scale_lattice(host.volume * 1.02**3)  # the PBE lattice is ~2 % longer than the CIF's
    strained = endpoints_on_relaxed_host.original(initial, final, host, relaxed)
    for before, after in zip((initial, final), strained):
        assert np.allclose(after.lattice.abc, np.array(before.lattice.abc) * 1.02)
        assert np.allclose(after.frac_coords, before.frac_coords)
        assert after.site_properties == before.site_properties
    with pytest.raises(ValueError, match="not an integer supercell"):
        endpoints_on_relaxed_host.original(initial, final, host.copy().scale_lattice(host.volume * 1.3), relaxed)
