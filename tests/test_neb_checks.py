"""The checks that keep wrong barriers out of the training set and stop an NEB before its images
run (issue 20): the intermediate-minimum rule for every collector (path documents, VASP
directories, the replay backend), the pre-NEB endpoint check job on real VASP output layouts
(tests/_vasp_outputs.py) and on real CHGNet relaxations, and the preset settings behind both."""

import json

import numpy as np
import pytest
from _vasp_outputs import (
    INTERMEDIATE_MINIMUM_ENERGIES,
    LOW_SPIN,
    RELAX_INCAR,
    FakeVasp,
    cobalt_oxide_endpoints,
    install_fake_vasp,
    moved_hole,
    slid_to,
    write_atomate2_neb,
    write_endpoint_runs,
)
from pymatgen.core import Lattice, Structure

from alem.backends.rundir import read_json, run_flow, run_outcome, stage_run
from alem.neb.barrier import PathCriteria, outcome_from_neb_document, outcome_from_path, outcome_from_vasp_dir
from alem.neb.endpoint_check import check_vasp_endpoints, endpoint_problems
from alem.neb.presets import CheckSettings, load_preset
from alem.neb.schemas import CHECK_DOC_KEY
from alem.neb.vasp_jobs import collect_vasp_neb_output

ISSUE_PROFILE = [0.0, -0.4, 0.2, -0.1, 0.05]
CHECKS = CheckSettings().model_dump()


# ------------------------------------------------------------------ item 1: intermediate minima


def test_intermediate_minimum_is_not_a_label_but_keeps_every_number():
    outcome = outcome_from_path(ISSUE_PROFILE)
    assert not outcome.usable
    assert outcome.failure_reason == ("intermediate minimum 0.40 eV below the initial endpoint at image 1: the endpoint "
                                      "is not the ion's ground state; effective barrier max − min = 0.60 eV")
    assert outcome.barrier_ev == pytest.approx(0.20) and outcome.reverse_barrier_ev == pytest.approx(0.15)
    assert outcome.details["effective_barrier_ev"] == pytest.approx(0.60)
    assert outcome.details["intermediate_minimum_image"] == 1
    assert outcome.details["intermediate_minimum_depth_ev"] == pytest.approx(0.40)


def test_a_shallow_dip_within_the_tolerance_is_fine_and_the_tolerance_is_the_presets():
    shallow = [0.0, -0.04, 0.3, 0.1, 0.05]
    assert outcome_from_path(shallow).usable
    assert "intermediate minimum 0.04 eV" in outcome_from_path(shallow, criteria=PathCriteria(
        intermediate_minimum_tolerance_ev=0.03)).failure_reason
    # the lower endpoint decides: a final endpoint below the initial one is the reference
    assert "below the final endpoint at image 2" in outcome_from_path([0.3, 0.25, 0.1, 0.5, 0.2]).failure_reason


def test_a_preset_may_take_the_effective_barrier_as_the_label(tmp_path):
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "lenient.toml").write_text(
        'name = "lenient"\nengine = "mlip"\n[checks]\nintermediate_minimum_tolerance_ev = 0.1\n'
        "accept_intermediate_minimum = true\n")
    preset = load_preset("lenient", campaign_dir=tmp_path)
    assert preset.path_criteria.intermediate_minimum_tolerance_ev == 0.1
    outcome = outcome_from_path(ISSUE_PROFILE, criteria=preset.path_criteria)
    assert outcome.usable and outcome.barrier_ev == pytest.approx(0.60)
    assert outcome.details["barrier_is_effective"] and outcome.details["forward_barrier_ev"] == pytest.approx(0.20)
    assert load_preset("mlip_chgnet").checks.intermediate_minimum_tolerance_ev == 0.05


