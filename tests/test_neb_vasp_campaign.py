"""The VASP route seen from a campaign: `alem candidates add` enumerates every hop the backend's
preset can run, and `alem doctor` states the VASP requirements and the INCAR a user gets."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from alem import PACKAGE_DATA
from alem.cli import app
from alem.store import Store

runner = CliRunner()
LIFEPO4 = str(PACKAGE_DATA / "hosts" / "LiFePO4_olivine.cif")


@pytest.fixture
def campaign(tmp_path):
    from alem.campaign import init_campaign

    return init_campaign(tmp_path / "c")


def _stored_hops(campaign) -> dict[str, int]:
    with Store.open(campaign.store_path) as store:
        return {record.hop_id: record.n_sites for record in store.hops()}


def test_candidates_add_max_atoms_follows_the_preset(campaign):
    args = ["candidates", "add", LIFEPO4, "--max-hop-length", "5", "--campaign", str(campaign.campaign_dir)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    # the 4.69 Å olivine path needs a 167-atom cell: within the preset's 400, lost at the old 160
    lengths = _stored_hops(campaign)
    assert 167 in lengths.values() and 111 in lengths.values()


def test_candidates_add_uses_the_campaigns_own_preset(campaign):
    workflows = campaign.campaign_dir / "workflows"
    workflows.mkdir()
    (workflows / "mlip_chgnet.toml").write_text('name = "mlip_chgnet"\nengine = "mlip"\n[supercell]\nmax_atoms = 120\n')
    result = runner.invoke(app, ["candidates", "add", LIFEPO4, "--max-hop-length", "5", "--campaign", str(campaign.campaign_dir)])
    assert result.exit_code == 0, result.output
    assert sorted(_stored_hops(campaign).values()) == [111]


def test_doctor_states_vasp_requirements_and_shows_the_incar(campaign, monkeypatch):
    import json

    from pymatgen.core import SETTINGS as PMG_SETTINGS

    monkeypatch.setitem(PMG_SETTINGS, "PMG_VASP_PSP_DIR", None)
    toml = campaign.campaign_dir / "alem.toml"
    text = toml.read_text().replace('kind = "local"', 'kind = "fireworks"', 1)
    toml.write_text(text.replace('[backend.fireworks]\npreset = "vasp_gga"', '[backend.fireworks]\npreset = "vasp_gga_u"', 1))
    result = runner.invoke(app, ["doctor", "--json", "--campaign", str(campaign.campaign_dir)])
    checks = {check["name"]: check for check in json.loads(result.output)}
    assert "vtst" in checks["VTST"]["message"].lower() and "LCLIMB" in checks["VTST"]["message"]
    assert checks["POTCARs"]["status"] == "problem" and "PMG_VASP_PSP_DIR" in checks["POTCARs"]["message"]
    incar = checks["INCAR"]["message"]
    assert checks["INCAR"]["status"] == "ok" and "LiCoO2_layered-p1 (71 atoms" in incar
    for line in ("ISYM = 0", "EDIFF = 1e-06", "ISMEAR = 0", "SIGMA = 0.05", "PREC = Accurate", "LDAUU = 0 3.32 0", "IMAGES = 5"):
        assert line in incar.splitlines(), line
    assert "endpoint relaxations: the same except EDIFFG = -0.02, IBRION = 2, NSW = 99" in incar


def test_jobflow_remote_gives_endpoints_one_image_of_nodes(tmp_path, monkeypatch, li2o_hop):
    import jobflow_remote
    import yaml
    from jobflow_remote import JobController
    from jobflow_remote.config import ConfigManager

    from alem.backends.jobflow_remote_backend import JobflowRemoteBackend
    from alem.neb.presets import load_preset

    folder = tmp_path / "projects"
    folder.mkdir()
    monkeypatch.setattr(jobflow_remote.SETTINGS, "projects_folder", str(folder))
    resources = {"nodes": 5, "ntasks_per_node": 32, "time": "24:00:00", "account": "mine"}
    monty = {"type": "MontyStore", "database_path": str(tmp_path / "out"), "storage": "sqlite"}
    (folder / "vasp.yaml").write_text(yaml.safe_dump({
        "name": "vasp", "queue": {"store": {"type": "MemoryStore", "collection_name": "jobs"}},
        "workers": {"cluster": {"type": "local", "scheduler_type": "slurm", "work_dir": str(tmp_path / "w"),
                                "resources": resources}},
        "jobstore": {"docs_store": {**monty, "collection_name": "o"},
                     "additional_stores": {"data": {**monty, "collection_name": "d"}}},
    }))
    controller = JobController.from_project(ConfigManager().get_project("vasp"))
    controller.reset()
    preset = load_preset("vasp_gga")
    preset.supercell.min_image_distance_a = 0.0
    backend = JobflowRemoteBackend(preset, project="vasp", worker="cluster", job_controller=controller)
    flow_id = backend.submit(li2o_hop, "job-1")
    assert backend.restart_for(li2o_hop) is None  # nothing failed yet: a fresh flow
    requested = {doc.job.name: doc.resources for doc in controller.get_jobs_doc(flow_ids=[flow_id])}
    for name in ("GGA endpoint relax endpoint 1", "GGA endpoint relax endpoint 2"):
        assert requested[name] == {**resources, "nodes": 1}
    assert requested["GGA NEB"] == {**resources, "nodes": 5}  # IMAGES = 5 divides the ranks
    assert requested["collect_vasp_neb_output"]["nodes"] == 1


def test_node_request_keeps_the_rest_of_the_queue_settings():
    from alem.neb.flows import queue_request_with_nodes

    pbs = {"select": "select=1:ncpus=32:mpiprocs=32", "walltime": "24:00:00"}
    assert queue_request_with_nodes(pbs, 5) == {"select": "select=5:ncpus=32:mpiprocs=32", "walltime": "24:00:00"}
    assert queue_request_with_nodes({}, 5) == {"nodes": 5, "nnodes": 5}  # FireWorks: Slurm and PBS adapters


@pytest.mark.parametrize("name, endpoint, neb", [("my_qadapter_slurm", "#SBATCH --nodes=1", "#SBATCH --nodes=5"),
                                                 ("my_qadapter_pbs", "#PBS -l nodes=1:ppn=32", "#PBS -l nodes=5:ppn=32")])
def test_shipped_queue_adapters_give_endpoints_fewer_nodes(name, endpoint, neb, tmp_path, li2o_hop):
    from fireworks.utilities.fw_serializers import load_object_from_file

    from alem.neb.flows import NODES_KEY, neb_flow_for_hop, queue_request_with_nodes
    from alem.neb.presets import load_preset

    flow = neb_flow_for_hop(li2o_hop, load_preset("vasp_gga"))
    nodes = {job.name: job.metadata[NODES_KEY] for job in flow.jobs}
    template = Path(__file__).resolve().parents[1] / "hpc_configs" / "fireworks" / f"{name}.yaml"
    for job_name, directive in (("GGA endpoint relax endpoint 1", endpoint), ("GGA NEB", neb)):
        adapter = load_object_from_file(str(template))
        adapter.update(queue_request_with_nodes({}, nodes[job_name]))  # what qlaunch -r does with _queueadapter
        assert directive in adapter.get_script_str(str(tmp_path))


def test_docs_show_the_incar_the_preset_writes():
    import re

    from alem.neb.presets import load_preset
    from alem.neb.vasp_inputs import example_incar_text

    page = (Path(__file__).resolve().parents[1] / "docs" / "guide" / "neb.md").read_text()
    block = page.split("The NEB INCAR for the\nshipped layered LiCoO2")[1].split("```")[1]
    shown = {key: value.strip() for line in block.splitlines()
             for key, value in re.findall(r"([A-Z]+) = (.+?)(?=\s{2,}|$)", line)}
    written = dict(line.split(" = ", 1) for line in example_incar_text(load_preset("vasp_gga_u")).splitlines()[1:-1])
    assert shown == written
