"""``alem doctor``: check that a campaign's backend can run NEBs, and say plainly what is wrong.

Each check returns a :class:`Check` (ok / problem / warning with one sentence and, for problems,
what to do). Checks never modify anything and never start calculations.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from alem import shipped_dir
from alem.errors import AlemError

if TYPE_CHECKING:
    from fireworks import LaunchPad
    from jobflow import JobStore
    from pydantic import BaseModel

    from alem.config import BatchBackendSection, CampaignConfig, RetrainJobSection
    from alem.neb.presets import Preset

Status = Literal["ok", "problem", "warning"]


class BackendNotReadyError(AlemError, RuntimeError):
    """A check ``alem doctor`` runs found a problem: the campaign's backend cannot run NEBs."""


@dataclass
class Check:
    name: str
    status: Status
    message: str

    @property
    def ok(self) -> bool:
        return self.status != "problem"


def unwritable_because(directory: Path) -> str | None:
    """Why ``directory`` (or, while it does not exist, the nearest directory it would be made in)
    cannot be written, or None. Tried with a temporary file that is removed at once: ``os.access``
    says yes to root everywhere, read-only mounts included."""
    parent = Path(directory)
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot be made: {parent} is a file"
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        return f"is not writable ({parent}: {exc.strerror or exc})"
    return None


def check_preset(name: str, campaign_dir: Path) -> tuple[Check, Preset | None]:
    from alem.neb.presets import PresetError, load_preset

    try:
        preset = load_preset(name, campaign_dir)
    except PresetError as exc:
        return Check("preset", "problem", str(exc)), None
    return Check("preset", "ok", f"{preset.name} ({preset.method_label}) from {preset.source}"), preset


def check_model_file(preset: Preset) -> Check | None:
    """Whether the model file ``[mlip] model_path`` names exists (None: the preset names none)."""
    model_file = preset.model_file()
    if model_file is None:
        return None
    if not model_file.is_file():
        unset = "an environment variable in it is not set; " if "$" in str(model_file) else ""
        return Check("model file", "problem", f"[mlip] model_path {preset.mlip.model_path!r} of {preset.name} is {model_file}, "
                     f"which does not exist ({unset}point it at a model file you have: alem never downloads weights)")
    return Check("model file", "ok", f"{model_file} ({model_file.stat().st_size / 1e6:.1f} MB)")


def check_potential(preset: Preset) -> Check:
    """Load the machine-learned potential the preset names (weights shipped in the wheel, or the
    model file ``[mlip] model_path`` names)."""
    model_file = preset.model_file()
    if model_file is not None and not model_file.is_file():
        return Check("potential", "problem", f"cannot load {preset.mlip.force_field}: no model file {model_file}")
    try:
        from atomate2.forcefields.utils import ase_calculator

        kwargs = {"model": str(model_file)} if model_file is not None else {}
        calculator = ase_calculator(preset.mlip.force_field, **kwargs)
    except Exception as exc:  # an import error or a failed weight load both mean "cannot run"
        return Check("potential", "problem", f"cannot load the {preset.mlip.force_field} potential: "
                     f"{type(exc).__name__}: {exc}")
    if calculator is None:
        return Check("potential", "problem", f"atomate2 knows no potential named {preset.mlip.force_field!r}")
    return Check("potential", "ok", f"{preset.mlip.force_field} loads ({type(calculator).__name__})")