def test_vasp_collector_and_directory_reader_catch_an_intermediate_minimum(tmp_path):
    endpoint_dirs, neb_dir = write_atomate2_neb(tmp_path, INTERMEDIATE_MINIMUM_ENERGIES)
    document = collect_vasp_neb_output.original(endpoint_dirs, neb_dir)
    for outcome in (outcome_from_neb_document(document), outcome_from_vasp_dir(neb_dir)):
        assert not outcome.usable
        assert "intermediate minimum 0.40 eV below the initial endpoint at image 1" in outcome.failure_reason
        assert outcome.details["effective_barrier_ev"] == pytest.approx(0.60)


def test_replay_judges_a_row_with_its_profile_like_a_fresh_neb(tmp_path, li2o_hop):
    from alem.backends.base import QueueState
    from alem.backends.replay import ReplayBackend
    from alem.hops import write_dataset

    li2o_hop.barrier_ev = 0.2
    li2o_hop.metadata["image_energies_ev"] = ISSUE_PROFILE
    dataset = write_dataset([li2o_hop], tmp_path / "replay.json")
    backend = ReplayBackend(dataset, tmp_path / "replay.sqlite")
    job = backend.submit(li2o_hop, "k")
    assert backend.poll([job])[job] is QueueState.COMPLETED
    outcome = backend.outcome(job)
    assert not outcome.usable and "intermediate minimum 0.40 eV" in outcome.failure_reason
    assert outcome.details["effective_barrier_ev"] == pytest.approx(0.60)


# ------------------------------------------------------------------ item 2: the pre-NEB endpoint check


def _check(tmp_path, relaxed, energies=(-40.0, -39.95), moments=(LOW_SPIN, LOW_SPIN), converged=(True, True)):
    starts = cobalt_oxide_endpoints()
    dirs = write_endpoint_runs(tmp_path, relaxed, energies, RELAX_INCAR, moments, converged)
    return check_vasp_endpoints.original(list(starts), dirs, CHECKS, 5)


def test_good_vasp_endpoints_pass_and_hand_on_their_relaxed_structures(tmp_path):
    initial, final = cobalt_oxide_endpoints()
    response = _check(tmp_path, (initial, final))
    assert not response.stop_children
    document = response.output[CHECK_DOC_KEY]
    assert document["passed"] and document["problems"] == []
    assert document["endpoint_separation_a"] == pytest.approx(2.24)
    assert document["energy_difference_ev"] == pytest.approx(0.05)
    assert len(response.output["endpoints"]) == 2


def test_endpoints_that_slid_together_stop_the_flow(tmp_path):
    initial, final = cobalt_oxide_endpoints()
    response = _check(tmp_path, (initial, slid_to(final, initial)))
    assert response.stop_children
    problems = response.output[CHECK_DOC_KEY]["problems"]
    assert problems[0] == ("the endpoints slid together: the relaxed ion sites are 0.00 Å apart, less than 0.5 x the "
                           "hop length 2.24 Å")
    assert "the migrating ion left its final site: it moved 2.24 Å" in problems[1]
    assert response.output[CHECK_DOC_KEY]["n_images_not_run"] == 5


def test_a_hole_that_moved_between_the_endpoints_stops_the_flow(tmp_path):
    initial, final = cobalt_oxide_endpoints()
    response = _check(tmp_path, (initial, final), moments=(LOW_SPIN, moved_hole(LOW_SPIN, 2, 1)))
    assert response.stop_children
    assert "polaron moved between the endpoints" in response.output[CHECK_DOC_KEY]["problems"][0]
    assert "site 2 (Co) +0.95 -> +0.02 μB" in response.output[CHECK_DOC_KEY]["problems"][0]


def test_unconverged_endpoint_forces_and_an_implausible_energy_difference_stop_the_flow(tmp_path):
    initial, final = cobalt_oxide_endpoints()
    response = _check(tmp_path, (initial, final), energies=(-40.0, -38.2), converged=(True, False))
    problems = response.output[CHECK_DOC_KEY]["problems"]
    assert response.stop_children
    assert problems == ["forces not converged in the final endpoint relaxation",
                        "implausible endpoint energy difference: E(final) - E(initial) = +1.80 eV (limit ±1 eV)"]


