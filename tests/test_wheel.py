"""A wheel built from the repository works on its own: installed (not editable) into a scratch
virtual environment and run from a directory other than the checkout, `alem` finds its shipped
model, NEB presets, demo hosts and cluster templates inside the package.

The scratch environment borrows this environment's third-party packages through a ``.pth`` line
(nothing is downloaded: ``--no-deps --no-index``); the alem it imports is the wheel's, which the
first test checks before the others rely on it.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from alem import REPO_ROOT, SHIPPED_DIRS
from alem.hops import load_training_hops, write_dataset
from tests._chgnet_reference import LI2O_DEMO_EV, TOLERANCE_EV

#: What a wheel is built from: the package, the shipped directories and the build files.
BUILD_INPUTS = ("alem", *SHIPPED_DIRS, "pyproject.toml", "setup.py", "MANIFEST.in", "README.md")


def _run(args, cwd, env, timeout=600):
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """(the built wheel, the scratch venv's bin/, an environment without the checkout on any path)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy: an in-tree build would leave build/ and *.egg-info in the checkout
    for name in BUILD_INPUTS:
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_shipped"))
        else:
            shutil.copy2(src, source / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", root / "dist", source], cwd=root, env=env)
    (wheel,) = (root / "dist").glob("alem-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=root, env=env)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel], cwd=root, env=env)
    # Only now (pip would otherwise see this environment's alem and replace it): borrow torch & co.
    # A plain path in a .pth does not run that directory's own .pth files, so an editable alem
    # installed there stays invisible.
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root, env=env).strip())
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_borrowed_dependencies.pth").write_text("\n".join(sorted(borrowed)) + "\n")
    shutil.rmtree(source)
    work = root / "elsewhere"
    work.mkdir()
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    return wheel, venv / "bin", work, env


def test_the_wheel_carries_the_shipped_directories_and_its_alem_is_imported(wheel_env):
    wheel, bin_dir, work, env = wheel_env
    probe = ("import json, alem; from alem.model_dir import default_ensemble_path; from alem.neb.presets import find_preset_file; "
             "print(json.dumps({'file': alem.__file__, 'checkout': str(alem.source_checkout()), "
             "'models': str(default_ensemble_path()), 'preset': str(find_preset_file('mlip_chgnet')), "
             "'templates': str(alem.shipped_dir('hpc_configs'))}))")
    found = json.loads(_run([bin_dir / "python", "-c", probe], cwd=work, env=env))
    package = Path(found["file"]).parent
    assert package.is_relative_to(bin_dir.parent), found  # the wheel's alem, not the checkout's
    assert found["checkout"] == "None"
    assert Path(found["models"]) == package / "_shipped" / "models" / "ensemble"
    assert Path(found["preset"]) == package / "_shipped" / "workflows" / "mlip_chgnet.toml"
    assert (Path(found["templates"]) / "batch" / "alem_slurm.toml").is_file()
    assert wheel.stat().st_size < 40e6  # the size the docs state (getting started: 28 MB), with room


def test_predict_evaluate_init_and_candidates_from_the_wheel(wheel_env, tmp_path):
    _, bin_dir, work, env = wheel_env
    alem = bin_dir / "alem"
    # shipped hops whose predictions the shipped model records (its drift check)
    reference = json.loads((REPO_ROOT / "models" / "ensemble" / "reference_predictions.json").read_text())
    by_id = {h.hop_id: h for h in load_training_hops()}
    hops = write_dataset([by_id[i] for i in reference["hop_ids"][:3]], tmp_path / "three_hops.json")

    rows = json.loads(_run([alem, "predict", hops, "--json"], cwd=work, env=env))
    assert [r["hop_id"] for r in rows] == reference["hop_ids"][:3]
    assert [r["barrier_ev"] for r in rows] == pytest.approx(reference["mean_ev"][:3], abs=1e-3)  # printed to 4 decimals

    _run([alem, "evaluate", hops, "--out", work / "evaluation"], cwd=work, env=env)
    metrics = json.loads((work / "evaluation" / "metrics.json").read_text())
    assert metrics["n"] == 3

    # a model directory the user names wins over the shipped one (and one that is not a model says so)
    named = subprocess.run([alem, "predict", hops, "--model", tmp_path], cwd=work, env=env, capture_output=True, text=True)
    assert named.returncode != 0 and f"{tmp_path}: no model_card.json here" in " ".join(named.stderr.split())

    said = _run([alem, "init", "camp", "--backend", "slurm"], cwd=work, env=env)
    assert "batch/alem_slurm.toml" in said and str(bin_dir.parent) in " ".join(said.split()).replace(" ", "")
    host = REPO_ROOT / "alem" / "data" / "hosts" / "Li2O_antifluorite.cif"  # the user's own CIF, as far as alem knows
    _run([alem, "candidates", "add", host, "--campaign", work / "camp"], cwd=work, env=env)
    status = json.loads(_run([alem, "status", "--json", "--campaign", work / "camp"], cwd=work, env=env))
    assert sum(status["hops"].values()) >= 1


@pytest.mark.slow
def test_demo_from_the_wheel(wheel_env):
    """The README's main job from an installed wheel: shipped hosts, preset and model, one CHGNet NEB."""
    _, bin_dir, work, env = wheel_env
    _run([bin_dir / "alem", "demo", "demo", "--host", "Li2O_antifluorite", "--max-minutes", "15"], cwd=work, env=env, timeout=1200)
    script = ("import json; from alem.store import Store; s = Store.open('demo/state/alem.sqlite'); "
              "print(json.dumps([r.barrier_ev for r in s.results()]))")
    (barrier,) = json.loads(_run([bin_dir / "python", "-c", script], cwd=work, env=env))
    assert barrier == pytest.approx(LI2O_DEMO_EV, abs=TOLERANCE_EV)
    assert (work / "demo" / "state" / "report.html").is_file()
