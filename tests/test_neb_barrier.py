"""Barrier extraction from NEB result documents and VASP NEB directories, good and broken."""

import math

import numpy as np
import pytest
from emmet.core.neb import NebResult
from jobflow import JobStore
from maggma.stores import MemoryStore
from monty.json import jsanitize

from alem.neb.barrier import outcome_from_job_store, outcome_from_neb_document, outcome_from_vasp_dir, path_problems
from alem.neb.schemas import NebOutcome
from alem.neb.supercell import interpolate_images

GOOD_ENERGIES = [-53.86, -53.78, -53.59, -53.82, -53.80]


@pytest.fixture
def images(li2o_hop):
    return interpolate_images(li2o_hop.initial, li2o_hop.final, 3, "linear")


def neb_result(energies, images, state="successful", tags=("force converged",)):
    return NebResult(images=images, energies=energies, image_indices=list(range(len(energies))),
                     state=state, tags=list(tags))


def test_good_result_gives_forward_reverse_barrier_and_profile(images):
    outcome = outcome_from_neb_document(neb_result(GOOD_ENERGIES, images), method="mlip:CHGNet CI-NEB")
    assert outcome.usable
    assert outcome.barrier_ev == pytest.approx(-53.59 + 53.86)
    assert outcome.reverse_barrier_ev == pytest.approx(-53.59 + 53.80)
    assert outcome.image_energies_ev == pytest.approx(GOOD_ENERGIES)
    assert len(outcome.path_coordinate_a) == 5 and outcome.path_coordinate_a[0] == 0.0
    assert outcome.path_coordinate_a == sorted(outcome.path_coordinate_a)
    assert outcome.method == "mlip:CHGNet CI-NEB"


def test_stored_document_round_trip_is_parsed_the_same(images):
    stored = jsanitize(neb_result(GOOD_ENERGIES, images), strict=True, enum_values=True)
    assert isinstance(stored["images"][0], dict)
    outcome = outcome_from_neb_document(stored)
    assert outcome.usable and outcome.barrier_ev == pytest.approx(0.27)


def test_nan_energy_is_a_failure(images):
    # emmet refuses to build a NebResult from NaN energies (its spline fit raises), so a NaN can
    # only reach alem as a stored document: build that document directly.
    with pytest.raises(ValueError, match="finite"):
        neb_result([-53.86, float("nan"), -53.59, -53.82, -53.80], images)
    doc = jsanitize(neb_result(GOOD_ENERGIES, images), strict=True, enum_values=True)
    doc["energies"] = [-53.86, float("nan"), -53.59, -53.82, -53.80]
    outcome = outcome_from_neb_document(doc)
    assert not outcome.usable
    assert outcome.barrier_ev is None
    assert "non-finite energy (NaN or inf) at image(s) 1" in outcome.failure_reason
    assert outcome.details["energies_as_read"][1] == "nan"
    assert outcome.model_dump_json()  # storable


def test_unconverged_neb_is_a_failure_but_keeps_its_numbers(images):
    outcome = outcome_from_neb_document(neb_result(GOOD_ENERGIES, images, state="failed"))
    assert not outcome.converged and not outcome.usable
    assert "state is 'failed'" in outcome.failure_reason
    assert outcome.barrier_ev == pytest.approx(0.27)


def test_misleading_atomate2_force_tag_does_not_fail_a_converged_neb(images):
    # atomate2 tags converged NEBs "forces not converged" (it checks unprojected forces)
    outcome = outcome_from_neb_document(neb_result(GOOD_ENERGIES, images, tags=["forces not converged"]))
    assert outcome.usable
    doc = jsanitize(neb_result(GOOD_ENERGIES, images, tags=["forces not converged"]), strict=True, enum_values=True)
    doc["state"] = None
    assert "forces not converged" in outcome_from_neb_document(doc).failure_reason


def test_no_interior_maximum_is_a_failure_and_spline_minus_inf_is_guarded(images):
    monotonic = [-54.0, -53.9, -53.8, -53.7, -53.6]
    doc = jsanitize(neb_result(monotonic, images), strict=True, enum_values=True)
    doc["forward_barrier"] = -math.inf  # what emmet's spline reports when it finds no maximum
    outcome = outcome_from_neb_document(doc)
    assert not outcome.usable
    assert "no interior maximum" in outcome.failure_reason and "final endpoint" in outcome.failure_reason
    assert outcome.details["spline_forward_barrier_ev"] is None


def test_image_jump_is_a_discontinuous_path(images):
    broken = [image.copy() for image in images]
    broken[2].translate_sites([5], [0.6, 0.0, 0.0], frac_coords=False)
    assert path_problems(GOOD_ENERGIES, broken) == []  # 0.6 Å is below the 1 Å floor
    broken[2].translate_sites([5], [1.8, 0.0, 0.0], frac_coords=False)
    outcome = outcome_from_neb_document(neb_result(GOOD_ENERGIES, broken))
    assert not outcome.usable
    assert "discontinuous path: atom 5 (Li) moves 2.21 Å" in outcome.failure_reason
    assert "images 1 and 2" in outcome.failure_reason


def test_energy_spike_is_a_discontinuous_path(images):
    outcome = outcome_from_neb_document(neb_result([-53.86, -53.78, -45.0, -53.82, -53.80], images))
    assert not outcome.usable
    assert "energy jumps by" in outcome.failure_reason