def test_endpoint_problems_tolerate_a_small_relaxation():
    initial, final = cobalt_oxide_endpoints()
    relaxed = [s.copy() for s in (initial, final)]
    relaxed[1].translate_sites([0], [0.3, 0.0, 0.0], frac_coords=False)
    problems, measured = endpoint_problems((initial, final), relaxed, (-1.0, -1.0), (True, True), CHECKS)
    assert problems == [] and measured["ion_shift_a"][1] == pytest.approx(0.3)


@pytest.fixture
def vasp_run(tmp_path, monkeypatch, li2o_hop):
    """Stage the Li2O hop's VASP flow (fake VASP, small cell) into a run directory."""
    fake = FakeVasp()
    install_fake_vasp(fake, monkeypatch.setattr)
    monkeypatch.chdir(tmp_path)
    preset = load_preset("vasp_gga")
    preset.supercell.min_image_distance_a = 0.0
    preset.neb.n_images = 3
    return fake, preset


def test_a_failed_check_spends_no_image_calculation_and_says_why(tmp_path, vasp_run, li2o_hop):
    fake, preset = vasp_run

    def slide_back(name, structure):  # endpoint 2 relaxes back onto the initial site
        return slid_to(structure, li2o_hop.initial) if name.endswith("endpoint 2") else structure

    fake.relax_to = slide_back
    run_dir = tmp_path / "run"
    stage_run(run_dir, li2o_hop, preset, "k")
    assert run_flow(run_dir) == 0
    assert [kind for kind, _ in fake.runs] == ["relax", "relax"]  # no NEB ran
    assert read_json(run_dir / "exit.json")["state"] == "completed"
    outcome = run_outcome(run_dir, "local job x", "worker.log", lambda: "completed")
    assert not outcome.usable
    assert outcome.failure_reason.startswith("endpoint check failed before the NEB (3 images not run): the endpoints "
                                             "slid together: the relaxed ion sites are 0.00 Å apart")
    assert outcome.details["endpoint_check"]["ion_shift_a"][1] == pytest.approx(li2o_hop.hop_length_a, abs=1e-3)


def test_a_passed_check_lets_the_neb_run(tmp_path, vasp_run, li2o_hop):
    fake, preset = vasp_run
    fake.neb_converges = True
    run_dir = tmp_path / "run"
    stage_run(run_dir, li2o_hop, preset, "k")
    assert run_flow(run_dir) == 0
    assert [kind for kind, _ in fake.runs] == ["relax", "relax", "neb"]
    outcome = run_outcome(run_dir, "local job x", "worker.log", lambda: "completed")
    assert outcome.usable and outcome.barrier_ev == pytest.approx(0.45)
    # the images started from the checked endpoints, with the shared initial MAGMOM
    neb_frames = fake.runs[-1][1]
    assert np.allclose(neb_frames[0][0].frac_coords, li2o_hop.initial[0].frac_coords, atol=1e-4)


@pytest.mark.slow
def test_real_chgnet_endpoints_that_did_not_converge_stop_before_the_images(tmp_path, li2o_hop, fast_mlip_preset):
    fast_mlip_preset.neb.endpoint_max_steps = 1  # one optimiser step: the forces cannot have converged
    run_dir = tmp_path / "run"
    stage_run(run_dir, li2o_hop, fast_mlip_preset, "k")
    assert run_flow(run_dir) == 0
    outcome = run_outcome(run_dir, "local job x", "worker.log", lambda: "completed")
    assert not outcome.usable
    assert outcome.failure_reason.startswith("endpoint check failed before the NEB (3 images not run): forces not "
                                             "converged in the initial endpoint relaxation")
    names = {doc["name"] for doc in json.loads((run_dir / "store" / "docs.json").read_text())}
    assert "endpoint check" in names and "CHGNet NEB" not in names


