"""`alem candidates add` over many hosts: a directory or a glob, bad hosts skipped and named, the
rest added in chunks (a killed run goes on where it stopped); --strict adds nothing; the exit code
says whether any was skipped; --workers enumerates side by side."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure
from typer.testing import CliRunner

from alem.candidates import EnumerationSettings, HostError
from alem.candidates.pool import add_candidates, expand_host_paths
from alem.candidates.prototypes import antifluorite_li2o, antifluorite_li2s, layered_licoo2
from alem.cli import app
from alem.store import Store

runner = CliRunner()
SETTINGS = ["--max-hop-length", "4", "--min-image-distance", "4.5", "--max-atoms", "32"]


@pytest.fixture
def campaign(tmp_path):
    from alem.campaign import init_campaign

    return init_campaign(tmp_path / "c")


@pytest.fixture
def hosts(tmp_path):
    """Three good hosts and one without Li (``NaCl.cif``) in ``hosts/``, plus a README there."""
    directory = tmp_path / "hosts"
    directory.mkdir()
    antifluorite_li2o().to(filename=str(directory / "Li2O.cif"))
    antifluorite_li2s().to(filename=str(directory / "Li2S.cif"))
    (directory / "LiCoO2.json").write_text(layered_licoo2().to_json())
    Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(filename=str(directory / "NaCl.cif"))
    (directory / "README.txt").write_text("not a structure")
    return directory


def _add(campaign, *args):
    result = runner.invoke(app, ["candidates", "add", *map(str, args), *SETTINGS, "--campaign", str(campaign.campaign_dir)])
    return result, " ".join(result.output.split())


def _hosts_in_store(campaign):
    with Store.open(campaign.store_path) as store:
        return sorted(h.name for h in store.hosts()), len(store.hops())


def test_a_directory_adds_every_good_host_and_names_the_bad_one(campaign, hosts):
    result, text = _add(campaign, hosts)
    assert result.exit_code == 1, result.output  # something was skipped
    assert f"host skipped {hosts / 'NaCl.cif'}: host contains no Li" in text
    assert "from 3 host(s)" in text and "1 host(s) skipped" in text and "s per host" in text
    names, n_hops = _hosts_in_store(campaign)
    assert names == ["Li2O", "Li2S", "LiCoO2"] and n_hops >= 3

    again, text = _add(campaign, hosts / "Li2O.cif")  # nothing skipped: exit 0
    assert again.exit_code == 0, again.output
    assert "0 host(s) skipped" in text


def test_strict_adds_nothing_when_a_host_is_bad(campaign, hosts):
    result, text = _add(campaign, hosts, "--strict")
    assert result.exit_code == 1
    assert "NaCl.cif: host contains no Li" in text and "nothing was added to the store" in text
    assert _hosts_in_store(campaign) == ([], 0)


def test_a_glob_and_files_mixed(campaign, hosts):
    result, text = _add(campaign, f"{hosts}/Li2*.cif", hosts / "LiCoO2.json", hosts / "Li2O.cif")
    assert result.exit_code == 0, result.output
    assert _hosts_in_store(campaign)[0] == ["Li2O", "Li2S", "LiCoO2"]  # Li2O.cif given twice: added once
    nothing, text = _add(campaign, f"{hosts}/*.poscar")
    assert nothing.exit_code == 1 and "the pattern matches no structure file" in text


def test_library_report_skips_with_reasons_and_times_each_host(campaign, hosts):
    paths = expand_host_paths([hosts])
    assert [p.name for p in paths] == ["Li2O.cif", "Li2S.cif", "LiCoO2.json", "NaCl.cif"]
    settings = EnumerationSettings(max_hop_length_a=4.0, min_image_distance_a=4.5, max_atoms=32)
    with Store.open(campaign.store_path) as store:
        with pytest.raises(HostError, match="NaCl.cif: host contains no Li"):
            add_candidates(store, paths, "Li", settings, dataset_hops=[], strict=True)
        assert store.hosts() == []
        report = add_candidates(store, paths, "Li", settings, dataset_hops=[])
        assert [s.path.name for s in report.skipped_hosts] == ["NaCl.cif"]
        assert [h.label for h in report.hosts] == ["Li2O", "Li2S", "LiCoO2"]
        assert all(h.seconds > 0 for h in report.hosts) and report.skipped_hosts[0].seconds > 0
        assert len(store.hops()) == len(report.added) >= 3


def _store_content(store):
    return sorted(h.name for h in store.hosts()), sorted(r.hop_id for r in store.hops())


def _stored_rows(store) -> list[tuple]:
    """Every hop's id, fingerprint and stored structures, and every host's structure, as stored."""
    hops = store._conn.execute("SELECT hop_id, fingerprint, initial_json, final_json, metadata_json FROM hops ORDER BY hop_id")
    hosts = store._conn.execute("SELECT name, fingerprint, structure_json FROM hosts ORDER BY name")
    return [tuple(r) for r in hops] + [tuple(r) for r in hosts]


def test_a_killed_run_goes_on_where_it_stopped(campaign, hosts, tmp_path, monkeypatch):
    from alem.campaign import init_campaign
    from alem.candidates import pool

    paths = [hosts / "Li2O.cif", hosts / "Li2S.cif", hosts / "LiCoO2.json"]
    settings = EnumerationSettings(max_hop_length_a=4.0, min_image_distance_a=4.5, max_atoms=32)
    with Store.open(init_campaign(tmp_path / "whole").store_path) as store:
        add_candidates(store, paths, "Li", settings, dataset_hops=[])
        whole = _store_content(store)  # what one run that is never killed stores
    monkeypatch.setattr(pool, "HOSTS_PER_CHUNK", 1)
    real = pool.enumerate_hops
    enumerated = []

    def killed_at_licoo2(structure, ion, label, *args, **kwargs):
        if label == "LiCoO2" and not enumerated:
            raise KeyboardInterrupt  # the user's Ctrl-C (or a kill) in the middle of the third host
        return real(structure, ion, label, *args, **kwargs)

    monkeypatch.setattr(pool, "enumerate_hops", killed_at_licoo2)
    with Store.open(campaign.store_path) as store:
        with pytest.raises(KeyboardInterrupt):
            add_candidates(store, paths, "Li", settings, dataset_hops=[])
        assert _store_content(store)[0] == ["Li2O", "Li2S"]  # the finished chunks are kept
    def counted(structure, ion, label, *args, **kwargs):
        enumerated.append(label)
        return real(structure, ion, label, *args, **kwargs)

    monkeypatch.setattr(pool, "enumerate_hops", counted)
    with Store.open(campaign.store_path) as store:
        report = add_candidates(store, paths, "Li", settings, dataset_hops=[])
        assert enumerated == ["LiCoO2"] and [p.name for p in report.resumed_hosts] == ["Li2O.cif", "Li2S.cif"]
        assert _store_content(store) == whole
        # other settings: the hosts are enumerated again (they may give other hops)
        enumerated.clear()
        shorter = EnumerationSettings(max_hop_length_a=3.0, min_image_distance_a=4.5, max_atoms=32)
        add_candidates(store, paths[:1], "Li", shorter, dataset_hops=[])
        assert enumerated == ["Li2O"]


def test_workers_enumerate_side_by_side_to_the_same_store(campaign, hosts):
    paths = expand_host_paths([hosts])
    settings = EnumerationSettings(max_hop_length_a=4.0, min_image_distance_a=4.5, max_atoms=32)
    result, text = _add(campaign, hosts, "--workers", "2")
    assert result.exit_code == 1 and "host skipped" in text
    with Store.open(campaign.store_path) as store:
        parallel = _stored_rows(store)
    from alem.campaign import init_campaign

    serial_campaign = init_campaign(campaign.campaign_dir.parent / "serial")
    with Store.open(serial_campaign.store_path) as store:
        add_candidates(store, paths, "Li", settings, dataset_hops=None)
        assert _stored_rows(store) == parallel  # the hops came from the workers to the bit


def test_a_hop_file_stores_its_valid_hops_and_names_each_invalid_one(campaign, hosts, tmp_path):
    import json

    from alem.hops import hop_to_dataset_entry
    from tests._factories import rocksalt_hop

    good = [hop_to_dataset_entry(rocksalt_hop(f"rs-{rank}", barrier_ev=None, neighbor_rank=rank)) for rank in (0, 1)]
    no_ion = hop_to_dataset_entry(rocksalt_hop("no-li"))
    no_ion["working_ion"] = "Na"
    nan_coords = hop_to_dataset_entry(rocksalt_hop("nan-coords"))
    nan_coords["structure_ini"]["coords"][7][1] = float("nan")
    no_final = hop_to_dataset_entry(rocksalt_hop("no-final"))
    del no_final["structure_fin"]
    hop_file = tmp_path / "hops.json"
    hop_file.write_text(json.dumps([good[0], no_ion, nan_coords, no_final, good[1]]))

    result, text = _add(campaign, hop_file, hosts / "Li2O.cif", "--strict")
    assert result.exit_code == 1 and "nothing was added to the store" in text
    assert _hosts_in_store(campaign) == ([], 0)

    result, text = _add(campaign, hop_file, hosts / "Li2O.cif")
    assert result.exit_code == 1, result.output  # hops left out: the exit code says so
    lines = [line for line in result.output.splitlines() if line.startswith("invalid hop")]
    assert len(lines) == 3
    for hop_id, problem in (("no-li", "working ion Na is not in the structure"), ("nan-coords", "not finite"),
                            ("no-final", "missing key 'structure_fin'")):
        assert any(f"hops.json: hop {hop_id}: " in line and problem in line for line in lines), (hop_id, lines)
    assert "2 candidate hops stored from 1 hop file(s)" in text and "3 invalid hop(s) left out" in text
    with Store.open(campaign.store_path) as store:
        ids = {r.hop_id for r in store.hops()}
        assert {"rs-0", "rs-1"} <= ids and not ids & {"no-li", "nan-coords", "no-final"}
        assert [h.name for h in store.hosts()] == ["Li2O"]  # the host beside it was enumerated too


#: A `candidates add` in its own process: 2 workers, a chunk per host, 3 s per host's enumeration
#: (so a kill lands between chunks).
_SLOW_PARALLEL_ADD = """
import sys, time
from alem.candidates import EnumerationSettings, pool
from alem.store import Store

