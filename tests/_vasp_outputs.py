"""Small but complete VASP output files (vasprun.xml, OUTCAR, OSZICAR, CONTCAR) for tests.

The files follow VASP 6's formats closely enough that pymatgen's ``Vasprun``/``Outcar`` and
emmet's ``Calculation.from_vasp_files`` parse them exactly as they parse a real run: one ionic
step per file (``n_ionic`` steps when a run hit NSW), the energy we choose, optional site
magnetic moments in the OUTCAR (``magnetization (x)`` block, as written with LORBIT = 11), and
"reached required accuracy" only for a converged relaxation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure
from pymatgen.io.vasp import Incar

_HEADER = """<?xml version="1.0" encoding="ISO-8859-1"?>
<modeling>
 <generator>
  <i name="program" type="string">vasp </i>
  <i name="version" type="string">6.3.2  </i>
  <i name="subversion" type="string">18Jan22 (build Jan 18 2022) complex parallel </i>
  <i name="platform" type="string">LinuxIFC </i>
  <i name="date" type="string">2026 11 25 </i>
  <i name="time" type="string">12:00:00 </i>
 </generator>
"""


def _v(values, fmt="{:16.8f}") -> str:
    return "<v>" + " ".join(fmt.format(float(x)) for x in values) + " </v>"


def _incar_xml(incar: dict) -> str:
    lines = [" <incar>"]
    for key, value in incar.items():
        if isinstance(value, bool):
            lines.append(f'  <i type="logical" name="{key}"> {"T" if value else "F"}  </i>')
        elif isinstance(value, int):
            lines.append(f'  <i type="int" name="{key}">{value:6d}</i>')
        elif isinstance(value, float):
            lines.append(f'  <i name="{key}">{value:16.8f}</i>')
        elif isinstance(value, list):
            lines.append(f'  <v name="{key}">' + " ".join(f"{float(x):.4f}" for x in value) + " </v>")
        else:
            lines.append(f'  <i type="string" name="{key}">{value}</i>')
    lines.append(" </incar>")
    return "\n".join(lines) + "\n"


def _parameters_xml(incar: dict, n_atoms: int) -> str:
    ints = {"NELM": 100, "NSW": 0, "IBRION": -1, "ISIF": 2, "ISPIN": 2, "ISMEAR": 0, "NBANDS": 8,
            "ISYM": 0, "IMAGES": 0, "LORBIT": 11, "IOPT": 0}
    floats = {"ENCUT": 520.0, "EDIFF": 1e-6, "EDIFFG": -0.05, "SIGMA": 0.05, "POTIM": 0.5, "NELECT": 8.0 * n_atoms}
    logicals = {"LDAU": False, "LASPH": True, "LCLIMB": False}
    lines = [" <parameters>", '  <separator name="general" >', '   <i type="string" name="SYSTEM">alem test</i>',
             "  </separator>", '  <separator name="electronic" >', '   <i type="string" name="PREC">accurate</i>',
             '   <i type="string" name="ALGO"> Fast</i>']
    for key, default in ints.items():
        lines.append(f'   <i type="int" name="{key}">{int(incar.get(key, default)):6d}</i>')
    for key, default in floats.items():
        lines.append(f'   <i name="{key}">{float(incar.get(key, default)):16.8f}</i>')
    for key, default in logicals.items():
        lines.append(f'   <i type="logical" name="{key}"> {"T" if incar.get(key, default) else "F"}  </i>')
    lines.append('   <v name="MAGMOM">' + " ".join(["1.0"] * n_atoms) + " </v>")
    lines += ["  </separator>", " </parameters>"]
    return "\n".join(lines) + "\n"


def _atominfo_xml(structure: Structure) -> str:
    symbols = [site.specie.symbol for site in structure]
    types = list(dict.fromkeys(symbols))
    rows = "\n".join(f"    <rc><c>{s:2s}</c><c>{types.index(s) + 1:4d}</c></rc>" for s in symbols)
    type_rows = "\n".join(
        f"    <rc><c>{symbols.count(s):4d}</c><c>{s:2s}</c><c>{1.0:16.8f}</c><c>{1.0:16.8f}</c><c>  PAW_PBE {s} 06Sep2000 </c></rc>"
        for s in types
    )
    return f""" <atominfo>
  <atoms>{len(symbols):8d} </atoms>
  <types>{len(types):8d} </types>
  <array name="atoms" >
   <dimension dim="1">ion</dimension>
   <field type="string">element</field>
   <field type="int">atomtype</field>
   <set>
{rows}
   </set>
  </array>
  <array name="atomtypes" >
   <dimension dim="1">type</dimension>
   <field type="int">atomspertype</field>
   <field type="string">element</field>
   <field>mass</field>
   <field>valence</field>
   <field type="string">pseudopotential</field>
   <set>
{type_rows}
   </set>
  </array>
 </atominfo>
