"""Where a barrier's inputs came from: the record each NEB result carries (``NebOutcome.provenance``,
the store's ``results.provenance_json``).

A record names the preset and a hash of its resolved settings (every key after validation and
defaults, so two presets that run the same calculation hash the same, whatever their file names),
the settings themselves, the engine's inputs (the INCAR VASP read, or the MLIP and its NEB
settings), the versions of the codes that ran it (alem, pymatgen, atomate2, jobflow, the MLIP
package) and VASP's version as its OUTCAR states it. ``attempts`` stays empty in the record the
NEB writes (a job cannot know its own restarts); the jobs ledger keeps them, and reading a result as
training data or exporting it (:mod:`alem.campaign.ingest`) fills them in from there.

Versions are read where the calculation runs when that is alem's own process (the local worker,
the Slurm/PBS batch job: ``code_versions_where`` says so); a FireWorks or jobflow-remote worker
is not alem's, so there they are the submitting alem's.
"""

from __future__ import annotations

import hashlib
import json
import socket
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from alem.neb.presets import Preset

#: The Python distribution of each MLIP atomate2 can run (its ``force_field`` name, lower case).
MLIP_PACKAGES = {
    "chgnet": "chgnet",
    "mace": "mace-torch",
    "mace-mp": "mace-torch",
    "mace-mp-0": "mace-torch",
    "m3gnet": "matgl",
    "sevennet": "sevenn",
    "gap": "quippy-ase",
    "nequip": "nequip",
}
CORE_PACKAGES = ("alem", "pymatgen", "atomate2", "jobflow")
#: Flow metadata key holding the submission's record (read back by FireWorks / jobflow-remote backends).
PROVENANCE_KEY = "alem_provenance"
#: Written into a run directory by the job itself: the versions on the machine that ran it.
RUN_VERSIONS_FILE = "code_versions.json"


class NebProvenance(BaseModel):
    """What produced one NEB result (see the module docstring)."""

    model_config = ConfigDict(extra="allow")

    preset: str | None = Field(None, description="preset name (workflows/<name>.toml)")
    preset_file: str | None = Field(None, description="the file it was read from")
    settings_sha256: str | None = Field(None, description="sha256 of the preset's resolved settings (canonical JSON)")
    settings: dict[str, Any] | None = Field(None, description="the preset's resolved settings")
    engine: str | None = Field(None, description="vasp | mlip | replay")
    fidelity: str | None = None
    mlip: dict[str, Any] | None = Field(None, description="the potential and its NEB settings (MLIP runs)")
    incar: dict[str, Any] | None = Field(None, description="INCAR of the NEB as VASP read it (VASP runs)")
    vasp_version: str | None = Field(None, description="VASP's version line from the NEB's OUTCAR")
    code_versions: dict[str, str | None] = Field(default_factory=dict, description="package -> version")
    code_versions_where: str | None = Field(None, description="the host (or 'submitting alem') the versions were read on")
    attempts: list[dict[str, Any]] = Field(
        default_factory=list, description="one entry per attempt (job id, state, core-hours), filled from the jobs ledger on export"
    )
    note: str | None = Field(None, description="what is not known and why")