def check_vasp(preset: Preset) -> list[Check]:
    """VASP command and POTCAR directory as atomate2/pymatgen will look for them."""
    from atomate2 import SETTINGS as ATOMATE2_SETTINGS
    from pymatgen.core import SETTINGS as PMG_SETTINGS

    checks = []
    command = str(ATOMATE2_SETTINGS.VASP_CMD)
    executable = command.split()[-1] if command.split() else ""
    if executable and shutil.which(executable):
        checks.append(Check("vasp command", "ok", f"VASP_CMD = {command!r}"))
    else:
        checks.append(Check("vasp command", "warning",
                            f"VASP_CMD = {command!r}: {executable or 'nothing'} is not on PATH here; fine if it only "
                            "exists on compute nodes (set ATOMATE2_VASP_CMD or VASP_CMD in ~/.atomate2.yaml there)"))
    psp_dir = PMG_SETTINGS.get("PMG_VASP_PSP_DIR")
    functional_dir = {"PBE": "POT_GGA_PAW_PBE", "PBE_54": "POT_PAW_PBE_54", "PBE_64": "POT_PAW_PBE_64"}.get(
        preset.vasp.potcar_functional, "")
    if not psp_dir:
        checks.append(Check("POTCARs", "problem", "PMG_VASP_PSP_DIR is not set (in ~/.config/.pmgrc.yaml or the "
                            "environment): VASP inputs cannot be written. Run `pmg config --add PMG_VASP_PSP_DIR <dir>`"))
    elif not (Path(psp_dir) / functional_dir).is_dir():
        checks.append(Check("POTCARs", "problem",
                            f"PMG_VASP_PSP_DIR = {psp_dir} has no {functional_dir}/ directory for the "
                            f"{preset.vasp.potcar_functional} POTCARs the preset asks for"))
    else:
        checks.append(Check("POTCARs", "ok", f"{Path(psp_dir) / functional_dir}"))
    if preset.neb.climbing_image:
        checks.append(Check("VTST", "warning", "the preset runs climbing-image NEB with the VTST optimiser "
                            "(LCLIMB = True, IBRION = 3, POTIM = 0, IOPT = 1): the VASP on the compute nodes must be "
                            "built with the VTST tools (vtstcode); with stock VASP set climbing_image = false in a copy "
                            "of the preset"))
    checks.append(Check("charge", "ok", preset.vasp.charge_description()))
    checks.append(check_example_incar(preset))
    return checks


def check_example_incar(preset: Preset) -> Check:
    """The INCAR the preset writes for a shipped host, so a practitioner can read it at a glance."""
    from alem.neb.vasp_inputs import EXAMPLE_HOST, example_incar_text

    try:
        return Check("INCAR", "ok", example_incar_text(preset))
    except Exception as exc:  # the preset cannot produce inputs: say why, do not stop the other checks
        return Check("INCAR", "problem", f"cannot write the inputs for {EXAMPLE_HOST}: {type(exc).__name__}: {exc}")


def check_queue_commands() -> Check:
    found = [command for command in ("sbatch", "qsub") if shutil.which(command)]
    if found:
        return Check("queue", "ok", f"{', '.join(found)} found")
    return Check("queue", "problem", "neither sbatch (Slurm) nor qsub (PBS) is on PATH: jobs cannot reach a queue "
                 "from this machine (run alem on the cluster's login node)")


def check_job_store(store: JobStore | None) -> Check:
    if store is None:
        return Check("job store", "problem", "no jobflow JOB_STORE configured (set JOBFLOW_CONFIG_FILE or ~/.jobflow.yaml)")
    if "data" not in getattr(store, "additional_stores", {}):
        return Check("job store", "problem", "the jobflow JobStore has no 'data' additional store; atomate2 jobs fail "
                     f"with 'Unrecognised additional store name: data' (see {shipped_dir('hpc_configs') / 'README.md'})")
    try:
        store.connect()
        store.docs_store.count()
    except Exception as exc:
        return Check("job store", "problem", f"cannot reach the jobflow JobStore: {type(exc).__name__}: {exc}")
    return Check("job store", "ok", f"{type(store.docs_store).__name__} reachable, 'data' store configured")