"""


def _structure_xml(structure: Structure, name: str | None = None) -> str:
    head = f' <structure name="{name}" >' if name else "  <structure>"
    basis = "\n".join("     " + _v(row) for row in structure.lattice.matrix)
    rec = "\n".join("     " + _v(row) for row in structure.lattice.reciprocal_lattice_crystallographic.matrix)
    positions = "\n".join("    " + _v(site.frac_coords) for site in structure)
    return f"""{head}
   <crystal>
    <varray name="basis" >
{basis}
    </varray>
    <i name="volume">{structure.volume:16.8f} </i>
    <varray name="rec_basis" >
{rec}
    </varray>
   </crystal>
   <varray name="positions" >
{positions}
   </varray>
  </structure>
"""


def _calculation_xml(structure: Structure, energy_ev: float, n_scsteps: int) -> str:
    energy = (f'   <i name="e_fr_energy">{energy_ev:16.8f} </i>\n   <i name="e_wo_entrp">{energy_ev:16.8f} </i>\n'
              f'   <i name="e_0_energy">{energy_ev:16.8f} </i>\n')
    scsteps = "".join(f"  <scstep>\n   <energy>\n{energy}   </energy>\n  </scstep>\n" for _ in range(n_scsteps))
    zeros = "\n".join("   " + _v((0.0, 0.0, 0.0)) for _ in structure)
    stress = "\n".join("   " + _v((0.0, 0.0, 0.0)) for _ in range(3))
    return f""" <calculation>
{scsteps}{_structure_xml(structure)}  <varray name="forces" >
{zeros}
  </varray>
  <varray name="stress" >
{stress}
  </varray>
  <energy>
{energy}  </energy>
 </calculation>
"""


def _eigen_dos_xml(n_atoms: int) -> str:
    bands = "\n".join(f"       <r>{e:10.4f} {o:10.4f} </r>" for e, o in ((-5.0, 1.0), (-1.0, 1.0), (2.0, 0.0), (3.0, 0.0)))
    spins = "".join(f'     <set comment="spin {s}">\n      <set comment="kpoint 1">\n{bands}\n      </set>\n     </set>\n'
                    for s in (1, 2))
    dos_rows = "\n".join(f"       <r>{e:10.4f} 0.0000 0.0000 </r>" for e in (-5.0, 0.0, 5.0))
    dos_spins = "".join(f'     <set comment="spin {s}">\n{dos_rows}\n     </set>\n' for s in (1, 2))
    return f""" <calculation>
  <eigenvalues>
   <array>
    <dimension dim="1">band</dimension>
    <dimension dim="2">kpoint</dimension>
    <dimension dim="3">spin</dimension>
    <field>eigene</field>
    <field>occ</field>
    <set>
{spins}    </set>
   </array>
  </eigenvalues>
  <dos>
   <i name="efermi">      0.00000000 </i>
   <total>
    <array>
     <dimension dim="1">gridpoints</dimension>
     <dimension dim="2">spin</dimension>
     <field>energy</field>
     <field>total</field>
     <field>integrated</field>
     <set>
{dos_spins}     </set>
    </array>
   </total>
  </dos>
 </calculation>
