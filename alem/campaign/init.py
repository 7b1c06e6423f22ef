"""Create a campaign directory: ``alem.toml`` with documented defaults and an empty store."""

from __future__ import annotations

from pathlib import Path

from alem.config import CONFIG_FILENAME, BackendKind, CampaignConfig
from alem.errors import AlemError
from alem.store import Store


class CampaignExistsError(AlemError, FileExistsError):
    """The directory already holds a campaign; nothing was changed."""


def init_campaign(
    directory: str | Path,
    working_ion: str = "Li",
    backend: BackendKind = "local",
    name: str | None = None,
    replay_dataset: str | None = None,
) -> CampaignConfig:
    """Write ``<directory>/alem.toml`` and create the store; refuses to overwrite a campaign."""
    directory = Path(directory).resolve()
    if (directory / CONFIG_FILENAME).exists():
        raise CampaignExistsError(f"{directory / CONFIG_FILENAME}: a campaign already exists here; nothing changed")
    data = {
        "campaign": {"name": name or directory.name, "working_ion": working_ion},
        # resolved now: relative paths in alem.toml are relative to the campaign, not to the cwd
        "backend": {"kind": backend, "replay": {"dataset": str(Path(replay_dataset).resolve()) if replay_dataset else ""}},
    }
    config = CampaignConfig.from_dict(data, source="alem init")  # ConfigError names the bad option
    config.campaign_dir = directory
    directory.mkdir(parents=True, exist_ok=True)
    with Store.open(config.store_path) as store:
        store.log_event(
            "campaign_created",
            f"campaign {config.campaign.name} created ({working_ion}, backend {backend})",
            payload={"directory": str(directory)},
        )
    # The config last: a directory with alem.toml is a finished campaign.
    config.save()
    return config