def check_launchpad(launchpad_file: Path, launchpad: LaunchPad | None = None) -> Check:
    if launchpad is None:
        if not launchpad_file or not Path(launchpad_file).is_file():
            return Check("launchpad", "problem", f"launchpad file {launchpad_file or '(not set)'} not found: set "
                         f"[backend.fireworks] launchpad_file to your my_launchpad.yaml "
                         f"(template in {shipped_dir('hpc_configs') / 'fireworks'})")
        try:
            from fireworks import LaunchPad

            launchpad = LaunchPad.from_file(str(launchpad_file))
            launchpad.connection.admin.command("ping")
        except Exception as exc:
            return Check("launchpad", "problem", f"cannot reach the FireWorks database of {launchpad_file}: "
                         f"{type(exc).__name__}: {exc}")
    try:
        count = launchpad.workflows.count_documents({})
    except Exception as exc:
        return Check("launchpad", "problem", f"FireWorks database not usable: {type(exc).__name__}: {exc}")
    return Check("launchpad", "ok", f"database reachable ({count} workflows)")


def check_jobflow_remote(project: str | None, worker: str | None) -> list[Check]:
    try:
        from jobflow_remote.config import ConfigManager

        project_obj = ConfigManager().get_project(project or None)
    except Exception as exc:
        return [Check("jobflow-remote project", "problem", f"cannot load project {project or '(default)'}: "
                      f"{type(exc).__name__}: {exc} (templates in {shipped_dir('hpc_configs') / 'jobflow_remote'})")]
    checks = [Check("jobflow-remote project", "ok", f"{project_obj.name}")]
    if worker and worker not in project_obj.workers:
        checks.append(Check("jobflow-remote worker", "problem",
                            f"project {project_obj.name} has no worker {worker!r} (it has {', '.join(project_obj.workers)})"))
    elif not project_obj.workers:
        checks.append(Check("jobflow-remote worker", "problem", f"project {project_obj.name} has no workers"))
    else:
        checks.append(Check("jobflow-remote worker", "ok", worker or next(iter(project_obj.workers))))
    try:
        from jobflow_remote import JobController

        controller = JobController.from_project(project_obj)
        controller.count_jobs()
        checks.append(Check("queue database", "ok", "reachable"))
        checks.append(check_job_store(project_obj.get_jobstore()))
    except Exception as exc:
        checks.append(Check("queue database", "problem", f"cannot reach the project's queue database: "
                            f"{type(exc).__name__}: {exc}"))
    return checks


#: What the templates in hpc_configs/ leave for the user to fill in.
PLACEHOLDER = re.compile(r"YOUR_[A-Z_]+|CHANGE_ME|/path/to\b|example\.org")


def placeholders_in(section: BaseModel) -> dict[str, list[str]]:
    """Setting name -> the template placeholders its value still holds (strings and lists of them)."""
    found = {}
    for name, value in section.model_dump().items():
        texts = value if isinstance(value, list) else [value]
        hits = [hit for text in texts if isinstance(text, str) for hit in PLACEHOLDER.findall(text)]
        if hits:
            found[name] = list(dict.fromkeys(hits))
    return found


def check_placeholders(table: str, section: BaseModel) -> Check:
    """The section pasted from a template with its placeholders left in (``[backend.slurm]``...)."""
    found = placeholders_in(section)
    if not found:
        return Check("placeholders", "ok", f"{table}: none of the templates' YOUR_*, CHANGE_ME, /path/to left")
    listed = "; ".join(f"{name} = {getattr(section, name)!r} ({', '.join(hits)})" for name, hits in found.items())
    return Check("placeholders", "problem", f"{table} still holds the template's placeholders: {listed}; put your own values in")


def _run_listing(command: list[str]) -> tuple[list[str] | None, str]:
    """The output lines of a scheduler listing command, or None and what it said."""
    import subprocess

    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{command[0]}: {exc}"
    if done.returncode != 0:
        return None, " ".join((done.stderr or done.stdout).split()) or f"{command[0]} exited {done.returncode}"
    return [line.strip() for line in done.stdout.splitlines() if line.strip()], ""