"""


def vasprun_xml(structure: Structure, energy_ev: float, incar: dict, n_ionic: int = 1, n_scsteps: int = 8) -> str:
    """A vasprun.xml of ``n_ionic`` ionic steps, all at ``structure`` and ``energy_ev``."""
    kpoints = """ <kpoints>
  <generation param="Gamma">
   <v type="int" name="divisions">       1        1        1 </v>
   <v name="usershift">      0.00000000       0.00000000       0.00000000 </v>
  </generation>
  <varray name="kpointlist" >
   <v>       0.00000000       0.00000000       0.00000000 </v>
  </varray>
  <varray name="weights" >
   <v>       1.00000000 </v>
  </varray>
 </kpoints>
"""
    calculations = "".join(_calculation_xml(structure, energy_ev, n_scsteps) for _ in range(n_ionic))
    # the last calculation carries eigenvalues and DOS, as VASP writes them
    calculations = calculations[: calculations.rfind(" </calculation>")] + _eigen_dos_xml(len(structure))[len(" <calculation>\n"):]
    return (_HEADER + _incar_xml(incar) + kpoints + _parameters_xml(incar, len(structure)) + _atominfo_xml(structure)
            + _structure_xml(structure, "initialpos") + calculations + _structure_xml(structure, "finalpos") + "</modeling>\n")


def outcar_text(
    structure: Structure, energy_ev: float, converged: bool, magmoms: list[float] | None = None, ibrion: int = 2,
    neb_image: bool = False,
) -> str:
    lines = [" vasp.6.3.2 18Jan22 (build Jan 18 2022) complex parallel",
             f"   number of dos      NEDOS =    301   number of ions     NIONS = {len(structure):6d}",
             "   number of bands    NBANDS=     64", "   total plane-waves  NPLWV =  32768", "",
             " Dimension of arrays:", "   k-points           NKPTS =      1   k-points in BZ     NKDIM =      1",
             "   number of dos      NEDOS =    301   number of ions     NIONS = " + f"{len(structure):6d}", "",
             "   ISPIN  =      2    spin polarized calculation?",
             f"   IBRION = {ibrion:6d}    ionic relax: 0-MD 1-quasi-New 2-CG", ""]
    if magmoms is not None:
        lines += [" magnetization (x)", "", "# of ion       s       p       d       tot",
                  "------------------------------------------"]
        lines += [f"{i + 1:5d} {0.0:8.3f} {0.0:8.3f} {m:8.3f} {m:8.3f}" for i, m in enumerate(magmoms)]
        lines += ["--------------------------------------------------",
                  f"tot   {0.0:8.3f} {0.0:8.3f} {sum(magmoms):8.3f} {sum(magmoms):8.3f}", ""]
    lines += ["  total drift:                                0.000001      0.000001     -0.000001", ""]
    if neb_image:
        lines.append(" NEB: projections on to tangent (spring, REAL)  -0.00010   0.01000")
    lines += [f"  free  energy   TOTEN  = {energy_ev:18.8f} eV", "",
              f"  energy  without entropy= {energy_ev:18.8f}  energy(sigma->0) = {energy_ev:18.8f}", ""]
    if converged:
        lines.append(" reached required accuracy - stopping structural energy minimisation")
    lines += ["", " General timing and accounting informations for this job:", "", "  Total CPU time used (sec):       10.000",
              "                    Elapsed time (sec):       10.000", ""]
    return "\n".join(lines)


def write_vasp_run(
    directory: str | Path,
    structure: Structure,
    energy_ev: float,
    incar: dict,
    converged: bool = True,
    magmoms: list[float] | None = None,
) -> Path:
    """Output files of one finished VASP run in ``directory`` (a relaxation that hit NSW when not
    ``converged``: NSW ionic steps and no "reached required accuracy")."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    nsw = int(incar.get("NSW", 0))
    n_ionic = 1 if converged or nsw <= 1 else nsw
    (directory / "vasprun.xml").write_text(vasprun_xml(structure, energy_ev, incar, n_ionic=n_ionic))
    (directory / "OUTCAR").write_text(outcar_text(structure, energy_ev, converged, magmoms, int(incar.get("IBRION", 2)),
                                                   neb_image="IMAGES" in incar))
    (directory / "OSZICAR").write_text(
        "".join(f"{i + 1:4d} F= {energy_ev:.8E} E0= {energy_ev:.8E}  d E =0.0E+00  mag= {sum(magmoms or [0.0]):.4f}\n"
                for i in range(n_ionic))
    )
    structure.to(filename=str(directory / "CONTCAR"), fmt="poscar")
    if not (directory / "POSCAR").exists():
        structure.to(filename=str(directory / "POSCAR"), fmt="poscar")
    return directory