# ------------------------------------------------------------------ item 6: one clear word everywhere


def test_an_unusable_result_says_why_in_show_jobs_report_and_export(tmp_path, tiny_hop):
    """A replayed NEB with an intermediate minimum: the same sentence in ``alem show``, ``alem jobs
    --all``, the report and ``alem export --with-unusable`` (marked unusable, no target)."""
    from typer.testing import CliRunner

    from alem.cli import app
    from alem.hops import read_hops, write_dataset

    runner = CliRunner()
    profiled = tiny_hop("a", 0.4, 0.2)
    profiled.metadata["image_energies_ev"] = ISSUE_PROFILE
    dataset = write_dataset([profiled], tmp_path / "labelled.json")
    campaign = tmp_path / "camp"

    def run(*args):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    run("init", campaign, "--backend", "replay", "--ion", "Li", "--name", "demo", "--replay-dataset", dataset)
    from alem.backends.replay import ReplayBackend
    from alem.campaign import submit_approved
    from alem.config import CampaignConfig
    from alem.store import Store

    config = CampaignConfig.load(campaign)
    with Store.open(config.store_path) as store:
        store.add_hops([tiny_hop("a", 0.4)])
        store.approve(["a"], who="alice")
        submit_approved(store, ReplayBackend.from_config(config), config)
    run("reconcile", "-C", campaign)
    reason = "intermediate minimum 0.40 eV below the initial endpoint at image 1"
    assert reason in run("show", "a", "-C", campaign)
    jobs = json.loads(runner.invoke(app, ["jobs", "--all", "--json", "-C", str(campaign)]).output)
    assert jobs[0]["state"] == "completed" and reason in jobs[0]["error"]
    report = tmp_path / "report.html"
    run("report", "--out", report, "-C", campaign)
    assert reason in report.read_text()
    out = tmp_path / "export.json"
    run("export", out, "--with-unusable", "-C", campaign)
    (entry,) = json.loads(out.read_text())
    assert entry["target"] is None and entry["usable"] is False and reason in entry["unusable_reason"]
    assert entry["effective_barrier_ev"] == pytest.approx(0.60) and entry["forward_barrier_ev"] == pytest.approx(0.20)
    assert read_hops([out])[0].barrier_ev is None  # never a label
    run("export", out, "-C", campaign)
    assert json.loads(out.read_text()) == []


# ------------------------------------------------------------------ item 4: one vacancy, the preset's cell


def test_enumeration_uses_the_presets_image_distance_unless_told(tmp_path):
    from alem.campaign import init_campaign
    from alem.campaign.enumeration import enumeration_settings

    config = init_campaign(tmp_path / "c")  # local backend, preset mlip_chgnet
    (config.campaign_dir / "workflows").mkdir()
    (config.campaign_dir / "workflows" / "mlip_chgnet.toml").write_text(
        'name = "mlip_chgnet"\nengine = "mlip"\n[supercell]\nmin_image_distance_a = 10.5\nmax_atoms = 300\n')
    settings = enumeration_settings(config, None, None, None)
    assert (settings.min_image_distance_a, settings.max_atoms) == (10.5, 300)
    assert enumeration_settings(config, None, 6.0, 50).min_image_distance_a == 6.0