def settings_sha256(preset: Preset) -> str:
    """sha256 of the preset's resolved settings as canonical JSON (its name and file excluded)."""
    settings = preset.model_dump(mode="json", exclude={"name", "description"})
    return hashlib.sha256(json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def mlip_package(force_field: str) -> str | None:
    return MLIP_PACKAGES.get(force_field.strip().lower())


def installed_version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def code_versions(potential_package: str | None = None) -> dict[str, str | None]:
    """Versions of alem, pymatgen, atomate2, jobflow and the MLIP's package (if any) in this
    Python (None: not installed)."""
    packages = [*CORE_PACKAGES, *([potential_package] if potential_package else [])]
    return {package: installed_version(package) for package in packages}


def preset_provenance(preset: Preset) -> NebProvenance:
    """The record of a run about to be submitted with ``preset`` (versions: this process's)."""
    mlip, package = None, None
    if preset.engine == "mlip":
        package = mlip_package(preset.mlip.force_field)
        mlip = {**preset.mlip.model_dump(mode="json"), "package": package, "neb": preset.neb.model_dump(mode="json")}
    return NebProvenance(
        preset=preset.name,
        preset_file=preset.source or None,
        settings_sha256=settings_sha256(preset),
        settings=preset.model_dump(mode="json"),
        engine=preset.engine,
        fidelity=preset.fidelity,
        mlip=mlip,
        code_versions=code_versions(package),
        code_versions_where="submitting alem",
    )


def run_versions(preset_record: dict[str, Any] | None) -> dict[str, Any]:
    """What a job writes where it runs (:data:`RUN_VERSIONS_FILE`): its host and the versions of
    the packages its submission record names."""
    package = ((preset_record or {}).get("mlip") or {}).get("package")
    return {"host": socket.gethostname(), "code_versions": code_versions(package)}


def vasp_version_of(outcar: Path) -> str | None:
    """VASP's version from the first line of an OUTCAR (``vasp.6.4.2 20Jul23 (build ...) complex``)."""
    from monty.io import zopen

    try:
        with zopen(outcar, mode="rt") as handle:
            first = handle.readline().strip()
    except OSError:
        return None
    return first or None


def _local_path(dir_name: str) -> Path:
    # emmet's dir_name is "host:/path" when written on a node; the path part is on the shared filesystem
    head, sep, tail = dir_name.partition(":")
    return Path(tail if sep and "/" not in head else dir_name)


def vasp_inputs_record(neb_dir: str | Path | None) -> dict[str, Any]:
    """``{"incar": ..., "vasp_version": ...}`` read from a VASP NEB directory (atomate2 layout: the
    INCAR at the top, an OUTCAR per image); empty keys stay None when a file is not readable here."""
    from pymatgen.io.vasp import Incar

    record: dict[str, Any] = {"incar": None, "vasp_version": None}
    if not neb_dir:
        return record
    directory = _local_path(str(neb_dir))
    incar = next(iter(sorted(directory.glob("INCAR*"))), None) if directory.is_dir() else None
    if incar is not None:
        try:
            record["incar"] = {key: value for key, value in Incar.from_file(incar).as_dict().items() if not key.startswith("@")}
        except (OSError, ValueError):
            pass
    for outcar in sorted(directory.glob("[0-9][0-9]/OUTCAR*")) if directory.is_dir() else []:
        if (found := vasp_version_of(outcar)) is not None:
            record["vasp_version"] = found
            break
    return record


def provenance_for_run(preset_record: dict[str, Any] | None, run_record: dict[str, Any] | None,
                       vasp_dir: str | Path | None) -> dict[str, Any]:
    """The stored record of a finished run: the record written at submission, the versions the job
    wrote where it ran (when it did), and for VASP the INCAR and VASP version of its NEB."""
    provenance = NebProvenance.model_validate(preset_record or {"note": "no preset record (submitted before alem recorded provenance)"})
    if run_record:
        provenance.code_versions = dict(run_record.get("code_versions") or provenance.code_versions)
        provenance.code_versions_where = run_record.get("host") or provenance.code_versions_where
    if provenance.engine == "vasp":
        vasp = vasp_inputs_record(vasp_dir)
        provenance.incar, provenance.vasp_version = vasp["incar"], vasp["vasp_version"]
        if vasp["incar"] is None:
            provenance.note = f"INCAR not readable from {vasp_dir or 'an unknown NEB directory'}"
    return provenance.model_dump(mode="json")


def provenance_summary(record: dict[str, Any]) -> str:
    """One short line naming a record: ``vasp_gga_u (settings 1a2b3c4d)``, ``replay``, ``not recorded``."""
    if not record:
        return "not recorded"
    name = record.get("preset") or record.get("engine") or "unknown preset"
    digest = record.get("settings_sha256")
    return f"{name} (settings {digest[:8]})" if digest else str(name)


def provenance_lines(record: dict[str, Any]) -> list[str]:
    """The record in plain lines for a person (``alem show``)."""
    if not record:
        return ["provenance: not recorded"]
    lines = [f"provenance: preset {provenance_summary(record)}" + (f", {record['preset_file']}" if record.get("preset_file") else "")]
    if record.get("mlip"):
        mlip = record["mlip"]
        neb = mlip.get("neb") or {}
        lines.append(f"  MLIP {mlip.get('force_field')} ({mlip.get('package') or 'package unknown'}), "
                     f"NEB {mlip.get('neb_method')}, {neb.get('n_images', '?')} images, fmax {neb.get('fmax_ev_a', '?')} eV/Å")
    if record.get("incar"):
        tags = ", ".join(f"{key}={value}" for key, value in sorted(record["incar"].items()))
        lines.append(f"  INCAR: {tags}")
    if record.get("vasp_version"):
        lines.append(f"  VASP: {record['vasp_version']}")
    versions = ", ".join(f"{name} {value or 'not installed'}" for name, value in (record.get("code_versions") or {}).items())
    if versions:
        lines.append(f"  code ({record.get('code_versions_where') or 'where unknown'}): {versions}")
    for attempt in record.get("attempts") or []:
        lines.append("  attempt " + ", ".join(f"{key} {value}" for key, value in attempt.items()))
    if record.get("note"):
        lines.append(f"  note: {record['note']}")
    return lines
