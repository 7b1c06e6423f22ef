"""`alem status` in a fresh process loads neither BoTorch nor the NEB and enumeration libraries
(pymatgen-analysis-diffusion, atomate2): they take seconds to import on a login node, and a read
command needs none of them (the packages alem.campaign, alem.acquisition, alem.candidates,
alem.graphs and alem.neb load names on first use). The host answers, the review page and the report
are checked the same way on a campaign with kept rows in test_campaign_hosts.py."""

import subprocess
import sys

from alem.campaign import init_campaign
from tests._factories import HEAVY_MODULES, modules_loaded_by


def test_status_loads_no_heavy_library(tmp_path):
    from alem.model_dir import default_ensemble_path
    from alem.store import Store

    config = init_campaign(tmp_path / "c")
    with Store.open(config.store_path) as store:  # a current model: status shows the remaining promise
        store.add_model_version(default_ensemble_path(), {})
    # nor scipy.stats: the remaining promise is a normal CDF (scipy.special), a second less
    assert modules_loaded_by(config.campaign_dir, "status", watch=(*HEAVY_MODULES, "scipy.stats")) == {"exit": 0, "loaded": []}


def test_the_lazy_names_still_import():
    from alem.acquisition import PredictionTable, select_batch
    from alem.campaign import reconcile, submit_approved

    assert callable(select_batch) and callable(reconcile) and callable(submit_approved) and PredictionTable.__name__ == "PredictionTable"


def test_a_lazy_name_stays_itself_after_its_submodule_of_the_same_name_is_imported():
    """``alem.graphs.crystal_graph`` is a function and a module: importing the module first (as
    another test or command may) must not turn ``from alem.graphs import crystal_graph`` into the
    module (it once failed the full suite with "'module' object is not callable", order-dependent)."""
    code = (
        "import alem.graphs.crystal_graph, alem.graphs\n"
        "from alem.graphs import crystal_graph\n"
        "assert callable(crystal_graph) and crystal_graph.__module__ == 'alem.graphs.crystal_graph', crystal_graph\n"
        "import sys; assert sys.modules['alem.graphs.crystal_graph'].crystal_graph is crystal_graph\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