def test_a_hop_enumerated_in_a_small_cell_gets_one_vacancy_in_the_neb_cell(li2o_hop):
    """Enumerated at 4.5 Å, run under the 8 Å preset: the NEB cell is repeated, the vacancy is not."""
    from alem.neb.supercell import neb_endpoints

    pristine = li2o_hop.initial.copy()
    pristine.append("Li", li2o_hop.final[0].frac_coords)
    for group_species in (False, True):
        initial, final = neb_endpoints(li2o_hop, 8.0, 400, group_species=group_species)
        for endpoint in (initial, final):
            assert endpoint.composition["Li"] == 8 * pristine.composition["Li"] - 1
            assert endpoint.composition["O"] == 8 * pristine.composition["O"]
        # the ion hops into the one vacancy: no other Li sits at its final site
        others = [s for s in initial if s.species_string == "Li"][1:]
        assert min(final[0].distance(s) for s in others) > 1.0
        assert initial[0].distance(final[0]) == pytest.approx(li2o_hop.hop_length_a, abs=1e-6)


def test_an_interstitial_hop_gets_exactly_one_extra_ion():
    from alem.hops import Hop
    from alem.neb.supercell import neb_endpoints

    lattice = Lattice.cubic(4.0)
    host = [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]
    initial = Structure(lattice, ["Li", "Mg", "O"], [[0.25, 0.25, 0.25], *host])
    final = Structure(lattice, ["Li", "Mg", "O"], [[0.75, 0.25, 0.25], *host])
    hop = Hop("interstitial", initial, final, "Li", metadata={"mechanism": "interstitial"})
    ends = neb_endpoints(hop, 8.0, 100)
    for endpoint in ends:
        assert endpoint.composition.as_dict() == {"Li": 1, "Mg": 8, "O": 8}
    assert ends[0][0].distance(ends[1][0]) == pytest.approx(2.0)


# ------------------------------------------------------------------ item 3: charge and polaron in the presets

#: Valence electrons of Materials Project's POTCARs for LiCoO2 (Li_sv, Co, O), as in their headers.
ZVAL = {"Li": 3, "Co": 9, "O": 6}


@pytest.fixture(scope="module")
def licoo2_hop():
    from alem.neb.vasp_inputs import example_hop

    return example_hop("LiCoO2_layered.cif")


def _incars(hop, preset, tmp_path):
    from pymatgen.io.vasp import Incar

    from alem.neb.vasp_inputs import step_input_sets

    incars = {}
    for step, input_set in step_input_sets(hop, preset).items():
        input_set.write_input(tmp_path / step.replace(" ", "_"))
        incars[step] = Incar.from_file(tmp_path / step.replace(" ", "_") / "INCAR")
    return incars


def test_a_neutral_cell_has_no_nelect_and_a_charged_cell_keeps_the_ions_electron(licoo2_hop, tmp_path):
    preset = load_preset("vasp_gga_u")
    assert preset.vasp.charge == "neutral"
    assert all("NELECT" not in incar for incar in _incars(licoo2_hop, preset, tmp_path / "n").values())
    preset.vasp.charge = "charged"
    incars = _incars(licoo2_hop, preset, tmp_path / "c")
    cell = licoo2_hop.initial  # 71 atoms: the 72-atom host with one Li removed
    neutral = sum(ZVAL[el.symbol] * int(n) for el, n in cell.composition.items())
    for step in ("endpoint", "final endpoint", "neb"):
        assert incars[step]["NELECT"] == pytest.approx(neutral + 1), step
    assert "NELECT" not in incars.get("host", {})


def test_a_pinned_polaron_starts_on_one_cobalt_next_to_both_li_sites(licoo2_hop, tmp_path):
    preset = load_preset("vasp_gga_u")
    preset.vasp.pin_polaron, preset.vasp.host_magmom_mu_b = True, 0.0
    incars = _incars(licoo2_hop, preset, tmp_path)
    magmoms = {step: incars[step]["MAGMOM"] for step in ("endpoint", "final endpoint", "neb")}
    assert magmoms["endpoint"] == magmoms["final endpoint"] == magmoms["neb"]
    from alem.neb.supercell import neb_endpoints

    initial, final = neb_endpoints(licoo2_hop, preset.supercell.min_image_distance_a, 400, group_species=True)
    cobalt = [i for i, site in enumerate(initial) if site.species_string == "Co"]
    pinned = [i for i, m in enumerate(magmoms["neb"]) if m == pytest.approx(1.0)]
    assert len(pinned) == 1 and pinned[0] in cobalt
    assert all(magmoms["neb"][i] == 0.0 for i in cobalt if i != pinned[0])

    def farther_li_site(i):
        return max(initial[i].distance(initial[0]), initial[i].distance(final[0]))

    assert farther_li_site(pinned[0]) == pytest.approx(min(farther_li_site(i) for i in cobalt))
    unpinned = _incars(licoo2_hop, load_preset("vasp_gga_u"), tmp_path / "free")["neb"]["MAGMOM"]
    assert len({unpinned[i] for i in cobalt}) == 1  # one moment per species when not pinned


