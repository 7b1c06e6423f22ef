"""NEB submission backends. :func:`make_backend` builds the one a campaign's config names."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alem import shipped_dir
from alem.backends.base import Backend, QueueState
from alem.errors import AlemError

if TYPE_CHECKING:
    from alem.config import CampaignConfig

__all__ = ["Backend", "BackendConfigError", "QueueState", "make_backend"]


class BackendConfigError(AlemError, ValueError):
    """A ``[backend]`` section that names no usable backend (the message names the config key)."""


def make_backend(config: CampaignConfig, campaign_dir: str | Path | None = None) -> Backend:
    """The backend of ``[backend] kind`` with its section's settings.

    Raises ``alem.neb.presets.PresetError`` for a missing or invalid preset and
    :class:`BackendConfigError` (naming the config key) for an unusable backend section; ``alem
    doctor`` explains more.
    """
    from alem.neb.presets import load_preset

    campaign_dir = Path(campaign_dir) if campaign_dir is not None else config.campaign_dir
    if campaign_dir is not None and config.campaign_dir != Path(campaign_dir).resolve():
        config.campaign_dir = campaign_dir
    kind = config.backend.kind
    if kind == "local":
        from alem.backends.local import LocalBackend

        section = config.backend.local
        return LocalBackend(config.resolve(section.jobstore_dir), load_preset(section.preset, campaign_dir))
    if kind in ("slurm", "pbs"):
        from alem.backends.batch import BatchBackend

        section = getattr(config.backend, kind)
        return BatchBackend(kind, config.resolve(section.run_dir), load_preset(section.preset, campaign_dir), section)
    if kind == "fireworks":
        from alem.backends.fireworks_backend import FireWorksBackend

        section = config.backend.fireworks
        if not section.launchpad_file:
            raise BackendConfigError(f"{config.config_path}: [backend.fireworks] launchpad_file is empty; "
                                     f"name your my_launchpad.yaml (template in {shipped_dir('hpc_configs') / 'fireworks'})")
        return FireWorksBackend(
            launchpad_file=config.resolve(section.launchpad_file),
            preset=load_preset(section.preset, campaign_dir),
            fworker_name=section.fworker_name or None,
        )
    if kind == "jobflow-remote":
        from alem.backends.jobflow_remote_backend import JobflowRemoteBackend

        section = config.backend.jobflow_remote
        return JobflowRemoteBackend(
            project=section.project or None,
            worker=section.worker or None,
            preset=load_preset(section.preset, campaign_dir),
        )
    if kind == "replay":
        from alem.backends.replay import ReplayBackend

        return ReplayBackend.from_config(config)
    raise BackendConfigError(f"unknown backend kind {kind!r}")
