"""NEB input presets: TOML files under ``workflows/`` validated into :class:`Preset`.

A campaign names a preset (``[backend.local] preset = "mlip_chgnet"``). The name is looked up,
in order, in ``<campaign>/workflows/``, in ``$ALEM_WORKFLOWS_DIR`` and in the ``workflows/``
directory shipped with alem (:func:`alem.shipped_dir`: the repository's, or the wheel's copy);
a path to a ``.toml`` file also works. A campaign
therefore overrides a shipped preset by dropping a file of the same name into its own
``workflows/`` directory.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alem import shipped_dir
from alem.errors import AlemError

#: Environment variable naming an extra preset directory.
WORKFLOWS_ENV = "ALEM_WORKFLOWS_DIR"


class PresetError(AlemError, ValueError):
    """A preset that cannot be found or is invalid; the message names the file and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NebSettings(_Section):
    n_images: int = Field(5, ge=1, le=16, description="intermediate images between the two endpoints")
    climbing_image: bool = Field(True, description="climbing-image NEB (VASP: needs VTST-patched VASP)")
    spring_constant_ev_a2: float = Field(5.0, gt=0, description="spring constant between images (eV/Å²)")
    fmax_ev_a: float = Field(0.05, gt=0, description="NEB force convergence (eV/Å); VASP: EDIFFG = -fmax")
    max_steps: int = Field(200, ge=1, description="most optimiser / ionic steps of the NEB")
    interpolation: Literal["idpp", "linear"] = Field("idpp", description="initial path between the endpoints")
    relax_endpoints: bool = Field(
        True, description="relax both endpoints (fixed cell) first; false = endpoints are already relaxed"
    )
    endpoint_fmax_ev_a: float = Field(0.02, gt=0, description="force convergence of the endpoint relaxations")
    endpoint_max_steps: int = Field(300, ge=1, description="most steps of an endpoint relaxation")
    start_from_screening: bool = Field(
        True, description="VASP: start the images from the hop's usable MLIP screening path (mapped onto the DFT "
        "cell) instead of IDPP, when one exists"
    )


class SupercellRule(_Section):
    min_image_distance_a: float = Field(
        8.0, ge=0.0, description="periodic images of the migrating ion stay at least this far apart; 0 = off"
    )
    max_atoms: int = Field(400, ge=1, description="refuse NEB cells larger than this")


#: Force fields whose package downloads its weights when given none (mace-torch): a preset must name a file.
DOWNLOADING_FORCE_FIELDS = ("mace",)


class MlipSettings(_Section):
    force_field: str = Field("CHGNet", description="atomate2 force-field name; its weights must ship in its wheel, "
                             "or model_path names them")
    model_path: str = Field("", description="a model file you provide (e.g. a MACE .model file), read as is, never "
                            "downloaded; ~ and $VARIABLES expand, a relative path is relative to the preset file; "
                            "empty: the weights the potential's wheel ships")
    potential: str = Field("", description="the potential's name in fidelity labels (mlip:<potential>); empty: force_field")
    neb_method: Literal["improvedtangent", "aseneb", "eb", "spline", "string"] = Field(
        "improvedtangent", description="ASE NEB tangent method"
    )


