"""VASP inputs of a hop's NEB: one electronic block for every step, so energies subtract cleanly.

A barrier is E(saddle image) - E(initial endpoint). The endpoints and the images therefore must
see exactly the same Hamiltonian and basis: the same PREC, ENCUT, smearing, EDIFF, projection
scheme, spin treatment, Hubbard U, LMAXMIX and k-points. atomate2's generators each bring their
own defaults (its ``RelaxSetGenerator`` picks ISMEAR 0 / SIGMA 0.2 and MP's per-atom EDIFF,
its ``NebSetGenerator`` PREC Normal / ISMEAR -5 / EDIFF 1e-6), which leaves an offset that does
not cancel. :func:`electronic_incar` is the one block every generator here gets on top of the
Materials Project base settings; only ionic tags (IBRION, ISIF, NSW, EDIFFG, the NEB tags)
differ between steps.

Choices (a practitioner's defaults, all overridable with ``[vasp] incar_updates``):

- PREC Accurate, ENCUT 520 eV (MP), ALGO Fast, LASPH, LREAL Auto (cells of 70-400 atoms);
- ISMEAR 0, SIGMA 0.05: Gaussian smearing is valid for metals and insulators alike and for
  forces (the tetrahedron method, ISMEAR -5, is not meant for relaxations);
- EDIFF absolute (``[vasp] ediff_ev``, default 1e-6 eV), not MP's 5e-5 eV per atom, which grows
  with the cell to several meV and makes NEB forces noisy;
- ISYM 0: symmetry is off for endpoints and images alike, so a localised hole (polaron) is not
  symmetrised away in one calculation and kept in another;
- ISPIN 2 with one MAGMOM per species (MP's values), identical for both endpoints and the
  images: the relaxed endpoints start from the same magnetic state, so a hole that ends up on
  different metal sites is a property of the path, detected afterwards
  (:func:`alem.neb.barrier.polaron_problem`), not an artefact of the initial guess;
- charge (``[vasp] charge``): a neutral cell by default (removing the ion as an atom leaves a hole
  per unit of its charge on the host); ``"charged"`` sets NELECT to the neutral count plus the ion's
  charge (VASP adds the compensating background), identical for endpoints and images;
- polaron pinning (``[vasp] pin_polaron``): the hole's initial moment goes on one transition-metal
  site, the one nearest both vacancy positions (so the endpoints share it), in both endpoints and
  every image, instead of one MAGMOM per species (:func:`pin_polaron`);
- LORBIT 11 so OUTCAR prints the site moments that check reads;
- NCORE / KPAR only when the preset sets them (they change speed, not results).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from alem.neb.presets import Preset

#: Tags that must be equal in every INCAR of one hop (endpoints, images, host relaxation).
SHARED_TAGS = (
    "PREC", "ENCUT", "ALGO", "NELM", "EDIFF", "ISMEAR", "SIGMA", "LREAL", "LASPH", "ISPIN", "MAGMOM",
    "ISYM", "LORBIT", "LMAXMIX", "LDAU", "LDAUTYPE", "LDAUL", "LDAUU", "LDAUJ", "LDAUPRINT", "NCORE", "KPAR",
)


def electronic_incar(preset: Preset) -> dict:
    """The electronic block every VASP step of ``preset`` gets (see the module docstring)."""
    vasp = preset.vasp
    incar: dict = {
        "PREC": "Accurate",
        "ENCUT": 520,
        "ALGO": "Fast",
        "NELM": 200,
        "EDIFF": vasp.ediff_ev,
        "ISMEAR": 0,
        "SIGMA": 0.05,
        "LREAL": "Auto",
        "LASPH": True,
        "ISPIN": 2,
        "ISYM": 0,
        "LORBIT": 11,
        "LWAVE": False,
    }
    if vasp.functional != "GGA+U":
        incar["LDAU"] = False
    if vasp.ncore:
        incar["NCORE"] = vasp.ncore
    if vasp.kpar:
        incar["KPAR"] = vasp.kpar
    return {**incar, **vasp.incar_updates}


def input_generator_kwargs(preset: Preset) -> dict:
    """Generator arguments shared by every VASP step: MP base settings, same k-point rule."""
    from pymatgen.io.vasp.sets import MPRelaxSet

    return {
        "config_dict": copy.deepcopy(MPRelaxSet.CONFIG),
        "user_kpoints_settings": {"reciprocal_density": preset.vasp.kpoints_reciprocal_density},
        "user_potcar_functional": preset.vasp.potcar_functional,
        "force_gamma": True,
        # Keep our site order: image POSCARs are written as given, so the POTCAR order must match.
        "sort_structure": False,
        # Nothing may depend on a previous calculation or on a guessed band gap: every step
        # gets the same smearing and k-points whatever ran before it.
        "auto_ismear": False,
        "auto_metal_kpoints": False,
        "inherit_incar": False,
    }


def with_initial_magmoms(structure: Structure, preset: Preset) -> Structure:
    """``structure`` with MP's initial moment per species as the ``magmom`` site property, so
    both endpoints (and the images made from them) start from the same magnetic state."""
    from pymatgen.io.vasp.sets import MPRelaxSet

    per_species = MPRelaxSet.CONFIG["INCAR"]["MAGMOM"]
    structure = structure.copy()
    structure.add_site_property("magmom", [float(per_species.get(site.species_string, 0.6)) for site in structure])
    return structure


def ion_charge(working_ion: str) -> int:
    """Charge of the working ion as a cation (Li/Na/K 1, Mg/Ca/Zn 2, Al 3): its highest common
    oxidation state."""
    from pymatgen.core import Element

    return int(max(Element(working_ion).common_oxidation_states))


def _zval(symbol: str, functional: str) -> float:
    """Valence electrons of a POTCAR (pymatgen's shipped POTCAR summary, no POTCAR file needed)."""
    import bz2
    import json
    from importlib.resources import files

    with bz2.open(files("pymatgen.io.vasp") / "potcar-summary-stats.json.bz2", "rt") as handle:
        stats = json.load(handle)
    values = {entry["ZVAL"] for entry in (e for versions in stats.get(functional, {}).values() for e in versions)
              if entry.get("symbol") == symbol}
    if len(values) != 1:
        from alem.neb.presets import PresetError

        raise PresetError(f"charge = \"charged\": cannot tell the valence of POTCAR {symbol} ({functional}): "
                          f"{'not in pymatgen' if not values else f'versions differ: {sorted(values)}'}")
    return float(values.pop())


def charged_cell_nelect(structure: Structure, preset: Preset, working_ion: str) -> float | None:
    """NELECT of the NEB cell under ``[vasp] charge``: None for a neutral cell, else the neutral
    electron count plus the ion's charge (the electrons it leaves behind)."""
    if preset.vasp.charge != "charged":
        return None
    from itertools import groupby

    # one POTCAR per block of consecutive sites of one species, as the POSCAR is written
    symbols = str(relax_input_generator(preset, relax=False).get_input_set(structure, potcar_spec=True).potcar).split()
    blocks = [species for species, _ in groupby(site.species_string for site in structure)]
    per_species = dict(zip(blocks, symbols))
    valence = {species: _zval(symbol, preset.vasp.potcar_functional) for species, symbol in per_species.items()}
    return sum(valence[site.species_string] for site in structure) + ion_charge(working_ion)


def polaron_site(initial: Structure, final: Structure) -> int:
    """The transition-metal site nearest both vacancy positions (the ion's two sites): the one the
    hole is pinned to in both endpoints."""
    candidates = [i for i, site in enumerate(initial) if i and site.specie.is_transition_metal]
    if not candidates:
        from alem.neb.presets import PresetError

        raise PresetError(f"pin_polaron: the NEB cell ({initial.composition.reduced_formula}) has no transition-metal "
                          "site to pin the hole to")
    ends = (initial[0].frac_coords, final[0].frac_coords)
    return min(candidates, key=lambda i: max(initial.lattice.get_distance_and_image(initial[i].frac_coords, end)[0]
                                              for end in ends))


def pin_polaron(structure: Structure, site: int, preset: Preset) -> Structure:
    """``structure`` with the hole's initial moment on ``site`` (``polaron_magmom_mu_b``) and the other
    sites of that species at ``host_magmom_mu_b`` (MP's per-species value if unset)."""
    structure = with_initial_magmoms(structure, preset)
    species = structure[site].species_string
    magmoms = list(structure.site_properties["magmom"])
    for index, existing in enumerate(structure):
        if existing.species_string == species and preset.vasp.host_magmom_mu_b is not None:
            magmoms[index] = preset.vasp.host_magmom_mu_b
    magmoms[site] = preset.vasp.polaron_magmom_mu_b
    structure.add_site_property("magmom", magmoms)
    return structure


def magnetic_endpoints(initial: Structure, final: Structure, preset: Preset) -> tuple[Structure, Structure]:
    """Both NEB endpoints with their initial moments: one per species, or the pinned polaron."""
    if not preset.vasp.pin_polaron:
        return with_initial_magmoms(initial, preset), with_initial_magmoms(final, preset)
    site = polaron_site(initial, final)
    return pin_polaron(initial, site, preset), pin_polaron(final, site, preset)


def neb_input_generator(preset: Preset, nelect: float | None = None):
    """atomate2's ``NebSetGenerator`` with the shared block and the preset's NEB settings."""
    from atomate2.vasp.sets.core import NebSetGenerator

    settings = preset.neb
    return NebSetGenerator(
        num_images=settings.n_images,
        climbing_image=settings.climbing_image,
        user_incar_settings={
            **electronic_incar(preset),
            **({"NELECT": nelect} if nelect is not None else {}),
            "EDIFFG": -settings.fmax_ev_a,
            "NSW": settings.max_steps,
            "SPRING": -settings.spring_constant_ev_a2,
        },
        **input_generator_kwargs(preset),
    )


def relax_input_generator(preset: Preset, relax: bool, relax_cell: bool = False, nelect: float | None = None):
    """atomate2's ``RelaxSetGenerator`` with the shared block: a fixed-cell endpoint relaxation
    (``relax``), a single point (not ``relax``) or a full host relaxation (``relax_cell``)."""
    from atomate2.vasp.sets.core import RelaxSetGenerator

    settings = preset.neb
    ionic = {"ISIF": 3 if relax_cell else 2, "IBRION": 2, **({"NELECT": nelect} if nelect is not None else {})}
    if relax or relax_cell:
        ionic.update({"EDIFFG": -settings.endpoint_fmax_ev_a, "NSW": settings.endpoint_max_steps})
    else:
        ionic.update({"NSW": 0, "IBRION": -1})
    return RelaxSetGenerator(user_incar_settings={**electronic_incar(preset), **ionic}, **input_generator_kwargs(preset))


#: Shipped host whose INCARs ``alem doctor`` and the docs (NEB workflows page) show (71-site NEB cell, Co3+/Co4+ hole).
EXAMPLE_HOST = "LiCoO2_layered.cif"


def example_hop(host_file: str = EXAMPLE_HOST, working_ion: str = "Li", max_hop_length_a: float = 3.0):
    """The shortest hop of a shipped host, as ``alem candidates add`` would enumerate it."""
    from alem import PACKAGE_DATA
    from alem.candidates.enumerate import EnumerationSettings, enumerate_hops
    from alem.candidates.hosts import read_host

    path = PACKAGE_DATA / "hosts" / host_file
    hops = enumerate_hops(read_host(path, working_ion), working_ion, path.stem,
                          EnumerationSettings(max_hop_length_a=max_hop_length_a, max_atoms=400))
    return min(hops, key=lambda hop: hop.hop_length_a)


def step_input_sets(hop, preset: Preset) -> dict:
    """The VASP input sets (``potcar_spec``: no POTCARs needed) of the endpoint relaxation and the
    NEB of ``hop``, as the flow writes them: ``{"endpoint": ..., "neb": ...}`` (+ ``"host"``)."""
    from alem.neb.supercell import neb_endpoints, pristine_host

    initial, final = neb_endpoints(hop, preset.supercell.min_image_distance_a, preset.supercell.max_atoms,
                                   group_species=True)
    initial, final = magnetic_endpoints(initial, final, preset)
    nelect = charged_cell_nelect(initial, preset, hop.working_ion)
    endpoint = relax_input_generator(preset, relax=preset.neb.relax_endpoints, nelect=nelect)
    sets = {
        "endpoint": endpoint.get_input_set(initial, potcar_spec=True),
        "final endpoint": endpoint.get_input_set(final, potcar_spec=True),
        # atomate2's NEB job writes its top-level inputs from the first image: the initial endpoint
        "neb": neb_input_generator(preset, nelect).get_input_set(initial, potcar_spec=True),
    }
    if preset.vasp.relax_host:
        host = with_initial_magmoms(pristine_host(hop), preset)
        sets["host"] = relax_input_generator(preset, relax=True, relax_cell=True).get_input_set(host, potcar_spec=True)
    return sets


def example_incar_text(preset: Preset, host_file: str = EXAMPLE_HOST) -> str:
    """The NEB INCAR ``preset`` writes for the shortest hop of a shipped host, and how the
    endpoint relaxation's INCAR differs from it (ionic tags only), for ``alem doctor``."""
    hop = example_hop(host_file)
    sets = step_input_sets(hop, preset)
    neb, endpoint = sets["neb"].incar, sets["endpoint"].incar
    differ = sorted(set(neb) | set(endpoint), key=str)
    only_endpoint = ", ".join(f"{k} = {endpoint[k]}" for k in differ if k in endpoint and endpoint.get(k) != neb.get(k))
    return (f"NEB INCAR for {hop.hop_id} ({len(sets['neb'].poscar.structure)} atoms, KPOINTS "
            f"{' x '.join(map(str, sets['neb'].kpoints.kpts[0]))}):\n{neb.get_str(sort_keys=True).strip()}\n"
            f"endpoint relaxations: the same except {only_endpoint}, and no NEB tags")