def test_charge_choice_is_named_in_doctor_and_review_and_contradictions_are_refused(tmp_path, licoo2_hop):
    from alem.doctor import check_vasp
    from alem.neb.presets import PresetError

    preset = load_preset("vasp_gga")
    preset.vasp.pin_polaron = True
    charge = next(c for c in check_vasp(preset) if c.name == "charge")
    assert charge.message.startswith("neutral cell") and "pinned" in charge.message
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "bad.toml").write_text(
        'name = "bad"\nengine = "vasp"\n[vasp]\ncharge = "charged"\npin_polaron = true\n')
    with pytest.raises(PresetError, match=r"bad.toml: vasp: Value error, pin_polaron needs charge"):
        load_preset("bad", campaign_dir=tmp_path)


# ------------------------------------------------------------------ item 5: DFT starts where the cheap path ended


@pytest.mark.slow
def test_a_real_chgnet_path_feeds_the_vasp_flows_images(tmp_path, vasp_run, li2o_hop, fast_mlip_preset):
    from alem.neb.screening_path import INITIAL_PATH_KEY, SCREENING_PATH_KEY
    from alem.neb.supercell import interpolate_images, neb_endpoints

    mlip_run = tmp_path / "mlip"
    stage_run(mlip_run, li2o_hop, fast_mlip_preset, "screen")
    assert run_flow(mlip_run) == 0
    screening = run_outcome(mlip_run, "local job s", "worker.log", lambda: "completed")
    assert screening.usable, screening.failure_reason
    path = screening.details["path_images"]
    assert len(path["frac_coords"]) == 5

    fake, preset = vasp_run
    fake.neb_converges = True
    li2o_hop.metadata[SCREENING_PATH_KEY] = {**path, "source": "screening result 7 (mlip:CHGNet)"}
    from alem.neb.flows import neb_flow_for_hop

    assert neb_flow_for_hop(li2o_hop, preset).metadata[INITIAL_PATH_KEY].startswith(
        "the converged path of screening result 7 (mlip:CHGNet)")
    run_dir = tmp_path / "dft"
    stage_run(run_dir, li2o_hop, preset, "k")
    assert run_flow(run_dir) == 0
    kinds = [kind for kind, _ in fake.runs]
    assert kinds == ["relax", "relax", "neb"]
    frames = fake.runs[-1][1]
    # the VASP cell orders species in blocks; the migrating Li is site 0 in both cells
    chgnet_ion = [np.asarray(f[0]) for f in path["frac_coords"][1:-1]]
    for frame, expected in zip(frames[1:-1], chgnet_ion):
        step = frame[0].frac_coords - expected
        assert np.linalg.norm((step - np.round(step)) @ frame.lattice.matrix) < 1e-3
    # ... and not IDPP's images: the CHGNet path relaxed the host around the ion
    start, end = neb_endpoints(li2o_hop, 0.0, 400, group_species=True)
    idpp = interpolate_images(start, end, 3, "idpp")
    assert np.abs(frames[2].cart_coords - idpp[2].cart_coords).max() > 0.01
    assert run_outcome(run_dir, "x", "worker.log", lambda: "completed").usable


