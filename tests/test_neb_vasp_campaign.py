"""The VASP route seen from a campaign: `alem candidates add` enumerates every hop the backend's
preset can run, and `alem doctor` states the VASP requirements and the INCAR a user gets."""

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
