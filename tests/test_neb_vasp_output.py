"""VASP NEB output as atomate2 collects it: emmet ``NebTaskDoc`` built from directories of VASP
output files (tests/_vasp_outputs.py writes them in VASP's own formats), the emmet-core 0.87
state bug, the polaron check and ``outcome_from_vasp_dir`` on atomate2's directory layout."""

import pytest
from _vasp_outputs import LOW_SPIN, write_atomate2_neb
from _vasp_outputs import NEB_ENERGIES as ENERGIES
from _vasp_outputs import cobalt_oxide_endpoints as _endpoints
from monty.json import jsanitize

from alem.neb.barrier import outcome_from_neb_document, outcome_from_vasp_dir, polaron_problem
from alem.neb.schemas import ENDPOINTS_FILE
from alem.neb.vasp_jobs import collect_vasp_neb_output


def test_atomate2_document_is_parsed_as_usable_despite_emmet_state_bug(tmp_path):
    from atomate2.vasp.jobs.neb import collect_neb_output

    endpoint_dirs, neb_dir = write_atomate2_neb(tmp_path)
    # atomate2's own collector, called as its job calls it
    document = collect_neb_output.original(endpoint_dirs, neb_dir, store_calculations=False)
    # emmet-core 0.87.3: every calculation finished, yet the document says "failed". When this
    # assertion breaks, emmet fixed NebTaskDoc.from_directories: drop alem's workaround.
    assert document.state.value == "failed"
    outcome = outcome_from_neb_document(document, method="vasp:GGA+U CI-NEB")
    assert outcome.usable, outcome.failure_reason
    assert outcome.barrier_ev == pytest.approx(0.45)
    assert outcome.reverse_barrier_ev == pytest.approx(0.40)
    assert outcome.image_energies_ev == pytest.approx(ENERGIES)


def test_alem_collector_repairs_the_state_and_survives_the_store(tmp_path):
    endpoint_dirs, neb_dir = write_atomate2_neb(tmp_path)
    document = collect_vasp_neb_output.original(endpoint_dirs, neb_dir)
    assert document.state.value == "successful" and document.calculations is None
    stored = jsanitize(document, strict=True, enum_values=True)
    for doc in (document, stored):
        outcome = outcome_from_neb_document(doc)
        assert outcome.usable, outcome.failure_reason
        assert outcome.barrier_ev == pytest.approx(0.45)


def test_an_image_that_hit_nsw_fails_the_neb(tmp_path):
    from atomate2.vasp.jobs.neb import collect_neb_output

    endpoint_dirs, neb_dir = write_atomate2_neb(tmp_path, image_converged=(True, False, True))
    for document in (collect_vasp_neb_output.original(endpoint_dirs, neb_dir),
                     collect_neb_output.original(endpoint_dirs, neb_dir, store_calculations=False)):
        outcome = outcome_from_neb_document(document)
        assert not outcome.usable
        assert "did not complete: frame 2" in outcome.failure_reason
        assert outcome.barrier_ev == pytest.approx(0.45)  # the numbers are kept for inspection


def test_unreadable_directories_are_not_taken_as_success(tmp_path):
    from atomate2.vasp.jobs.neb import collect_neb_output

    endpoint_dirs, neb_dir = write_atomate2_neb(tmp_path)
    document = collect_neb_output.original(endpoint_dirs, neb_dir, store_calculations=False)
    document.directories = [d.replace(str(tmp_path), "/cluster/scratch") for d in document.directories]
    outcome = outcome_from_neb_document(document)
    assert not outcome.usable and "not readable here: /cluster/scratch" in outcome.failure_reason


def test_polaron_that_moved_between_endpoints_is_a_failure(tmp_path):
    moved = [0.0, 0.96, 0.01, 0.03, 0.0, 0.0]  # the hole left site 2 for site 1
    endpoint_dirs, neb_dir = write_atomate2_neb(tmp_path, final_moments=moved)
    document = collect_vasp_neb_output.original(endpoint_dirs, neb_dir)
    outcome = outcome_from_neb_document(document)
    assert not outcome.usable
    assert "polaron moved between the endpoints" in outcome.failure_reason
    assert "site 1 (Co) +0.02 -> +0.96 μB" in outcome.failure_reason
    assert "site 2 (Co) +0.95 -> +0.01 μB" in outcome.failure_reason
    # the same directories read without the job store give the same verdict
    assert "polaron moved" in outcome_from_vasp_dir(neb_dir).failure_reason


def test_polaron_check_ignores_the_ion_noise_and_missing_moments():
    initial, final = _endpoints()
    initial.add_site_property("magmom", [0.0, 0.0, 0.9, 0.0, 0.0, 0.0])
    final.add_site_property("magmom", [0.8, 0.1, 0.85, 0.05, 0.0, 0.0])
    assert polaron_problem(initial, final) is None  # site 0 is the ion; 0.1 μB is noise
    final.add_site_property("magmom", [0.0, 0.0, -0.9, 0.0, 0.0, 0.0])  # a flipped spin is a change
    assert "site 2" in polaron_problem(initial, final)
    assert polaron_problem(initial, final.remove_site_property("magmom")) is None


def test_vasp_dir_on_atomate2_layout(tmp_path):
    endpoint_dirs, neb_dir = write_atomate2_neb(tmp_path)
    outcome = outcome_from_vasp_dir(neb_dir)
    assert not outcome.usable and "missing OUTCAR of endpoint 00" in outcome.failure_reason
    assert "relaxation_dirs" in outcome.failure_reason
    assert outcome_from_vasp_dir(neb_dir, relaxation_dirs=tuple(endpoint_dirs)).barrier_ev == pytest.approx(0.45)
    collect_vasp_neb_output.original(endpoint_dirs, neb_dir)  # writes ENDPOINTS_FILE into the NEB dir
    assert (tmp_path / "neb" / ENDPOINTS_FILE).is_file()
    outcome = outcome_from_vasp_dir(neb_dir)
    assert outcome.usable, outcome.failure_reason
    assert outcome.barrier_ev == pytest.approx(0.45)


def test_force_field_moments_do_not_reject_a_path():
    from emmet.core.neb import NebResult

    initial, final = _endpoints()
    images = initial.interpolate(final, nimages=4, autosort_tol=0)
    images[0].add_site_property("magmom", LOW_SPIN)
    images[-1].add_site_property("magmom", [0.0, 0.96, 0.01, 0.03, 0.0, 0.0])
    result = NebResult(images=images, energies=ENERGIES, image_indices=list(range(5)), state="successful")
    assert outcome_from_neb_document(result).usable  # the polaron check reads VASP's OUTCAR moments only