def _slurm_names(field: str) -> tuple[set[str] | None, str]:
    """Partitions (``sinfo``) or this user's accounts or QOS (``sacctmgr``), or None and why not."""
    import getpass

    if field == "partition":
        lines, said = _run_listing(["sinfo", "--noheader", "--format=%R"])
        return (set(lines) if lines is not None else None), said
    lines, said = _run_listing(["sacctmgr", "--noheader", "--parsable2", "show", "associations",
                                f"user={getpass.getuser()}", f"format={field}"])
    if lines is None:
        return None, said
    return {name for line in lines for name in line.split(",") if name}, ""


def _pbs_queues() -> tuple[set[str] | None, str]:
    """Queue names ``qstat -Q`` lists (the first column under its dashed rule)."""
    lines, said = _run_listing(["qstat", "-Q"])
    if lines is None:
        return None, said
    rule = next((i for i, line in enumerate(lines) if set(line) <= {"-", " "}), 0)
    return {line.split()[0] for line in lines[rule + 1:]}, ""


def check_queue_settings(scheduler: str, table: str, queue_key: str, queue: str, account: str, qos: str) -> list[Check]:
    """The partition/queue (``queue_key`` names its setting in ``table``), and for Slurm the account
    and QOS where set, against what the scheduler lists (``sinfo``, ``sacctmgr``, ``qstat -Q``). A
    listing that cannot be had is a warning: the check was not possible, not a finding."""
    wanted = [(queue_key, "partition" if scheduler == "slurm" else "queue", queue)]
    if scheduler == "slurm":
        wanted += [("account", "account", account), ("qos", "qos", qos)]
    checks = []
    for key, field, value in wanted:
        if not value or PLACEHOLDER.search(value):
            continue  # the scheduler's default, or already a placeholder problem
        names, said = _slurm_names(field) if scheduler == "slurm" else _pbs_queues()
        if names is None:
            checks.append(Check(field, "warning", f"{table} {key} = {value!r} not checked: {said}"))
        elif value in names:
            checks.append(Check(field, "ok", f"{table} {key} = {value!r} exists"))
        else:
            known = ", ".join(sorted(names)) or "none"
            checks.append(Check(field, "problem", f"{table} {key} = {value!r} is not one the scheduler knows "
                                f"(it lists: {known}); sbatch/qsub would refuse every job"))
    return checks


def check_batch_scheduler(scheduler: str, run_dir: Path, settings: BatchBackendSection | RetrainJobSection) -> list[Check]:
    """The slurm/pbs backend: scheduler commands on PATH and answering, run directory writable,
    the compute-side Python (``settings``: the ``[backend.slurm]``/``[backend.pbs]`` section, or
    ``[model.retrain_job]``)."""
    import getpass

    from alem.backends.batch import SCHEDULER_COMMANDS, queue_manager

    checks = []
    missing = [command for command in SCHEDULER_COMMANDS[scheduler] if shutil.which(command) is None]
    if missing:
        checks.append(Check("scheduler", "problem", f"{', '.join(missing)} not on PATH: run alem on the cluster's "
                            f"login node (where {SCHEDULER_COMMANDS[scheduler][0]} works)"))
    else:
        listing = SCHEDULER_COMMANDS[scheduler][1]
        try:
            jobs = queue_manager(scheduler).get_jobs_list(user=getpass.getuser())
            checks.append(Check("scheduler", "ok", f"{listing} answers ({len(jobs)} jobs of {getpass.getuser()} queued or running)"))
        except Exception as exc:  # a failing queue command: say what it said
            checks.append(Check("scheduler", "problem", f"{listing} does not answer: {type(exc).__name__}: {exc}".strip()))
    placeholder = PLACEHOLDER.search(str(run_dir))
    problem = f"is the template's placeholder path ({placeholder.group()})" if placeholder else unwritable_because(run_dir)
    checks.append(Check("run directory", "problem" if problem else "ok",
                        f"{run_dir} {problem or 'writable'} (compute nodes must see it too)"))
    from alem.config import RetrainJobSection

    retraining = isinstance(settings, RetrainJobSection)
    table = "[model.retrain_job]" if retraining else f"[backend.{scheduler}]"
    checks.append(check_placeholders(table, settings))
    if not missing:
        queue_key, queue = ("partition", settings.partition) if retraining else ("queue", settings.queue)
        checks.extend(check_queue_settings(scheduler, table, queue_key, queue, settings.account, settings.qos))
    if settings.python and not Path(settings.python).is_file():
        checks.append(Check("python", "warning", f"{settings.python} does not exist here; fine only if the compute "
                            "nodes have it"))
    return checks


