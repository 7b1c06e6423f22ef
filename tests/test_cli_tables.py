"""Terminal tables at 80 columns keep every hop id and formula whole; --wide shows every column;
--json is unchanged; approve/reject take a unique id prefix and refuse an ambiguous one."""

from __future__ import annotations

import json

import pytest
from _proposal_campaign import make_campaign, propose_by_hand
from rich.console import Console
from typer.testing import CliRunner

from alem.cli import app
from alem.cli.tables import Column, fit_table
from alem.store import HopState, Store

runner = CliRunner()


def invoke(config, *args, columns: int = 80):
    return runner.invoke(app, [*args, "--campaign", str(config.campaign_dir)], env={"COLUMNS": str(columns)})


@pytest.fixture
def proposed(tmp_path):
    config, hop_ids = make_campaign(tmp_path, n_hops=6)
    propose_by_hand(config, hop_ids[:5])
    with Store.open(config.store_path) as store:
        store.approve(hop_ids[:2], who="alice")
        from alem.backends.replay import ReplayBackend
        from alem.campaign import submit_approved

        config.backend.replay.delay_s = 3600.0  # jobs stay in flight
        submit_approved(store, ReplayBackend.from_config(config), config)
    config.save()
    return config, hop_ids


def _lines_fit(text: str, width: int = 80) -> bool:
    return all(len(line) <= width for line in text.splitlines())


def test_fit_table_keeps_whole_columns_and_drops_the_least_important():
    long_id = "1b7a4c0e9d2f3a51-p12"
    columns = [Column("hop", whole=True), Column("formula", whole=True), Column("notes", keep=0), Column("σ eV", keep=5)]
    rows = [[long_id, "Li4TiCu3(PO4)4", "x " * 40, "1.497"]]
    console = Console(width=50, record=True, color_system=None)
    fitted = fit_table(console, columns, rows)
    console.print(fitted.table)
    text = console.export_text()
    assert fitted.dropped == ["notes"]
    assert long_id in text and "Li4TiCu3(PO4)4" in text and "1.497" in text and _lines_fit(text, 50)


def test_proposals_at_80_columns_show_ids_and_formulas_whole(proposed):
    config, hop_ids = proposed
    with Store.open(config.store_path) as store:
        waiting = [r.hop_id for r in store.hops(state=HopState.PROPOSED)]
        formulas = {r.hop_id: r.metadata["formula"] for r in store.hops()}
    result = invoke(config, "proposals")
    assert result.exit_code == 0, result.output
    assert _lines_fit(result.output)
    for hop_id in waiting:
        assert hop_id in result.output
    from pymatgen.core import Composition

    for hop_id in waiting:
        assert Composition(formulas[hop_id]).reduced_formula in result.output
    assert "σ eV" in result.output and "hidden at this width" in result.output

    wide = invoke(config, "proposals", "--wide")
    assert wide.exit_code == 0 and "batch" in wide.output and "hidden at" not in wide.output
    assert not _lines_fit(wide.output)  # every column: wider than 80 on purpose

    listing = json.loads(invoke(config, "proposals", "--json").output)
    assert sorted(p["hop_id"] for p in listing) == sorted(waiting)
    assert set(listing[0]) == {
        "id", "batch_id", "hop_id", "strategy", "score", "mean_ev", "std_ev", "model_version_id", "created_at",
        "mlip_barrier_ev", "mlip_fidelity",
    }


@pytest.mark.parametrize("command", [("jobs",), ("jobs", "--all"), ("status",), ("history",)])
def test_other_tables_at_80_columns_show_ids_whole(proposed, command):
    config, hop_ids = proposed
    result = invoke(config, *command)
    assert result.exit_code == 0, result.output
    assert _lines_fit(result.output), result.output
    for hop_id in hop_ids[:2]:  # the submitted ones: in jobs, status and history
        assert hop_id in result.output, result.output


def test_history_json_is_unchanged(proposed):
    config, _ = proposed
    events = json.loads(invoke(config, "history", "--json").output)
    assert set(events[0]) == {"id", "time", "kind", "hop_id", "job_id", "message", "payload"}


# ------------------------------------------------------------------- id prefixes
def test_approve_and_reject_take_a_unique_prefix_and_refuse_an_ambiguous_one(tmp_path):
    config, hop_ids = make_campaign(tmp_path, n_hops=5)
    propose_by_hand(config, hop_ids[:4])
    # 1b7a4c0e9d2f3a51-p1, 1b7a4c0e9d2f3a77-p2, d6b19462186b3a86-p3, 1b7a4c0e9d2f3a51-p4 proposed,
    # 1b7a4c0e9d2f3a77-p5 a candidate
    assert hop_ids[2] == "d6b19462186b3a86-p3"
    ambiguous = invoke(config, "approve", "1b7a4c0e9d2f3a51", "d6b")
    assert ambiguous.exit_code == 1
    text = " ".join(ambiguous.output.split())
    assert "'1b7a4c0e9d2f3a51' is ambiguous: 2 hops start with it" in text and hop_ids[0] in text and hop_ids[3] in text
    with Store.open(config.store_path) as store:
        assert store.hop_counts()["approved"] == 0  # all or nothing: d6b was fine, yet nothing decided

    # the waiting proposals come first: 1b7a4c0e9d2f3a77-p2 is the only *proposed* hop with this
    # prefix (p5 is a mere candidate)
    approved = invoke(config, "approve", "d6b", "1b7a4c0e9d2f3a77", "--who", "alice")
    assert approved.exit_code == 0, approved.output
    assert hop_ids[2] in approved.output and hop_ids[1] in approved.output

    rejected = invoke(config, "reject", "d6b1", "--reason", "too big")  # approved, not yet submitted
    assert rejected.exit_code == 0, rejected.output
    unknown = invoke(config, "approve", "zz")
    assert unknown.exit_code == 1 and "no hop 'zz'" in unknown.output
    exact = invoke(config, "approve", hop_ids[0])
    assert exact.exit_code == 0, exact.output
    with Store.open(config.store_path) as store:
        assert store.hop(hop_ids[2]).state is HopState.REJECTED
        assert store.hop(hop_ids[1]).state is HopState.APPROVED
        assert store.hop(hop_ids[0]).state is HopState.APPROVED
        assert store.hop(hop_ids[3]).state is HopState.PROPOSED
        assert store.hop(hop_ids[4]).state is HopState.CANDIDATE
