"""The campaign configuration: ``alem.toml`` in the campaign directory.

A campaign is a directory holding ``alem.toml`` and (by default) ``state/alem.sqlite``. The file
is validated with pydantic; unknown keys and wrong types are rejected with one message naming
the file and the key. ``CampaignConfig.save`` writes every key with a comment saying what it does
(the comments are the field descriptions below), so a fresh ``alem init`` documents itself.

    config = CampaignConfig.load(find_campaign_dir())
    config.store_path          # absolute path of the SQLite store
    config.backend.kind        # "local" | "slurm" | "pbs" | "fireworks" | "jobflow-remote" | "replay"
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from alem.errors import AlemError
from alem.toml_writer import toml_value

CONFIG_FILENAME = "alem.toml"
#: Environment variable naming the campaign directory (overrides the search from the cwd).
CAMPAIGN_ENV = "ALEM_CAMPAIGN"

BackendKind = Literal["local", "slurm", "pbs", "fireworks", "jobflow-remote", "replay"]
#: Acquisition strategies (what each means: :mod:`alem.acquisition.strategies`).
Strategy = Literal["explore", "discover", "balanced", "materials"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)


class ConfigError(AlemError, ValueError):
    """An unusable campaign configuration; the message names the file and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CampaignSection(_Section):
    name: str = Field("my-campaign", description="campaign name, shown by `alem status`")
    working_ion: str = Field("Li", pattern=r"^[A-Z][a-z]?$", description="the migrating ion (element symbol)")
    store: str = Field("state/alem.sqlite", description="SQLite state store, relative to the campaign directory")
    log_file: str = Field("state/alem.log", description="log of `alem loop`, relative to the campaign directory")


class RetrainJobSection(_Section):
    """``[model.retrain_job]``: the batch job of a re-fine-tuning when ``[model] retrain_on = "backend"``."""

    scheduler: Literal["", "local", "slurm", "pbs"] = Field(
        "", description='"" = the campaign backend\'s (slurm/pbs: a batch job; local, replay: a process on this machine); '
        "or local | slurm | pbs",
    )
    run_dir: str = Field(
        "", description='where its run directory and the new model go, relative to the campaign directory (shared with the compute '
        'nodes for slurm/pbs); "" = <[backend.slurm|pbs] run_dir>/retrain, or state/retrain_runs for local'
    )
    partition: str = Field("", description='Slurm partition or PBS queue (e.g. the GPU partition); "" = the scheduler default')
    account: str = Field("", description='account/project charged; "" = none')
    qos: str = Field("", description='Slurm QOS; "" = none (not used by PBS)')
    gpus: int = Field(0, ge=0, description="GPUs the job asks for (Slurm --gres=gpu:N); training uses CUDA when the node has it")
    cpus: int = Field(4, ge=1, description="CPU threads of the training process")
    walltime_minutes: int = Field(120, ge=1, description="wall-time limit of one retraining job")
    pre_run: list[str] = Field(
        default_factory=list, description="shell lines run first on the compute node (module load ..., source venv/bin/activate)"
    )
    extra_directives: list[str] = Field(default_factory=list, description='verbatim scheduler lines, e.g. "#SBATCH --mem=32G"')
    python: str = Field("", description='Python with alem installed on the compute nodes; "" = the one running alem loop')


class ScoreJobSection(RetrainJobSection):
    """``[model.score_job]``: the batch job that scores a large pool when ``[model] score_on = "backend"``
    (same keys as ``[model.retrain_job]``)."""

    run_dir: str = Field(
        "", description='where its run directory (the staged hops and the predictions) goes, relative to the campaign directory '
        '(shared with the compute nodes for slurm/pbs); "" = <[backend.slurm|pbs] run_dir>/score, or state/score_runs for local'
    )
    walltime_minutes: int = Field(60, ge=1, description="wall-time limit of one scoring job")