def test_a_path_that_does_not_map_falls_back_to_idpp(li2o_hop):
    from alem.neb.flows import neb_flow_for_hop
    from alem.neb.screening_path import INITIAL_PATH_KEY, SCREENING_PATH_KEY, path_record

    preset = load_preset("vasp_gga")  # 8 Å rule: the 95-atom cell, not the 11-atom screening cell
    li2o_hop.metadata[SCREENING_PATH_KEY] = path_record([li2o_hop.initial, li2o_hop.final])
    flow = neb_flow_for_hop(li2o_hop, preset)
    assert flow.metadata[INITIAL_PATH_KEY] == ("IDPP between the relaxed endpoints (screening path not used: the "
                                               "screening path has 11 sites, the DFT NEB cell 95)")
    assert "get_images_from_endpoints" in [job.name for job in flow.jobs]
    preset.neb.start_from_screening = False
    assert neb_flow_for_hop(li2o_hop, preset).metadata[INITIAL_PATH_KEY].startswith("IDPP")


def test_a_screening_path_maps_onto_the_vasp_site_order_and_image_count(li2o_hop):
    from alem.neb.screening_path import _resampled, map_path, path_record
    from alem.neb.supercell import interpolate_images, neb_endpoints

    mlip_cell = neb_endpoints(li2o_hop, 0.0, 400)  # the force-field cell: hop order
    vasp_start, _ = neb_endpoints(li2o_hop, 0.0, 400, group_species=True)  # species blocks
    path = interpolate_images(*mlip_cell, 3, "linear")
    record = path_record(path)
    # another site order than the VASP cell's (a force-field cell need not group species)
    record["species"] = record["species"][::-1]
    record["frac_coords"] = [frame[::-1] for frame in record["frac_coords"]]
    frames = map_path(record, vasp_start)
    assert not isinstance(frames, str)
    for frame, image in zip(frames, path):
        for vasp_site, coords in zip(vasp_start, frame):
            match = [s for s in image if s.species_string == vasp_site.species_string
                     and np.allclose(s.frac_coords, coords, atol=1e-5)]
            assert match, vasp_site
    assert np.allclose(frames[2][0], path[2][0].frac_coords, atol=1e-5)  # the ion, mid-path
    # 3 interior images resampled to 5: the middle one stays the middle one
    assert np.allclose(_resampled(frames, 5)[2], frames[2], atol=1e-6)


def test_a_dft_submission_carries_the_hops_latest_usable_screening_path(tmp_path, tiny_hop):
    from alem.campaign.submit import with_screening_path
    from alem.neb.schemas import NebOutcome
    from alem.neb.screening_path import SCREENING_PATH_KEY
    from alem.store import Store

    hop = tiny_hop("a", 0.4)
    with Store.open(tmp_path / "s.sqlite") as store:
        store.add_hops([hop])
        assert SCREENING_PATH_KEY not in with_screening_path(store, store.load_hops(["a"])[0]).metadata
        record = {"lattice": hop.initial.lattice.matrix.tolist(), "species": ["Li"], "frac_coords": [[[0, 0, 0]]]}
        for usable, fidelity in ((True, "mlip:CHGNet"), (False, "mlip:MACE-MP")):  # the later one is unusable
            job = store.begin_screening("a", "local", fidelity)
            store.mark_screening_submitted(job.id, f"x{job.id}")
            store.record_screening_result(job.id, NebOutcome(
                barrier_ev=0.3, converged=usable, image_energies_ev=[0.0, 0.3, 0.0], method="mlip:CHGNet NEB",
                details={"path_images": record}, failure_reason=None if usable else "NEB did not converge"))
        carried = with_screening_path(store, store.load_hops(["a"])[0]).metadata[SCREENING_PATH_KEY]
    assert carried["frac_coords"] == record["frac_coords"] and carried["source"].startswith("screening result 1 (mlip:")