def run_checks(config: CampaignConfig, check_potentials: bool = True) -> list[Check]:
    """Every check that applies to the campaign's ``[backend] kind``, and with a screening stage
    the same checks of ``[screening.backend]`` (named ``screening …``) plus its fidelity."""
    checks = backend_checks(config, check_potentials)
    if config.screening.fidelity:
        checks.extend(screening_checks(config, check_potentials))
    if config.model.retrain_on == "backend":
        checks.extend(retrain_job_checks(config))
    return checks


def retrain_job_checks(config: CampaignConfig) -> list[Check]:
    """``[model] retrain_on = "backend"``: the retraining job's scheduler and run directory, checked
    like a batch backend's (named ``retraining job …``)."""
    from alem.campaign.retrain_job import retrain_run_root, retrain_scheduler

    scheduler = retrain_scheduler(config)
    if scheduler == "local":
        return [Check("retraining job", "ok", f"a process on this machine, run directories in {retrain_run_root(config)}")]
    checks = check_batch_scheduler(scheduler, retrain_run_root(config), config.model.retrain_job)
    return [replace(c, name=f"retraining job {c.name}") for c in checks]


def screening_checks(config: CampaignConfig, check_potentials: bool = True) -> list[Check]:
    """``[screening.backend]`` checked like the campaign's backend, and whether the barriers it
    produces are of ``[screening] fidelity``."""
    from alem.campaign.fidelity_labels import backend_fidelity
    from alem.campaign.screening import screening_campaign_config

    screening_config = screening_campaign_config(config)
    checks = [replace(c, name=f"screening {c.name}") for c in backend_checks(screening_config, check_potentials)]
    produced, wanted = backend_fidelity(screening_config), config.screening.fidelity
    if produced.lower() == wanted.lower():
        checks.append(Check("screening fidelity", "ok", f"{wanted} (from the screening backend's preset)"))
    else:
        checks.append(Check("screening fidelity", "problem", f"[screening] fidelity is {wanted} but [screening.backend] "
                            f"produces {produced} barriers; make them agree"))
    checks.append(check_screening_addon(config))
    return checks


def current_model_path(config: CampaignConfig) -> tuple[Path, str]:
    """The campaign's current model directory and how to name it: the store's current version, or
    the configured model before the first round registers one."""
    from alem.campaign.model_versions import configured_model_path

    if config.store_path.is_file():
        from alem.store import Store

        with Store.open(config.store_path, create=False) as store:
            current = store.current_model()
        if current is not None:
            return Path(current.path), f"model version {current.id}"
    return configured_model_path(config), "the configured model"


def check_screening_addon(config: CampaignConfig) -> Check:
    """Whether the current model has a fidelity-aware add-on of the screening potential: without
    one the screening barriers never reach a prediction (a warning: the campaign still runs)."""
    from alem.campaign.fidelity_labels import pairing_advice
    from alem.hops.fidelity import parse_fidelity
    from alem.model_dir import ModelCard

    wanted = parse_fidelity(config.screening.fidelity)
    try:
        path, which = current_model_path(config)
        card = ModelCard.load(path)
    except AlemError as exc:
        return Check("screening add-on", "warning", f"cannot read the current model's card: {exc}")
    addon = next((a for a in card.addons if a.cheap_fidelity.lower() == wanted.lower()), None)
    if addon is not None:
        return Check("screening add-on", "ok", f"{which} ({path}) reads {wanted} barriers "
                     f"(add-on fitted on {addon.n_paired_hops} pairs)")
    has = ", ".join(card.cheap_fidelities) or "none"
    return Check("screening add-on", "warning", f"{which} ({path}) has no add-on for {wanted} (add-ons: {has}): "
                 f"screening barriers are not fed to its predictions; {pairing_advice(wanted)}")