class ModelSection(_Section):
    path: str = Field("", description='ensemble directory; "" = the shipped ensemble in models/ensemble')
    retrain_on: Literal["loop", "backend"] = Field(
        "loop", description='where a due re-fine-tuning runs: "loop" = inside alem loop (it waits); "backend" = a batch job '
        "([model.retrain_job]) while the loop goes on with the current model version"
    )
    retrain_after_results: int = Field(5, ge=1, description="re-fine-tune when at least this many new results arrived")
    n_members: int = Field(5, ge=1, description="ensemble members trained on re-fine-tuning")
    epochs: int = Field(0, ge=0, description="fine-tuning epochs; 0 = the trainer's default")
    train_fidelities: list[str] = Field(
        default_factory=lambda: ["dft"],
        description='fidelities of the campaign results the model is re-fine-tuned on: "dft" = every DFT '
        'functional, "dft:GGA+U" one, "mlip:CHGNet" an MLIP, "*" all; the default keeps MLIP barriers out of the DFT model',
    )

    @field_validator("train_fidelities")
    @classmethod
    def _valid_selectors(cls, selectors: list[str]) -> list[str]:
        from alem.hops.fidelity import FidelityError, validate_selector

        try:
            return [validate_selector(s) for s in selectors]
        except FidelityError as exc:
            raise ValueError(str(exc)) from exc

    retrain_job: RetrainJobSection = Field(default_factory=RetrainJobSection)
    score_on: Literal["loop", "backend"] = Field(
        "loop", description='where the loop scores unscored candidates: "loop" = inside alem loop; "backend" = a batch job '
        "([model.score_job]) when at least score_job_min_hops wait, while the loop goes on reconciling"
    )
    score_job_min_hops: int = Field(
        20000, ge=1, description='with score_on = "backend": fewer unscored candidates than this are scored inside alem loop'
    )
    score_chunk_hops: int = Field(
        2048, ge=1, description="hops predicted (and recorded) at a time, in the loop and in a scoring job: peak memory "
        "grows with this, not with the pool"
    )
    score_job: ScoreJobSection = Field(default_factory=ScoreJobSection)


class AcquisitionSection(_Section):
    strategy: Strategy = Field(
        "balanced",
        description="explore (learn the model) | discover (find low barriers) | balanced | materials (settle hosts' classes)",
    )
    batch_size: int = Field(5, ge=1, description="hops proposed per batch")
    max_per_host: int = Field(0, ge=0, description="most hops of one host in a batch; 0 = no cap")
    cost_weight: float = Field(0.0, ge=0.0, description="score penalty per 100 atoms of NEB supercell")
    min_approved_queue: int = Field(2, ge=0, description="propose a new batch when fewer approved hops are waiting")


class ApprovalSection(_Section):
    auto_approve: bool = Field(False, description="approve proposals without asking a person")
    max_running_jobs: int = Field(4, ge=1, description="most NEB jobs in flight at once")
    max_jobs_per_day: int = Field(20, ge=1, description="most NEB submissions in any 24 hours")
    max_core_hours_per_day: float = Field(
        0.0, ge=0.0, description="no new NEB starts once the jobs that ended in the last 24 h spent this many core-hours; 0 = no limit"
    )


class LocalBackendSection(_Section):
    preset: str = Field("mlip_chgnet", description="a preset name under workflows/")
    jobstore_dir: str = Field("state/jobstore", description="file-backed jobflow store, relative to the campaign directory")


class BatchBackendSection(_Section):
    """``[backend.slurm]`` / ``[backend.pbs]``: each NEB is one batch job; no database server."""

    preset: str = Field("vasp_gga", description="a preset name under workflows/")
    run_dir: str = Field(
        "state/batch_runs", description="run directories on a filesystem the compute nodes share, relative to the campaign directory"
    )
    queue: str = Field("", description='Slurm partition or PBS queue; "" = the scheduler default')
    account: str = Field("", description='account/project charged; "" = none')
    qos: str = Field("", description='Slurm QOS; "" = none (not used by PBS)')
    nodes: int = Field(1, ge=1, description="nodes per NEB (VASP: IMAGES must divide the MPI ranks)")
    tasks_per_node: int = Field(1, ge=1, description="MPI ranks per node")
    cpus_per_task: int = Field(1, ge=1, description="threads per MPI rank")
    walltime_minutes: int = Field(1440, ge=1, description="wall-time limit of one NEB job")
    endpoint_nodes: int = Field(
        0, ge=0, description="nodes of a separate, smaller batch job that relaxes both endpoints before the NEB job "
        "starts (scheduler dependency); 0 = relax them inside the NEB job, on its whole allocation"
    )
    endpoint_walltime_minutes: int = Field(0, ge=0, description="wall-time limit of that endpoint job; 0 = walltime_minutes")
    pre_run: list[str] = Field(
        default_factory=list, description="shell lines run first on the compute node (module load ..., source venv/bin/activate)"
    )
    extra_directives: list[str] = Field(default_factory=list, description='verbatim scheduler lines, e.g. "#SBATCH --constraint=cpu"')
    vasp_cmd: str = Field(
        "", description='VASP command for atomate2 (exported as ATOMATE2_VASP_CMD), e.g. "srun vasp_std"; "" = atomate2 settings'
    )
    python: str = Field("", description='Python with alem installed on the compute nodes; "" = the one running alem loop')


