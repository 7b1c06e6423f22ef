"""``alem demo``: a whole campaign on a laptop in minutes.

Creates a campaign directory on the embedded defaults (SQLite store, local backend, the shipped
ensemble), enumerates the hops of the shipped demo hosts (layered LiCoO2, antifluorite Li2O and Li2S, spinel
LiMn2O4, rocksalt LiF: one distinct hop each within 4 Å, NEB cells of at most 32 atoms), then runs ``alem loop`` with auto-approval until
every candidate has a CHGNet NEB barrier (or the time budget runs out), and ends with a summary
table and the HTML report.

Those barriers are CHGNet NEBs: fidelity ``mlip:CHGNet``, a screening fidelity, not DFT. The DFT
model is not retrained on them unless asked: ``--retrain`` sets ``[model] train_fidelities =
["dft", "mlip:CHGNet"]`` in the demo campaign (and says so), so the model then learns MLIP labels.

The demo's NEB preset (written into the campaign as ``workflows/mlip_chgnet_demo.toml``) is the
shipped ``mlip_chgnet`` preset with looser settings so each NEB takes well under a minute on two
cores: the candidates' own small cells are used as they are (no 8 Å supercell; the ion's
periodic images stay >= 4.5 Å apart), 5 images, fmax 0.05 eV/Å, at most 200 steps. Good enough to show the machinery; not converged physics.

``alem demo --backend slurm`` runs the same campaign through the ``slurm`` backend: each NEB is
a batch job submitted with ``sbatch`` (one task, one CPU), run directories under
``state/batch_runs``. It needs a working Slurm on this machine (``sbatch``/``squeue`` answer).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from alem import toml_writer
from alem.candidates import EnumerationSettings
from alem.errors import AlemError

if TYPE_CHECKING:
    from alem.config import CampaignConfig
    from alem.store import Store

DEMO_HOSTS = ("LiCoO2_layered", "Li2O_antifluorite", "LiMn2O4_spinel", "LiF_rocksalt", "Li2S_antifluorite")
DEMO_PRESET = "mlip_chgnet_demo"
#: Small cells: the ion's periodic images >= 4.5 Å apart, at most 32 atoms per NEB cell.
DEMO_ENUMERATION = EnumerationSettings(max_hop_length_a=4.0, min_image_distance_a=4.5, max_atoms=32)
DEMO_PRESET_OVERRIDES = {
    "name": DEMO_PRESET,
    "description": "demo: CHGNet CI-NEB on the candidates' small cells (ion images >= 4.5 Å apart)",
    "neb": {"n_images": 5, "fmax_ev_a": 0.05, "max_steps": 200, "endpoint_fmax_ev_a": 0.03, "endpoint_max_steps": 150},
    "supercell": {"min_image_distance_a": 0.0, "max_atoms": 64},
}


DEMO_NAME = "alem-demo"
DEMO_FIDELITY = "mlip:CHGNet"
#: What `alem demo --retrain` trains on: the DFT labels and, because asked, the demo's CHGNet barriers.
DEMO_RETRAIN_FIDELITIES = ["dft", DEMO_FIDELITY]
DemoBackend = Literal["local", "slurm"]


class NotADemoError(AlemError, ValueError):
    """The directory holds a campaign that the demo did not create; the demo leaves it alone."""


class DemoOptionError(AlemError, ValueError):
    """An option that the demo campaign already in the directory cannot honour (it was made with
    another backend or model): refused rather than silently ignored."""


@dataclass
class DemoResult:
    campaign_dir: Path
    report_path: Path | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    ticks: int = 0
    resumed: bool = False


def demo_host_files(names: tuple[str, ...] = DEMO_HOSTS) -> list[Path]:
    from alem.candidates.prototypes import shipped_host_files

    files = {p.stem: p for p in shipped_host_files()}
    unknown = [name for name in names if name not in files]
    if unknown:
        raise ValueError(f"no shipped host {', '.join(unknown)}; choose from {', '.join(sorted(files))}")
    return [files[name] for name in names]


def write_demo_preset(campaign_dir: Path) -> Path:
    """The shipped CHGNet preset with the demo's overrides, as a campaign-local preset."""
    from alem.neb.presets import find_preset_file, load_preset

    data = tomllib.loads(find_preset_file("mlip_chgnet").read_text())
    for key, value in DEMO_PRESET_OVERRIDES.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    path = campaign_dir / "workflows" / f"{DEMO_PRESET}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Written by `alem demo`: the shipped mlip_chgnet preset, loosened so the demo takes minutes.\n"
    path.write_text(header + toml_writer.dumps(data))
    load_preset(DEMO_PRESET, campaign_dir)  # validates what was written
    return path


