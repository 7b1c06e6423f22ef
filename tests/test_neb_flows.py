"""NEB presets, the supercell rule and the atomate2 flows built for a hop."""

import json

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from alem.candidates.supercell import shortest_lattice_vector_a
from alem.hops import Hop
from alem.neb.flows import neb_flow_for_hop, output_uuid, vasp_neb_maker
from alem.neb.presets import PresetError, available_presets, load_preset
from alem.neb.schemas import CHECK_FOR_KEY
from alem.neb.supercell import (
    NebSetupError,
    interpolate_images,
    neb_endpoints,
    supercell_scaling,
)


def test_shipped_presets_load():
    names = available_presets()
    assert {"vasp_gga", "vasp_gga_u", "mlip_chgnet"} <= set(names)
    gga, gga_u, mlip = load_preset("vasp_gga"), load_preset("vasp_gga_u"), load_preset("mlip_chgnet")
    assert (gga.engine, gga.vasp.functional, gga.method_label) == ("vasp", "GGA", "vasp:GGA CI-NEB")
    assert gga_u.vasp.functional == "GGA+U"
    assert (mlip.engine, mlip.mlip.force_field, mlip.method_label) == ("mlip", "CHGNet", "mlip:CHGNet CI-NEB")
    for preset in (gga, gga_u, mlip):
        assert preset.supercell.min_image_distance_a == pytest.approx(8.0)


def test_preset_errors_name_file_and_key(tmp_path):
    (tmp_path / "workflows").mkdir()
    bad = tmp_path / "workflows" / "mine.toml"
    bad.write_text('name = "mine"\nengine = "mlip"\n[neb]\nn_imagez = 3\n')
    with pytest.raises(PresetError, match=r"mine\.toml: neb\.n_imagez: unknown key"):
        load_preset("mine", campaign_dir=tmp_path)
    bad.write_text('name = "mine"\nengine = "vasp"\n[neb]\nn_images = 0\n')
    with pytest.raises(PresetError, match=r"mine\.toml: neb\.n_images"):
        load_preset("mine", campaign_dir=tmp_path)
    with pytest.raises(PresetError, match="preset 'nope' not found"):
        load_preset("nope", campaign_dir=tmp_path)


def test_campaign_preset_overrides_shipped(tmp_path):
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "mlip_chgnet.toml").write_text('name = "mlip_chgnet"\nengine = "mlip"\n[neb]\nn_images = 2\n')
    assert load_preset("mlip_chgnet", campaign_dir=tmp_path).neb.n_images == 2
    assert load_preset("mlip_chgnet").neb.n_images == 5


def test_supercell_rule_keeps_images_apart_and_site0_migrating(li2o_hop):
    assert shortest_lattice_vector_a(li2o_hop.initial.lattice) == pytest.approx(4.61)
    assert supercell_scaling(li2o_hop.initial.lattice, 8.0) == (2, 2, 2)
    assert supercell_scaling(li2o_hop.initial.lattice, 4.0) == (1, 1, 1)
    initial, final = neb_endpoints(li2o_hop, 8.0, max_atoms=400)
    # exactly one vacancy in the 2x2x2 cell: pristine (24-atom Li2O cell x 8) minus one Li
    pristine_li = 8 * (li2o_hop.initial.composition["Li"] + 1)
    for endpoint in (initial, final):
        assert endpoint.composition["Li"] == pristine_li - 1
        assert endpoint.composition["O"] == 8 * li2o_hop.initial.composition["O"]
    assert len(initial) == 8 * (len(li2o_hop.initial) + 1) - 1
    assert initial.is_valid(tol=1.0) and final.is_valid(tol=1.0)  # the vacancy was not refilled twice
    assert shortest_lattice_vector_a(initial.lattice) >= 8.0
    # only site 0 moves, by the hop's own displacement
    dfrac = final.frac_coords - initial.frac_coords
    dfrac -= np.round(dfrac)
    moved = np.linalg.norm(dfrac @ initial.lattice.matrix, axis=1)
    assert moved[0] == pytest.approx(li2o_hop.hop_length_a, abs=1e-6)
    assert moved[1:].max() < 1e-6
    assert initial[0].species_string == "Li"


