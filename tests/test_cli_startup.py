"""`alem status` in a fresh process loads neither BoTorch nor the NEB and enumeration libraries
(pymatgen-analysis-diffusion, atomate2): they take seconds to import on a login node, and a read
command needs none of them (the packages alem.campaign and alem.acquisition load names on first use)."""

import json
import subprocess
import sys

from alem.campaign import init_campaign

HEAVY = ("botorch", "pymatgen.analysis.diffusion", "atomate2", "torch")


def test_status_loads_no_heavy_library(tmp_path):
    from alem.model_dir import default_ensemble_path
    from alem.store import Store

    config = init_campaign(tmp_path / "c")
    with Store.open(config.store_path) as store:  # a current model: status shows the remaining promise
        store.add_model_version(default_ensemble_path(), {})
    script = (
        "import sys, json\n"
        "from typer.testing import CliRunner\n"
        "from alem.cli import app\n"
        f"result = CliRunner().invoke(app, ['status', '--campaign', {str(config.campaign_dir)!r}])\n"
        f"print(json.dumps({{'exit': result.exit_code, 'loaded': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"exit": 0, "loaded": []}, out.stderr[-2000:]


def test_the_lazy_names_still_import():
    from alem.acquisition import PredictionTable, select_batch
    from alem.campaign import reconcile, submit_approved

    assert callable(select_batch) and callable(reconcile) and callable(submit_approved) and PredictionTable.__name__ == "PredictionTable"