def create_demo_campaign(directory: Path, model_path: str = "", backend: DemoBackend = "local") -> CampaignConfig:
    """The demo campaign: defaults + auto-approval within 2 parallel jobs + the demo preset."""
    from alem.campaign import init_campaign

    config = init_campaign(directory, backend=backend, name=DEMO_NAME)
    write_demo_preset(config.campaign_dir)
    config.backend.local.preset = DEMO_PRESET
    config.backend.slurm.preset = DEMO_PRESET
    config.backend.slurm.walltime_minutes = 60
    config.model.path = model_path
    config.approval.auto_approve = True
    config.approval.max_running_jobs = 2  # two cores
    config.acquisition.batch_size = 2
    config.acquisition.min_approved_queue = 1
    config.acquisition.strategy = "balanced"
    config.loop.tick_seconds = 5
    config.save()
    return config


def existing_demo_campaign(directory: Path) -> CampaignConfig | None:
    """The demo campaign already in ``directory`` (None if there is no campaign there)."""
    from alem.config import CONFIG_FILENAME, CampaignConfig

    if not (Path(directory) / CONFIG_FILENAME).is_file():
        return None
    config = CampaignConfig.load(directory)
    if config.campaign.name != DEMO_NAME or config.backend.local.preset != DEMO_PRESET:
        raise NotADemoError(
            f"{Path(directory).resolve()} holds the campaign {config.campaign.name!r}, not an alem demo; "
            "the demo leaves it alone (choose another directory)"
        )
    return config


def remove_demo_campaign(directory: Path) -> None:
    """Delete a demo campaign directory (only one the demo created, see existing_demo_campaign)."""
    import shutil

    if existing_demo_campaign(directory) is not None:
        shutil.rmtree(directory)


def summary_rows(store: Store) -> list[dict[str, Any]]:
    """One row per hop: prediction before the NEB (from its proposal), the NEB barrier, state."""
    from alem.campaign.approve import latest_proposals
    from alem.report import fidelity_of, plausibility_note

    latest_result = {r.hop_id: r for r in store.results()}
    proposal_of = latest_proposals(store)
    rows = []
    for record in store.hops():
        result = latest_result.get(record.hop_id)
        proposal = proposal_of.get(record.hop_id)
        rows.append({
            "hop_id": record.hop_id,
            "host": record.group,
            "atoms": record.n_sites,
            "hop_length_a": record.hop_length_a,
            "predicted_ev": proposal.mean_ev if proposal else None,
            "sigma_ev": proposal.std_ev if proposal else None,
            "neb_barrier_ev": result.barrier_ev if result and result.usable else None,
            "state": record.state.value,
            "note": ((result.failure_reason or "") if not result.usable else plausibility_note(fidelity_of(result), result.barrier_ev))
            if result else "",
        })
    return rows


def say_fidelity(config, retrain: bool, say: Callable[[str], None]) -> None:
    """State plainly what the demo's barriers are and whether the model learns from them."""
    say(f"the demo's barriers are CHGNet NEBs (fidelity {DEMO_FIDELITY}: a cheap screening fidelity, not DFT)")
    if retrain:
        config.model.train_fidelities = list(DEMO_RETRAIN_FIDELITIES)
        config.save()
        say(f"--retrain: the model is re-fine-tuned on them as asked ([model] train_fidelities = "
            f"{DEMO_RETRAIN_FIDELITIES}): it then learns MLIP labels, not DFT ones")
    else:
        say("the model is not retrained on them (a campaign's model learns from DFT only unless "
            "[model] train_fidelities says otherwise; `alem demo --retrain` asks for it)")


def refuse_ignored_options(config: CampaignConfig, model_path: str | None, backend: DemoBackend | None) -> None:
    """A demo being continued keeps its backend and model: asking for others is refused, saying how
    to get them (never silently ignored)."""
    asked = []
    if backend is not None and backend != config.backend.kind:
        asked.append(f"--backend {backend} (it runs on {config.backend.kind})")
    if model_path and Path(model_path).resolve() != (config.resolve(config.model.path) if config.model.path else None):
        asked.append(f"--model {model_path} (it uses {config.model.path or 'the shipped model'})")
    if asked:
        raise DemoOptionError(
            f"{config.campaign_dir} holds a demo campaign already, which cannot honour {' and '.join(asked)}; "
            f"`alem demo {config.campaign_dir} --fresh ...` starts it over with them, or name another directory"
        )