class VaspSettings(_Section):
    functional: Literal["GGA", "GGA+U"] = Field(
        "GGA", description="GGA: PBE without U; GGA+U: Materials Project U values (O/F compounds with Co-W)"
    )
    incar_updates: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="INCAR tags set on top of the Materials Project settings"
    )
    kpoints_reciprocal_density: int = Field(64, ge=1, description="k-point density (MP relax: 64)")
    potcar_functional: str = Field("PBE", description="POTCAR set (MP: PBE)")
    ediff_ev: float = Field(
        1e-6, gt=0, le=1e-5, description="absolute EDIFF (eV) of every step, endpoints and images alike"
    )
    ncore: int | None = Field(None, ge=1, description="NCORE (bands per group); unset = VASP's default")
    kpar: int | None = Field(None, ge=1, description="KPAR (k-point groups per image); unset = VASP's default")
    nodes_per_image: int = Field(
        1, ge=1, description="compute nodes per image: the NEB job asks for n_images x this, an endpoint or "
        "host relaxation for this, the small Python jobs for 1"
    )
    relax_host: bool = Field(
        False, description="relax the host cell (ISIF 3, same electronic settings) first and build the NEB cell "
        "on the relaxed lattice instead of the CIF's"
    )
    charge: Literal["neutral", "charged"] = Field(
        "neutral", description="neutral: removing the ion (atom) leaves a hole per unit of its charge (Li/Na/K one, "
        "Mg/Ca/Zn two); charged: the ion leaves as a cation, NELECT keeps its electrons and VASP adds a compensating "
        "background (solid electrolytes, no polaron)"
    )
    pin_polaron: bool = Field(
        False, description="neutral cell: start the hole on one metal site in every endpoint and image (the "
        "transition-metal site nearest both vacancy positions), not spread by one MAGMOM per species"
    )
    polaron_magmom_mu_b: float = Field(1.0, description="initial moment (μB) of the pinned polaron site")
    host_magmom_mu_b: float | None = Field(
        None, description="initial moment (μB) of the other sites of the pinned site's species (unset: MP's value)"
    )

    @model_validator(mode="after")
    def _charged_cell_has_no_polaron(self) -> VaspSettings:
        if self.charge == "charged" and self.pin_polaron:
            raise ValueError("pin_polaron needs charge = \"neutral\": a charged cell has no hole to pin")
        return self

    def charge_description(self, working_ion: str = "the ion") -> str:
        """Which charge and polaron choice this preset makes, in words (doctor, review page)."""
        if self.charge == "charged":
            return (f"charged cell: {working_ion} leaves as a cation, NELECT keeps its electrons "
                    "(compensating background, no polaron)")
        hole = ("pinned: MAGMOM starts the hole on the transition-metal site nearest both vacancy positions "
                f"({self.polaron_magmom_mu_b:g} μB; the rest of its species "
                f"{'MP values' if self.host_magmom_mu_b is None else f'{self.host_magmom_mu_b:g} μB'}), "
                "in both endpoints and every image")
        return (f"neutral cell: removing {working_ion} leaves a hole per unit of its charge; the hole is "
                + (hole if self.pin_polaron else "free (one MAGMOM per species; where it localises is checked)"))


class CheckSettings(_Section):
    """What makes a path or its endpoints unusable (docs: NEB workflows, "NEB checks")."""

    intermediate_minimum_tolerance_ev: float = Field(
        0.05, ge=0, description="an interior image this far (eV) below the lower endpoint is an intermediate minimum"
    )
    accept_intermediate_minimum: bool = Field(
        False, description="true: such a path is a label, with the effective barrier max - min; false: it is recorded "
        "as unusable (the effective barrier stays in the result)"
    )
    endpoint_check: bool = Field(
        True, description="check the relaxed endpoints before any image runs (a job of its own in the flow)"
    )
    max_ion_shift_a: float = Field(
        0.75, gt=0, description="the migrating ion may move at most this far (Å) from its site in an endpoint relaxation"
    )
    min_endpoint_separation_fraction: float = Field(
        0.5, gt=0, le=1, description="the relaxed ion sites must stay at least this fraction of the hop length apart"
    )
    max_endpoint_energy_difference_ev: float = Field(
        1.0, gt=0, description="|E(final) - E(initial)| of the relaxed endpoints above this (eV) is implausible"
    )
    max_moment_change_mu_b: float = Field(
        0.3, gt=0, description="VASP: a site moment differing by more than this (μB) between the endpoints = moved polaron"
    )


