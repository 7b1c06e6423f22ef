"""The CLI's one error path: an error alem raises on purpose becomes one ``error:`` line and the
exit code of the documented table (``alem --help``), never a traceback."""

from __future__ import annotations

import sqlite3
import time

import pytest
from typer.testing import CliRunner

from alem.cli import app
from alem.cli.common import ExitCode, exit_code_of
from alem.errors import AlemError

runner = CliRunner()


def _flat(text: str) -> str:
    return " ".join(text.split())


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _every_upper_layer_error():
    from alem.backends.base import BackendUnavailableError
    from alem.campaign import CampaignExistsError, CancelError
    from alem.campaign.hop_ids import HopIdError
    from alem.campaign.model_versions import ModelLoadError
    from alem.config import ConfigError
    from alem.demo import DemoOptionError, NotADemoError
    from alem.doctor import BackendNotReadyError
    from alem.loop.lock import LoopLockedError
    from alem.loop.runner import LoopFailedError
    from alem.review import ReviewError
    from alem.store import IllegalTransition, SchemaError, StoreError, StoreUnavailableError, UnknownHopError

    return {
        CampaignExistsError: ExitCode.FAILED, CancelError: ExitCode.FAILED, HopIdError: ExitCode.FAILED,
        ModelLoadError: ExitCode.FAILED, ConfigError: ExitCode.USAGE, NotADemoError: ExitCode.FAILED,
        LoopLockedError: ExitCode.LOCKED, ReviewError: ExitCode.FAILED, IllegalTransition: ExitCode.FAILED,
        SchemaError: ExitCode.USAGE, StoreError: ExitCode.FAILED, StoreUnavailableError: ExitCode.USAGE,
        UnknownHopError: ExitCode.FAILED, BackendUnavailableError: ExitCode.USAGE, BackendNotReadyError: ExitCode.USAGE,
        DemoOptionError: ExitCode.FAILED, LoopFailedError: ExitCode.FAILED,
    }


def test_every_error_has_the_one_root_and_a_code_in_the_table():
    for error_class, code in _every_upper_layer_error().items():
        assert issubclass(error_class, AlemError), error_class
        assert exit_code_of(error_class("x")) is code, error_class


def test_the_help_epilogue_documents_every_exit_code():
    text = _flat(_run("--help").output)
    assert "Exit codes:" in text
    for code in ExitCode:
        assert f" {code.value} " in text.split("Exit codes:")[1] + " "


@pytest.fixture
def campaign(tmp_path):
    from alem.campaign import init_campaign

    return init_campaign(tmp_path / "c", backend="replay")


def test_a_missing_store_and_a_newer_store_cannot_start(campaign):
    with sqlite3.connect(campaign.store_path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, 'from the future', ?)", (time.time(),))
    newer = _run("status", "-C", campaign.campaign_dir)
    assert newer.exit_code == ExitCode.USAGE
    assert "schema version 99 is newer than this alem understands" in _flat(newer.output)
    assert "Traceback" not in newer.output
    campaign.store_path.unlink()
    for command in ("status", "proposals", "report"):
        missing = _run(command, "-C", campaign.campaign_dir)
        assert missing.exit_code == ExitCode.USAGE, (command, missing.output)
        assert _flat(missing.output).startswith(f"error: {campaign.store_path}: no store here")


def test_a_refusal_of_the_store_is_one_message_and_exit_1(campaign, tiny_hop):
    from alem.store import Store

    with Store.open(campaign.store_path) as store:
        store.add_hops([tiny_hop("h1")])
    assert _run("reject", "h1", "--reason", "no", "-C", campaign.campaign_dir).exit_code == 0
    refused = _run("approve", "h1", "-C", campaign.campaign_dir)
    assert refused.exit_code == ExitCode.FAILED
    assert _flat(refused.output) == (
        "error: cannot approve hop h1: it was rejected (use reopen to consider it again) "
        "(state rejected; approve needs candidate, failed, proposed)"
    )


def test_doctor_takes_minus_c_as_well_as_minus_capital_c(tmp_path):
    for option in ("-C", "-c", "--campaign"):
        result = _run("doctor", option, tmp_path / "none")
        assert result.exit_code == ExitCode.USAGE, (option, result.output)
        assert _flat(result.output) == f"error: {tmp_path / 'none' / 'alem.toml'}: file not found (create a campaign with `alem init`)"
    assert " -c " not in _run("doctor", "--help").output  # the old spelling works but is not shown