def test_too_few_images_and_empty_documents():
    assert "only 2 image energies" in path_problems([-1.0, -1.0], None)[0]
    outcome = outcome_from_neb_document({"energies": [], "state": "successful"})
    assert outcome.failure_reason == "NEB document has no image energies"


def test_job_store_lookup_missing_output():
    store = JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})
    outcome = outcome_from_job_store(store, "0000-no-such-job", method="x")
    assert not outcome.usable and "no output of NEB job 0000-no-such-job" in outcome.failure_reason


# ---------------------------------------------------------------- VASP NEB directories

OUTCAR_TEMPLATE = """ vasp.6.3.2 18Jan22 (build Jan 18 2022) complex
   number of dos      NEDOS =    301   number of ions     NIONS =     11
   number of bands    NBANDS=     64
   total plane-waves  NPLWV =  32768
   IBRION =      3    ionic relax: 0-MD 1-quasi-New 2-CG
 NEB: projections on to tangent (spring, REAL)  -0.00010  {tangent:.5f}
  free  energy   TOTEN  =       {energy:.8f} eV

  energy  without entropy=      {energy:.8f}  energy(sigma->0) =      {energy:.8f}
{tail}"""


def write_vasp_neb(root, images, energies, converged=True, skip=()):
    for index, (image, energy) in enumerate(zip(images, energies)):
        image_dir = root / f"{index:02d}"
        image_dir.mkdir(parents=True)
        terminal = index in (0, len(images) - 1)
        image.to(filename=str(image_dir / ("POSCAR" if terminal else "CONTCAR")), fmt="poscar")
        if not terminal:
            image.to(filename=str(image_dir / "POSCAR"), fmt="poscar")
        tail = " reached required accuracy - stopping structural energy minimisation\n" if converged or terminal else ""
        if f"{index:02d}/OUTCAR" not in skip:
            (image_dir / "OUTCAR").write_text(OUTCAR_TEMPLATE.format(energy=energy, tangent=0.01, tail=tail))
    return root


def test_vasp_directory_good(tmp_path, images):
    outcome = outcome_from_vasp_dir(write_vasp_neb(tmp_path / "neb", images, GOOD_ENERGIES), method="vasp:GGA CI-NEB")
    assert outcome.usable, outcome.failure_reason
    assert outcome.barrier_ev == pytest.approx(0.27)
    assert outcome.reverse_barrier_ev == pytest.approx(0.21)
    assert outcome.image_energies_ev == pytest.approx(GOOD_ENERGIES)
    assert len(outcome.path_coordinate_a) == 5 and np.all(np.diff(outcome.path_coordinate_a) > 0)


def test_vasp_directory_unconverged(tmp_path, images):
    outcome = outcome_from_vasp_dir(write_vasp_neb(tmp_path / "neb", images, GOOD_ENERGIES, converged=False))
    assert not outcome.usable
    assert "forces not converged" in outcome.failure_reason and "01, 02, 03" in outcome.failure_reason
    assert str(tmp_path / "neb") in outcome.failure_reason


def test_vasp_directory_missing_files(tmp_path, images):
    outcome = outcome_from_vasp_dir(write_vasp_neb(tmp_path / "a", images, GOOD_ENERGIES, skip=("02/OUTCAR",)))
    assert not outcome.usable and "missing 02/OUTCAR" in outcome.failure_reason
    outcome = outcome_from_vasp_dir(write_vasp_neb(tmp_path / "b", images, GOOD_ENERGIES, skip=("04/OUTCAR",)))
    assert "missing OUTCAR of endpoint 04" in outcome.failure_reason
    assert "NEB directory does not exist" in outcome_from_vasp_dir(tmp_path / "nothing").failure_reason
    (tmp_path / "c" / "00").mkdir(parents=True)
    assert "found 1 image directories" in outcome_from_vasp_dir(tmp_path / "c").failure_reason


def test_vasp_directory_unreadable_outcar(tmp_path, images):
    root = write_vasp_neb(tmp_path / "neb", images, GOOD_ENERGIES)
    (root / "02" / "OUTCAR").write_text("garbage\n")
    outcome = outcome_from_vasp_dir(root)
    assert not outcome.usable and "cannot parse the NEB output" in outcome.failure_reason


@pytest.mark.parametrize(
    "outcome, reason",
    [
        (NebOutcome(barrier_ev=0.42, image_energies_ev=[0.0, 0.42, 0.01], converged=True), None),
        (NebOutcome(barrier_ev=0.42, converged=False), "NEB did not converge"),
        (NebOutcome(barrier_ev=0.42, converged=True, failure_reason="discontinuous path"), "discontinuous path"),
        (NebOutcome(converged=True), "no barrier in the NEB output"),
        (NebOutcome(barrier_ev=math.nan, converged=True), "barrier is nan (not finite)"),
        (NebOutcome(barrier_ev=0.4, image_energies_ev=[0.0, math.inf, 0.1], converged=True), "image energies not finite at images [1]"),
    ],
)
def test_one_usability_rule_usable_means_no_unusable_reason(outcome, reason):
    """What the store records as failed and what a backend's outcome calls usable are one rule: a
    converged NaN barrier is not usable anywhere."""
    assert outcome.unusable_reason == reason
    assert outcome.usable is (reason is None)