class Preset(_Section):
    name: str
    engine: Literal["vasp", "mlip"]
    description: str = ""
    neb: NebSettings = Field(default_factory=NebSettings)
    supercell: SupercellRule = Field(default_factory=SupercellRule)
    mlip: MlipSettings | None = None
    vasp: VaspSettings | None = None
    checks: CheckSettings = Field(default_factory=CheckSettings)
    #: File the preset was read from (not a TOML key).
    source: str = Field("", exclude=True)

    @model_validator(mode="after")
    def _engine_section_present(self) -> Preset:
        if self.engine == "mlip" and self.mlip is None:
            self.mlip = MlipSettings()
        if self.engine == "vasp" and self.vasp is None:
            self.vasp = VaspSettings()
        if self.engine == "mlip" and self.vasp is not None:
            raise ValueError("an mlip preset cannot have a [vasp] section")
        if self.engine == "vasp" and self.mlip is not None:
            raise ValueError("a vasp preset cannot have an [mlip] section")
        return self

    @model_validator(mode="after")
    def _no_downloaded_weights(self) -> Preset:
        mlip = self.mlip
        if mlip is not None and not mlip.model_path and mlip.force_field.lower().startswith(DOWNLOADING_FORCE_FIELDS):
            raise ValueError(f"[mlip] force_field {mlip.force_field!r} downloads its weights when given none; set "
                             "[mlip] model_path to a model file you provide (alem never downloads weights)")
        return self

    def model_file(self) -> Path | None:
        """The model file ``[mlip] model_path`` names, resolved (None: the wheel's weights). It need
        not exist: :func:`alem.doctor.check_potential` and building a flow say when it does not."""
        if self.mlip is None or not self.mlip.model_path:
            return None
        path = Path(os.path.expandvars(os.path.expanduser(self.mlip.model_path)))
        if not path.is_absolute() and self.source:
            path = Path(self.source).parent / path
        return path

    @property
    def potential(self) -> str:
        """The potential's name in this preset's fidelity (``[mlip] potential``, else ``force_field``)."""
        return (self.mlip.potential or self.mlip.force_field) if self.mlip else ""

    @property
    def fidelity(self) -> str:
        """Level of theory of this preset's barriers: ``dft:<functional>`` or ``mlip:<potential>``."""
        if self.engine == "vasp":
            return f"dft:{self.vasp.functional}"
        return f"mlip:{self.potential}"

    @property
    def path_criteria(self):
        """The :class:`alem.neb.barrier.PathCriteria` this preset's results are judged by."""
        from alem.neb.barrier import PathCriteria

        return PathCriteria(
            max_moment_change_mu_b=self.checks.max_moment_change_mu_b,
            intermediate_minimum_tolerance_ev=self.checks.intermediate_minimum_tolerance_ev,
            accept_intermediate_minimum=self.checks.accept_intermediate_minimum,
        )

    @property
    def method_label(self) -> str:
        """Short description for results, e.g. ``vasp:GGA+U CI-NEB`` or ``mlip:CHGNet NEB``."""
        kind = "CI-NEB" if self.neb.climbing_image else "NEB"
        if self.engine == "vasp":
            return f"vasp:{self.vasp.functional} {kind}"
        return f"mlip:{self.potential} {kind}"


def preset_search_dirs(campaign_dir: str | Path | None = None) -> list[Path]:
    dirs: list[Path] = []
    if campaign_dir is not None:
        dirs.append(Path(campaign_dir) / "workflows")
    if os.environ.get(WORKFLOWS_ENV):
        dirs.append(Path(os.environ[WORKFLOWS_ENV]).expanduser())
    dirs.append(shipped_dir("workflows"))
    return dirs


def find_preset_file(name_or_path: str | Path, campaign_dir: str | Path | None = None) -> Path:
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix == ".toml":
        if not candidate.is_absolute() and campaign_dir is not None and not candidate.exists():
            candidate = Path(campaign_dir) / candidate
        if candidate.is_file():
            return candidate
        raise PresetError(f"{candidate}: preset file not found")
    searched = preset_search_dirs(campaign_dir)
    for directory in searched:
        path = directory / f"{name_or_path}.toml"
        if path.is_file():
            return path
    where = ", ".join(str(d) for d in searched)
    raise PresetError(f"preset {str(name_or_path)!r} not found (looked for {name_or_path}.toml in {where})")


def load_preset(name_or_path: str | Path, campaign_dir: str | Path | None = None) -> Preset:
    """Read and validate a preset by name or path; :class:`PresetError` names file and key."""
    path = find_preset_file(name_or_path, campaign_dir)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise PresetError(f"{path}: cannot read preset ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{path}: not valid TOML ({exc})") from exc
    try:
        preset = Preset.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(part) for part in error["loc"]) or "preset"
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        raise PresetError(f"{path}: {loc}: {message}") from exc
    preset.source = str(path)
    return preset


def available_presets(campaign_dir: str | Path | None = None) -> dict[str, Path]:
    """Preset names visible from a campaign, mapped to the file that wins."""
    found: dict[str, Path] = {}
    for directory in preset_search_dirs(campaign_dir):
        if directory.is_dir():
            for path in sorted(directory.glob("*.toml")):
                found.setdefault(path.stem, path)
    return found


def campaign_preset(config) -> Preset | None:
    """The preset the campaign's backend runs (``alem.toml`` ``[backend.<kind>] preset``); None
    for a backend without one (replay)."""
    section = getattr(config.backend, str(config.backend.kind).replace("-", "_"), None)
    name = getattr(section, "preset", None)
    return load_preset(name, config.campaign_dir) if name else None