class FireworksBackendSection(_Section):
    preset: str = Field("vasp_gga", description="a preset name under workflows/")
    launchpad_file: str = Field("", description="my_launchpad.yaml (see hpc_configs/fireworks)")
    fworker_name: str = Field("", description="FireWorker name that should pick up the NEBs")


class JobflowRemoteBackendSection(_Section):
    preset: str = Field("vasp_gga", description="a preset name under workflows/")
    project: str = Field("", description="jobflow-remote project name")
    worker: str = Field("", description="jobflow-remote worker that runs the NEBs")


class ReplayBackendSection(_Section):
    dataset: str = Field("", description="Em-dataset-layout file whose barriers answer the 'jobs'")
    delay_s: float = Field(0.0, ge=0.0, description="seconds a replayed job stays running")
    barrier: Literal["dataset", "mace"] = Field(
        "dataset",
        description='dataset: answer with the dataset\'s barriers (fidelity dft:<XC>, or the row\'s "fidelity"); '
        "mace: answer with the shipped MACE-MP NEB barriers of the same hops (fidelity mlip:MACE-MP)",
    )


class BackendSection(_Section):
    kind: BackendKind = Field("local", description="local | slurm | pbs | fireworks | jobflow-remote | replay")
    max_attempts: int = Field(3, ge=1, description="submissions of one hop before it is marked failed")
    local: LocalBackendSection = Field(default_factory=LocalBackendSection)
    slurm: BatchBackendSection = Field(default_factory=BatchBackendSection)
    pbs: BatchBackendSection = Field(default_factory=BatchBackendSection)
    fireworks: FireworksBackendSection = Field(default_factory=FireworksBackendSection)
    jobflow_remote: JobflowRemoteBackendSection = Field(default_factory=JobflowRemoteBackendSection)
    replay: ReplayBackendSection = Field(default_factory=ReplayBackendSection)


class LoopSection(_Section):
    tick_seconds: int = Field(60, ge=1, description="seconds between two rounds of `alem loop`")
    good_barrier_ev: float = Field(
        0.65,
        gt=0.0,
        description="a hop counts as good below this barrier (eV): discover aims below it, the promise and review page count by it",
    )
    good_barrier_ev_by_ion: dict[str, float] = Field(
        default_factory=dict,
        description="per working ion, a threshold that replaces good_barrier_ev for its hops, e.g. {Mg = 0.9}",
    )
    stop_when_expected_good_below: float = Field(
        0.0, ge=0.0, description="stop `alem loop` when the expected number of unlabelled good hops falls below this; 0 = off"
    )
    stop_after_rounds_below_floor: int = Field(
        0,
        ge=0,
        description="stop after this many proposal rounds in a row whose best acquisition value is below acquisition_floor; 0 = off",
    )
    acquisition_floor: float = Field(0.0, ge=0.0, description="acquisition value under which a round counts as unpromising")
    stop_when_hosts_classified: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="stop `alem loop` when every host's P(good) is at least this or at most 1 minus it (e.g. 0.9); 0 = off",
    )

    @field_validator("stop_when_hosts_classified")
    @classmethod
    def _a_certainty_above_one_half(cls, value: float) -> float:
        if value and value <= 0.5:
            raise ValueError(f"a classification certainty is above 0.5 (e.g. 0.9), not {value}")
        return value

    @field_validator("good_barrier_ev_by_ion")
    @classmethod
    def _ions_and_positive_barriers(cls, value: dict[str, float]) -> dict[str, float]:
        for ion, barrier_ev in value.items():
            if not re.fullmatch(r"[A-Z][a-z]?", ion):
                raise ValueError(f"{ion!r} is not an element symbol")
            if not barrier_ev > 0:
                raise ValueError(f"the threshold of {ion} must be a positive barrier in eV, not {barrier_ev}")
        return value

    def good_barrier_ev_of(self, working_ion: str) -> float:
        """The good-barrier threshold (eV) of hops of ``working_ion``."""
        return self.good_barrier_ev_by_ion.get(working_ion, self.good_barrier_ev)