def displaced(structure: Structure, amount_a: float, seed: int) -> Structure:
    """``structure`` with every site moved by up to ``amount_a`` (a 'relaxed' copy)."""
    moved = structure.copy()
    shifts = np.random.default_rng(seed).uniform(-amount_a, amount_a, size=(len(moved), 3))
    for index, shift in enumerate(shifts):
        moved.translate_sites([index], shift, frac_coords=False, to_unit_cell=True)
    return moved


#: An NEB profile whose image 1 lies 0.40 eV below the initial endpoint (the issue's example,
#: shifted by -40 eV): forward 0.20 eV, effective barrier max - min 0.60 eV.
INTERMEDIATE_MINIMUM_ENERGIES = [-40.00, -40.40, -39.80, -40.10, -39.95]


def slid_to(structure: Structure, other: Structure) -> Structure:
    """``structure`` with the migrating ion (site 0) moved onto ``other``'s ion site: an endpoint
    relaxation in which the ion slid back to the other site."""
    moved = structure.copy()
    moved.replace(0, moved[0].species, other[0].frac_coords)
    return moved


def moved_hole(moments: list[float], from_site: int, to_site: int) -> list[float]:
    """Site moments with the localised hole's moment moved from one metal site to another."""
    moved = list(moments)
    moved[from_site], moved[to_site] = moments[to_site], moments[from_site]
    return moved


def write_endpoint_runs(
    root: str | Path,
    relaxed: tuple[Structure, Structure],
    energies_ev: tuple[float, float],
    incar: dict,
    moments: tuple[list[float] | None, list[float] | None] = (None, None),
    converged: tuple[bool, bool] = (True, True),
) -> list[str]:
    """Two endpoint relaxation directories (``relax1``, ``relax2``) as atomate2's RelaxMaker leaves them."""
    root = Path(root)
    return [str(write_vasp_run(root / f"relax{i + 1}", relaxed[i], energies_ev[i], incar, converged=converged[i],
                               magmoms=moments[i])) for i in range(2)]


IMAGE_ENERGIES = [-39.80, -39.55, -39.75]
ENDPOINT_ENERGY = -40.0
NUDGE_A = 0.05  # how far a fizzled fake NEB moved its images (written to their CONTCARs)


class FakeVasp:
    """Writes VASP outputs for the inputs in the current directory and records what it ran."""

    def __init__(self, log_file: str | Path | None = None):
        self.runs: list[tuple[str, list[Structure]]] = []
        self.neb_converges = False
        #: optional ``(job name, POSCAR structure) -> relaxed structure`` of a relaxation (default: unmoved)
        self.relax_to = None
        #: when set (a run in another process), each run appends its kind to this file and the NEB
        #: converges once a file "<log_file>.converge" exists
        self.log_file = Path(log_file) if log_file else None

    def __call__(self, *args, **kwargs):
        if self.log_file is not None:
            self.neb_converges = Path(f"{self.log_file}.converge").exists()
        incar = dict(Incar.from_file("INCAR"))
        if "IMAGES" in incar:
            n_images = int(incar["IMAGES"])
            frames = [Structure.from_file(f"{i:02d}/POSCAR") for i in range(n_images + 2)]
            self._record("neb", frames)
            for index in range(1, n_images + 1):
                reached = frames[index].copy()
                if not self.neb_converges:  # ran out of NSW part-way: the images moved a little
                    reached.translate_sites([0], [NUDGE_A, 0, 0], frac_coords=False)
                write_vasp_run(f"{index:02d}", reached, IMAGE_ENERGIES[index - 1], incar, converged=self.neb_converges)
        else:
            structure = Structure.from_file("POSCAR")
            self._record("relax", [structure])
            if self.relax_to is not None:
                from jobflow import CURRENT_JOB

                structure = self.relax_to(CURRENT_JOB.job.name, structure)
            write_vasp_run(".", structure, ENDPOINT_ENERGY, incar, magmoms=[0.0] * len(structure))


    def _record(self, kind: str, structures: list[Structure]) -> None:
        self.runs.append((kind, structures))
        if self.log_file is not None:
            with self.log_file.open("a") as handle:
                handle.write(json.dumps({"kind": kind, "structures": [s.as_dict() for s in structures]}) + "\n")