def backend_checks(config: CampaignConfig, check_potentials: bool = True) -> list[Check]:
    """Every check that applies to ``[backend] kind`` of ``config``."""
    campaign_dir = config.campaign_dir
    kind = config.backend.kind
    checks = [Check("backend", "ok", kind)]
    if kind == "replay":
        dataset = config.backend.replay.dataset
        path = config.resolve(dataset) if dataset else None
        checks.append(Check("replay dataset", "ok", str(path)) if path and path.is_file()
                      else Check("replay dataset", "problem", f"[backend.replay] dataset {dataset or '(empty)'} not found"))
        return checks
    section = {"local": config.backend.local, "slurm": config.backend.slurm, "pbs": config.backend.pbs,
               "fireworks": config.backend.fireworks, "jobflow-remote": config.backend.jobflow_remote}[kind]
    preset_check, preset = check_preset(section.preset, campaign_dir)
    checks.append(preset_check)
    if preset is not None:
        model_check = check_model_file(preset) if preset.engine == "mlip" else None
        if model_check is not None:
            checks.append(model_check)
        if preset.engine == "mlip" and check_potentials:
            checks.append(check_potential(preset))
        if preset.engine == "vasp":
            checks.extend(check_vasp(preset))
            if kind == "local":
                checks.append(Check("preset", "problem", "the local backend runs machine-learned potentials only; "
                                    "a VASP preset needs the slurm, pbs, fireworks or jobflow-remote backend"))
    if kind == "local":
        jobstore_dir = config.resolve(config.backend.local.jobstore_dir)
        problem = unwritable_because(jobstore_dir)
        checks.append(Check("job store", "problem" if problem else "ok", f"{jobstore_dir} {problem or 'writable'}"))
    elif kind in ("slurm", "pbs"):
        checks.extend(check_batch_scheduler(kind, config.resolve(section.run_dir), section))
    if kind not in ("slurm", "pbs") and placeholders_in(section):  # the batch check lists its own
        checks.append(check_placeholders(f"[backend.{kind.replace('-', '_')}]", section))
    elif kind == "fireworks":
        checks.append(check_queue_commands())
        checks.append(check_launchpad(config.resolve(config.backend.fireworks.launchpad_file)
                                      if config.backend.fireworks.launchpad_file else None))
        from jobflow import SETTINGS as JOBFLOW_SETTINGS

        checks.append(check_job_store(JOBFLOW_SETTINGS.JOB_STORE))
    elif kind == "jobflow-remote":
        checks.extend(check_jobflow_remote(config.backend.jobflow_remote.project, config.backend.jobflow_remote.worker))
    return checks


def require_backend_ready(config: CampaignConfig) -> list[Check]:
    """What ``alem loop`` and ``alem demo`` run before they touch the store: the checks of
    ``alem doctor`` (without loading the potential, which the NEBs do anyway). Raises
    :class:`BackendNotReadyError` naming every problem; returns the warnings."""
    checks = run_checks(config, check_potentials=False)
    problems = [check for check in checks if not check.ok]
    if problems:
        found = "; ".join(f"{check.name}: {' '.join(check.message.split())}" for check in problems)
        raise BackendNotReadyError(f"backend {config.backend.kind} is not ready ({found}); nothing was changed. "
                                   "`alem doctor` shows every check")
    return [check for check in checks if check.status == "warning"]