def _create_checked_demo(directory: Path, model_path: str, backend: DemoBackend) -> CampaignConfig:
    """The new demo campaign, once the checks of ``alem doctor`` pass for it; when they do not,
    what was created is removed again (the directory is as it was) and the error raised."""
    import shutil

    from alem.doctor import BackendNotReadyError, require_backend_ready

    directory = Path(directory)
    existed = directory.exists()
    config = create_demo_campaign(directory, model_path, backend)
    try:
        require_backend_ready(config)
    except BackendNotReadyError:
        if existed:  # a directory with no campaign in it: take back only what the demo wrote
            for name in (config.config_path.name, config.state_dir.name, "workflows"):
                target = directory / name
                shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        else:
            shutil.rmtree(directory)
        raise
    return config


def run_demo(
    directory: Path,
    model_path: str | None = None,
    max_minutes: float = 20.0,
    retrain: bool = False,
    hosts: tuple[str, ...] = DEMO_HOSTS,
    say: Callable[[str], None] = print,
    backend: DemoBackend | None = None,
    show_jobs: Callable[[list], None] | None = None,
) -> DemoResult:
    """Create the demo campaign in ``directory`` and run it (see the module docstring). If the
    directory already holds the demo campaign, carry on with it: hosts already added are known and
    not added twice, finished NEBs are kept, and the loop picks up whatever is left. ``backend``
    and ``model_path`` (None: local and the shipped model) are refused when the demo being
    continued was made with others. Before anything is enumerated or proposed, the backend must
    pass the checks of ``alem doctor`` (:class:`~alem.doctor.BackendNotReadyError` otherwise).
    ``show_jobs``: what the loop hands its live jobs to while it waits on them."""
    from alem.backends import make_backend
    from alem.candidates.pool import add_candidates
    from alem.doctor import require_backend_ready
    from alem.loop.runner import CampaignLoop, LoopOptions
    from alem.report import write_report
    from alem.store import Store

    host_files = demo_host_files(hosts)
    config = existing_demo_campaign(directory)
    resumed = config is not None
    if resumed:
        refuse_ignored_options(config, model_path, backend)
        require_backend_ready(config)
        with Store.open(config.store_path) as store:
            counts = store.hop_counts()
            earlier_hosts = sorted({record.group for record in store.hops() if record.group} - set(hosts))
        say(f"continuing the demo campaign in {config.campaign_dir} ({counts['done']} hops done, "
            f"{counts['candidate'] + counts['proposed'] + counts['approved'] + counts['submitted']} to go) "
            f"on backend {config.backend.kind}; `alem demo --fresh` starts over")
        if earlier_hosts:  # --host adds hosts to a continued demo; it does not take earlier ones out
            say(f"the hops of {', '.join(earlier_hosts)} (added by an earlier run) stay in the campaign; "
                "`alem demo --fresh --host ...` starts over with only the hosts named")
    else:
        backend = backend or "local"
        config = _create_checked_demo(directory, model_path or "", backend)
        where = "local CHGNet backend" if backend == "local" else "CHGNet NEBs as Slurm batch jobs (sbatch)"
        say(f"campaign created in {config.campaign_dir} (SQLite store, {where}, shipped model)")
    with Store.open(config.store_path) as store:
        report = add_candidates(store, host_files, config.campaign.working_ion, DEMO_ENUMERATION)
    say_fidelity(config, retrain, say)
    for host in report.hosts:
        sizes = ", ".join(map(str, host.hop_sites))
        say(f"{host.label}: {len(host.hop_sites)} distinct Li hops within 4 Å (NEB cells of {sizes} atoms), "
            f"{len(host.hop_sites) - len(host.known)} new")
    options = LoopOptions(
        tick_seconds=config.loop.tick_seconds,
        until_idle=True,
        retrain=retrain,
        max_seconds=max_minutes * 60,
        fail_fast=True,
    )
    loop = CampaignLoop(config, make_backend(config), options, say=say, show_jobs=show_jobs)
    ticks = loop.run()
    report_path = write_report(config)
    with Store.open(config.store_path) as store:
        rows = summary_rows(store)
    return DemoResult(config.campaign_dir, report_path, rows, len(ticks), resumed)