def test_supercell_rule_uses_minimum_image_across_cell_faces():
    lattice = Lattice.cubic(4.0)
    initial = Structure(lattice, ["Li", "O"], [[0.9, 0.5, 0.5], [0.4, 0.0, 0.0]])
    final = Structure(lattice, ["Li", "O"], [[0.1, 0.5, 0.5], [0.4, 0.0, 0.0]])
    hop = Hop("wrap", initial, final, "Li")
    sc_initial, sc_final = neb_endpoints(hop, 8.0, max_atoms=100)
    dfrac = sc_final[0].frac_coords - sc_initial[0].frac_coords
    dfrac -= np.round(dfrac)
    assert np.linalg.norm(dfrac @ sc_initial.lattice.matrix) == pytest.approx(0.8, abs=1e-6)


def test_supercell_rule_refuses_too_many_atoms(li2o_hop):
    with pytest.raises(NebSetupError, match=r"li2o-vacancy: the NEB cell would have 95 atoms.*max_atoms = 50"):
        neb_endpoints(li2o_hop, 8.0, max_atoms=50)


def test_vasp_site_order_groups_species_with_ion_first(li2o_hop):
    initial, final = neb_endpoints(li2o_hop, 0.0, 400, group_species=True)
    symbols = [site.species_string for site in initial]
    assert symbols == sorted(symbols, key=lambda s: (s != "Li", s))  # one block per species, Li first
    assert np.allclose(initial[0].frac_coords, li2o_hop.initial[0].frac_coords)
    assert np.allclose(final[0].frac_coords, li2o_hop.final[0].frac_coords)


def test_idpp_images_keep_site_order(li2o_hop):
    images = interpolate_images(li2o_hop.initial, li2o_hop.final, 3, "idpp")
    assert len(images) == 5
    ion_path = np.array([image[0].coords for image in images])
    steps = np.linalg.norm(np.diff(ion_path, axis=0), axis=1)
    assert steps.sum() == pytest.approx(li2o_hop.hop_length_a, rel=0.3)
    assert all(image[0].species_string == "Li" for image in images)


def test_mlip_flow_uses_atomate2_makers_with_explicit_neb_settings(li2o_hop, fast_mlip_preset):
    flow = neb_flow_for_hop(li2o_hop, fast_mlip_preset)
    names = [job.name for job in flow.jobs]
    assert names == ["CHGNet endpoint relax endpoint 1", "CHGNet endpoint relax endpoint 2", "endpoint check",
                     "get_images_from_endpoints", "CHGNet NEB"]
    # the images wait for the pre-NEB check, which names the NEB it guards
    assert flow.jobs[2].uuid in {ref.uuid for ref in flow.jobs[3].input_references}
    assert flow.jobs[2].metadata[CHECK_FOR_KEY] == flow.jobs[-1].uuid
    neb_maker = flow.jobs[-1].function.__self__
    assert type(neb_maker).__name__ == "ForceFieldNebFromImagesMaker"
    assert neb_maker.neb_kwargs == {"climb": True, "k": 0.1, "method": "improvedtangent"}
    assert neb_maker.relax_kwargs == {"fmax": 0.1}
    assert flow.jobs[0].function.__self__.relax_cell is False
    assert output_uuid(flow) == flow.jobs[-1].uuid
    assert flow.metadata["alem_hop_id"] == "li2o-vacancy"
    fast_mlip_preset.neb.relax_endpoints = False
    assert [job.name for job in neb_flow_for_hop(li2o_hop, fast_mlip_preset).jobs] == ["CHGNet NEB"]


def test_vasp_flows_relaxed_and_given_endpoints(li2o_hop):
    preset = load_preset("vasp_gga")
    flow = neb_flow_for_hop(li2o_hop, preset)
    assert [job.name for job in flow.jobs] == ["GGA endpoint relax endpoint 1", "GGA endpoint relax endpoint 2",
                                               "endpoint check", "get_images_from_endpoints", "GGA NEB",
                                               "collect_vasp_neb_output"]
    assert output_uuid(flow) == flow.jobs[-1].uuid
    assert flow.jobs[2].metadata[CHECK_FOR_KEY] == output_uuid(flow)
    assert flow.metadata["alem_job_uuids"]["pre_neb_check"] == flow.jobs[2].uuid
    relax_incar = flow.jobs[0].function.__self__.input_set_generator.user_incar_settings
    assert relax_incar["ISIF"] == 2 and relax_incar["EDIFFG"] == pytest.approx(-0.02)
    # 8 Å rule: the 12-atom pristine cell 2x2x2 with one vacancy
    assert len(flow.jobs[0].function_args[0]) == 95
    preset.neb.relax_endpoints = False
    preset.checks.endpoint_check = False
    flow = neb_flow_for_hop(li2o_hop, preset)
    assert [job.name for job in flow.jobs] == ["GGA endpoint single point endpoint 1", "GGA endpoint single point endpoint 2",
                                               "GGA NEB", "collect_vasp_neb_output"]
    assert flow.jobs[0].function.__self__.input_set_generator.user_incar_settings["NSW"] == 0
    images = flow.jobs[2].function_args[0]
    assert len(images) == 7 and len(images[0]) == 95