class ScreeningSection(_Section):
    """``[screening]``: cheap NEBs (an MLIP) on candidates, run without approval, before DFT."""

    fidelity: str = Field("", description='fidelity of the screening NEBs, e.g. "mlip:CHGNet"; "" = no screening stage')
    max_running_jobs: int = Field(4, ge=1, description="most screening NEBs in flight at once")
    max_jobs_per_day: int = Field(50, ge=1, description="most screening submissions in any 24 hours")
    order: Literal["uncertain", "all"] = Field(
        "uncertain", description="uncertain: most uncertain candidates (largest σ) first; all: in pool order"
    )
    backend: BackendSection = Field(
        default_factory=BackendSection, description="the backend that runs them (typically local with an MLIP preset)"
    )

    @field_validator("fidelity")
    @classmethod
    def _mlip_fidelity(cls, fidelity: str) -> str:
        from alem.hops.fidelity import FidelityError, is_mlip, parse_fidelity

        if not fidelity:
            return ""
        try:
            canonical = parse_fidelity(fidelity)
        except FidelityError as exc:
            raise ValueError(str(exc)) from exc
        if not is_mlip(canonical):
            raise ValueError(f"{fidelity!r} is not a cheap fidelity: screening runs an MLIP (mlip:<potential>)")
        return canonical


class FidelityCostSection(_Section):
    core_hours_per_100_atoms: float = Field(description="core-hours of one 5-image NEB of a 100-atom supercell (scaled by images / 5)")
    exponent: float = Field(description="cost grows as (atoms / 100) ** exponent")


class CostsSection(_Section):
    """``[costs]``: core-hours of one NEB per fidelity kind, as a function of supercell size and
    images (× images / 5: the pairs describe a 5-image NEB); the review card and the acquisition
    both read it (:func:`alem.campaign.neb_costs.neb_cost`)."""

    aware: bool = Field(False, description="divide the acquisition value by the NEB's cost (BoTorch cost-aware utility)")
    dft: FidelityCostSection = Field(
        default_factory=lambda: FidelityCostSection(core_hours_per_100_atoms=2000.0, exponent=2.0),
        description="a DFT CI-NEB (5 images, GGA; rough, override for your machine)",
    )
    mlip: FidelityCostSection = Field(
        default_factory=lambda: FidelityCostSection(core_hours_per_100_atoms=0.05, exponent=1.0),
        description="an MLIP NEB on CPU",
    )