def install_fake_vasp(fake: FakeVasp, setattr_) -> None:
    """Replace VASP the way atomate2's test harness does: ``run_vasp`` writes outputs, inputs are
    written with ``potcar_spec`` (no POTCARs), NELECT is fixed. ``setattr_`` is pytest's
    ``monkeypatch.setattr`` (undone after the test) or plain ``setattr`` (a worker process)."""
    import atomate2.vasp.jobs.base
    import atomate2.vasp.jobs.neb
    from atomate2.vasp.sets.base import VaspInputGenerator
    from pymatgen.io.vasp.sets import VaspInputSet

    setattr_(atomate2.vasp.jobs.base, "run_vasp", fake)
    setattr_(atomate2.vasp.jobs.neb, "run_vasp", fake)
    original = VaspInputGenerator.get_input_set
    setattr_(VaspInputSet, "get_input_set", lambda self, *a, **k: original(self, *a, **{**k, "potcar_spec": True}))
    setattr_(VaspInputSet, "nelect", property(lambda self: 8))


NEB_ENERGIES = [-40.00, -39.80, -39.55, -39.75, -39.95]  # barrier 0.45 eV, reverse 0.40 eV
RELAX_INCAR = {"NSW": 99, "IBRION": 2, "ISIF": 2, "EDIFFG": -0.02}
NEB_INCAR = {"NSW": 5, "IBRION": 3, "EDIFFG": -0.05, "IMAGES": 3, "LCLIMB": True}
LOW_SPIN = [0.0, 0.02, 0.95, 0.03, 0.0, 0.0]  # hole on site 2 (Co4+)


def cobalt_oxide_endpoints() -> tuple[Structure, Structure]:
    """A 6-site Li-Co-O cell and the Li moved 2.24 Å: a hop small enough for hand-written outputs."""
    lattice = Lattice.orthorhombic(5.6, 5.6, 5.6)
    host = [[0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5], [0.25, 0.25, 0.25], [0.75, 0.75, 0.25]]
    species = ["Li", "Co", "Co", "Co", "O", "O"]
    return (Structure(lattice, species, [[0.0, 0.0, 0.0], *host]),
            Structure(lattice, species, [[0.0, 0.0, 0.4], *host]))


def write_atomate2_neb(root, energies=NEB_ENERGIES, image_converged=(True, True, True), final_moments=LOW_SPIN):
    """Endpoint relaxation directories and an NEB directory exactly as atomate2 leaves them:
    ``00``/``04`` hold only the POSCAR, ``01``-``03`` the image runs, INCAR at the top."""
    initial, final = cobalt_oxide_endpoints()
    images = initial.interpolate(final, nimages=4, autosort_tol=0)
    ends = [write_vasp_run(root / "relax1", initial, energies[0], RELAX_INCAR, magmoms=LOW_SPIN),
            write_vasp_run(root / "relax2", final, energies[-1], RELAX_INCAR, magmoms=list(final_moments))]
    neb = root / "neb"
    for index, image in enumerate(images):
        image_dir = neb / f"{index:02d}"
        if index in (0, len(images) - 1):
            image_dir.mkdir(parents=True)
            image.to(filename=str(image_dir / "POSCAR"), fmt="poscar")
        else:
            write_vasp_run(image_dir, image, energies[index], NEB_INCAR, converged=image_converged[index - 1])
    Incar(NEB_INCAR).write_file(neb / "INCAR")
    return [str(d) for d in ends], str(neb)