def _limno_cell() -> Structure:
    return Structure(Lattice.cubic(4.2), ["Li", "Mn", "O", "O"],
                     [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0.5]])


def test_vasp_neb_inputs_are_mp_compatible():
    structure = _limno_cell()
    gga = vasp_neb_maker(load_preset("vasp_gga")).input_set_generator.get_input_set(structure, potcar_spec=True)
    gga_u = vasp_neb_maker(load_preset("vasp_gga_u")).input_set_generator.get_input_set(structure, potcar_spec=True)
    for incar in (gga.incar, gga_u.incar):
        assert incar["ENCUT"] == 520 and incar["ISPIN"] == 2
        assert incar["IMAGES"] == 5 and incar["LCLIMB"] is True and incar["SPRING"] == pytest.approx(-5.0)
        assert incar["EDIFFG"] == pytest.approx(-0.05) and incar["NSW"] == 200
    assert not gga.incar.get("LDAU", False)
    assert gga_u.incar["LDAU"] is True
    assert gga_u.incar["LDAUU"] == [0, 3.9, 0]  # Li, Mn, O: MP's U for Mn in an oxide
    assert gga_u.potcar.split() == ["Li_sv", "Mn_pv", "O"]  # MP POTCAR choices, in POSCAR order
    assert gga_u.poscar.structure == structure  # not re-sorted


def test_the_mace_preset_reads_a_model_file_the_user_provides_and_never_downloads(tmp_path, monkeypatch, li2o_hop):
    from monty.json import jsanitize

    from alem.doctor import check_model_file, check_potential

    monkeypatch.delenv("ALEM_MACE_MODEL", raising=False)
    mace = load_preset("mlip_mace")
    assert (mace.fidelity, mace.method_label) == ("mlip:MACE-MP", "mlip:MACE-MP CI-NEB")  # the shipped add-on's potential
    missing = check_model_file(mace)
    assert missing.status == "problem" and "environment variable" in missing.message and "never downloads" in missing.message
    assert check_potential(mace).status == "problem"
    with pytest.raises(PresetError, match="does not exist"):
        neb_flow_for_hop(li2o_hop, mace)

    model = tmp_path / "my.model"
    model.write_bytes(b"not a MACE model")
    monkeypatch.setenv("ALEM_MACE_MODEL", str(model))
    mace = load_preset("mlip_mace")
    assert mace.model_file() == model and check_model_file(mace).status == "ok"
    flow = json.dumps(jsanitize(neb_flow_for_hop(li2o_hop, mace).as_dict(), strict=False))
    # both endpoint relaxations and the NEB build their calculator from the file
    assert flow.count(json.dumps({"calculator_kwargs": {"model": str(model)}})[1:-1]) == 3
    assert check_potential(mace).status == "problem"  # the file exists but is no loadable model

    # a MACE preset without a file is refused when read: mace-torch would download weights
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "m.toml").write_text('name = "m"\nengine = "mlip"\n[mlip]\nforce_field = "MACE-MP-0"\n')
    with pytest.raises(PresetError, match="model_path"):
        load_preset("m", campaign_dir=tmp_path)


def test_the_sevennet_preset_loads_its_wheel_weights_without_the_network(monkeypatch):
    pytest.importorskip("sevenn")  # the optional extra alem[sevennet]
    import socket

    from alem.doctor import check_model_file, check_potential

    def no_network(*args, **kwargs):
        raise OSError("network used")

    monkeypatch.setattr(socket.socket, "connect", no_network)  # a download would fail here
    sevennet = load_preset("mlip_sevennet")
    assert (sevennet.fidelity, sevennet.method_label) == ("mlip:SevenNet", "mlip:SevenNet CI-NEB")
    assert check_model_file(sevennet) is None  # no file to provide
    loaded = check_potential(sevennet)
    assert loaded.status == "ok", loaded.message