class CampaignConfig(_Section):
    """The whole ``alem.toml``. ``campaign_dir`` is where it was loaded from (not a TOML key)."""

    campaign: CampaignSection = Field(default_factory=CampaignSection)
    model: ModelSection = Field(default_factory=ModelSection)
    acquisition: AcquisitionSection = Field(default_factory=AcquisitionSection)
    approval: ApprovalSection = Field(default_factory=ApprovalSection)
    backend: BackendSection = Field(default_factory=BackendSection)
    loop: LoopSection = Field(default_factory=LoopSection)
    screening: ScreeningSection = Field(default_factory=ScreeningSection)
    costs: CostsSection = Field(default_factory=CostsSection)

    _campaign_dir: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _retraining_job_has_a_scheduler(self) -> CampaignConfig:
        if self.model.retrain_on == "backend" and not self.model.retrain_job.scheduler and \
                self.backend.kind in ("fireworks", "jobflow-remote"):
            raise ValueError(f'[model] retrain_on = "backend" with [backend] kind = {self.backend.kind!r}: set '
                             '[model.retrain_job] scheduler to "slurm", "pbs" or "local" (where the retraining job runs)')
        if self.model.score_on == "backend" and not self.model.score_job.scheduler and \
                self.backend.kind in ("fireworks", "jobflow-remote"):
            raise ValueError(f'[model] score_on = "backend" with [backend] kind = {self.backend.kind!r}: set '
                             '[model.score_job] scheduler to "slurm", "pbs" or "local" (where the scoring job runs)')
        return self

    @property
    def campaign_dir(self) -> Path:
        return self._campaign_dir if self._campaign_dir is not None else Path.cwd()

    @campaign_dir.setter
    def campaign_dir(self, value: str | Path) -> None:
        self._campaign_dir = Path(value).resolve()

    def resolve(self, relative: str) -> Path:
        """A path from the config, made absolute against the campaign directory."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.campaign_dir / path

    @property
    def store_path(self) -> Path:
        return self.resolve(self.campaign.store)

    @property
    def state_dir(self) -> Path:
        """Directory of the store; backends keep their own small state files here."""
        return self.store_path.parent

    @property
    def config_path(self) -> Path:
        return self.campaign_dir / CONFIG_FILENAME

    @classmethod
    def load(cls, campaign_dir: str | Path) -> CampaignConfig:
        """Read and validate ``<campaign_dir>/alem.toml``; :class:`ConfigError` names file and key."""
        campaign_dir = Path(campaign_dir)
        path = campaign_dir / CONFIG_FILENAME
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: file not found (create a campaign with `alem init`)") from exc
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read file ({exc})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
        config = cls.from_dict(data, source=path)
        config.campaign_dir = campaign_dir
        return config

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path = CONFIG_FILENAME) -> CampaignConfig:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_describe_validation_error(exc, source)) from exc

    def save(self, campaign_dir: str | Path | None = None) -> Path:
        """Write ``alem.toml`` (every key, with its description as a comment); returns its path."""
        if campaign_dir is not None:
            self.campaign_dir = campaign_dir
        path = self.config_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(to_toml(self))
        tmp.replace(path)
        return path


def _describe_validation_error(exc: ValidationError, source: str | Path) -> str:
    """First pydantic error as ``FILE: [section] key: problem`` (one message, names the key)."""
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    if error["type"] == "extra_forbidden":
        section = ".".join(loc[:-1])
        where = f"[{section}]" if section else "the top level"
        return f"{source}: unknown key {loc[-1]!r} in {where}"
    if not loc:  # a rule across sections (a model validator): its message names the keys
        return f"{source}: {error['msg'].removeprefix('Value error, ')}"
    key = loc[-1]
    section = ".".join(loc[:-1])
    prefix = f"[{section}] " if section else ""
    value = error.get("input")
    shown = f" (got {value!r})" if not isinstance(value, dict) else ""
    return f"{source}: {prefix}{key}: {error['msg']}{shown}"


def _section_lines(section: BaseModel, name: str) -> list[str]:
    lines = [f"[{name}]"]
    subsections: list[tuple[str, BaseModel]] = []
    for key, field in type(section).model_fields.items():
        value = getattr(section, key)
        if isinstance(value, BaseModel):
            subsections.append((f"{name}.{key}", value))
            continue
        comment = f"  # {field.description}" if field.description else ""
        lines.append(f"{key} = {toml_value(value)}{comment}")
    for sub_name, sub in subsections:
        lines.append("")
        lines.extend(_section_lines(sub, sub_name))
    return lines


def to_toml(config: CampaignConfig) -> str:
    lines = [
        "# alem campaign configuration. Paths are relative to this directory.",
        "# Every key is optional; the values written here are the defaults unless you changed them.",
        "",
    ]
    for key in type(config).model_fields:
        lines.extend(_section_lines(getattr(config, key), key))
        lines.append("")
    return "\n".join(lines)


def find_campaign_dir(start: str | Path | None = None) -> Path:
    """The campaign directory: ``$ALEM_CAMPAIGN`` if set, else the nearest directory at or above
    ``start`` (default: cwd) that holds ``alem.toml``."""
    env = os.environ.get(CAMPAIGN_ENV)
    if env:
        path = Path(env).expanduser().resolve()
        if not (path / CONFIG_FILENAME).is_file():
            raise ConfigError(f"{CAMPAIGN_ENV}={env}: no {CONFIG_FILENAME} there")
        return path
    here = Path(start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / CONFIG_FILENAME).is_file():
            return directory
    raise ConfigError(f"no {CONFIG_FILENAME} in {here} or any parent directory; create a campaign with `alem init`")