pool.HOSTS_PER_CHUNK = 1
real = pool.enumerate_hops

def slow(*args, **kwargs):
    time.sleep(3)
    return real(*args, **kwargs)

pool.enumerate_hops = slow  # the workers are forked after this: they run it too
with Store.open(sys.argv[1]) as store:
    pool.add_candidates(store, sys.argv[2:], "Li", EnumerationSettings(max_hop_length_a=4.0, min_image_distance_a=4.5,
                        max_atoms=32), dataset_hops=[], workers=2)
"""


def _enumerated_fingerprints(store) -> list[str]:
    from alem.candidates.pool import ENUMERATED_EVENT

    return [f for event in store.events(kind=ENUMERATED_EVENT) for f in event.payload["hosts"]]


def test_a_killed_parallel_run_keeps_whole_chunks_and_goes_on_with_no_host_twice(campaign, hosts, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import alem
    from alem.campaign import init_campaign

    paths = expand_host_paths([hosts])  # Li2O, Li2S, LiCoO2 and NaCl (skipped: no Li)
    settings = EnumerationSettings(max_hop_length_a=4.0, min_image_distance_a=4.5, max_atoms=32)
    with Store.open(init_campaign(tmp_path / "whole").store_path) as store:
        add_candidates(store, paths, "Li", settings, dataset_hops=[])
        whole = _store_content(store)
    env = {**os.environ, "PYTHONPATH": str(Path(alem.__file__).parents[1])}
    child = subprocess.Popen([sys.executable, "-c", _SLOW_PARALLEL_ADD, str(campaign.store_path), *map(str, paths)],
                             env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            with Store.open(campaign.store_path) as store:
                if _enumerated_fingerprints(store):
                    break
            time.sleep(0.1)
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the parent and its workers, as `kill -9` of the group
        child.wait()
    with Store.open(campaign.store_path) as store:
        stored = sorted(h.name for h in store.hosts())
        # whole chunks only: every stored host is in a chunk's event and every chunk's hosts are stored
        assert sorted(_enumerated_fingerprints(store)) == sorted(h.fingerprint for h in store.hosts())
    assert 1 <= len(stored) < 3, stored  # killed after a chunk, before the last

    with Store.open(campaign.store_path) as store:
        report = add_candidates(store, paths, "Li", settings, dataset_hops=[], workers=2)
        assert sorted(p.stem for p in report.resumed_hosts) == stored  # not enumerated again
        assert sorted(h.label for h in report.hosts) == sorted({"Li2O", "Li2S", "LiCoO2"} - set(stored))
        assert _store_content(store) == whole
        fingerprints = _enumerated_fingerprints(store)
        assert len(fingerprints) == len(set(fingerprints)) == 3  # no host stored twice


def test_an_unexpected_error_in_one_host_skips_it_by_file_name_and_stores_the_rest(campaign, hosts, monkeypatch):
    """pymatgen raising something else than alem's own errors on one odd host (in a worker) skips
    that host with the file name and the error; the other hosts are stored."""
    from alem.candidates import pool

    real = pool.enumerate_hops

    def fails_on_li2s(structure, ion, label, *args, **kwargs):
        if label == "Li2S":
            raise RuntimeError("No symmetrically equivalent site was found")
        return real(structure, ion, label, *args, **kwargs)

    monkeypatch.setattr(pool, "enumerate_hops", fails_on_li2s)  # the workers are forked: they run it too
    paths = expand_host_paths([hosts])
    settings = EnumerationSettings(max_hop_length_a=4.0, min_image_distance_a=4.5, max_atoms=32)
    with Store.open(campaign.store_path) as store:
        report = add_candidates(store, paths, "Li", settings, dataset_hops=[], workers=2)
        assert sorted(h.name for h in store.hosts()) == ["Li2O", "LiCoO2"]
    reasons = {s.path.name: s.reason for s in report.skipped_hosts}
    assert reasons["Li2S.cif"] == (f"{hosts / 'Li2S.cif'}: enumeration failed "
                                   "(RuntimeError: No symmetrically equivalent site was found)")
    assert set(reasons) == {"Li2S.cif", "NaCl.cif"}
