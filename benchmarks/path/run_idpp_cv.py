"""GNN with IDPP path nodes vs straight-line path nodes, same outer folds (accuracy lever 3).

Runs benchmarks/cv/gnn_oof.py's outer CV (5 members per fold, the shipped recipe: frozen backbone,
v2 descriptors, seeds as in ``alem train``) with the ion's 5 path nodes taken from
``idpp_images.npz`` instead of the straight line; descriptors are untouched (they trace their own
bond-valence path). Compared with the shipped model's out-of-fold GNN predictions (straight line,
the same folds and seeds). Two trainings of the same straight-line recipe differ by about 0.002 eV
of MAE (thread scheduling), so smaller differences mean nothing.

    python benchmarks/path/idpp_images.py && python benchmarks/path/run_idpp_cv.py   # ~20 min

Writes ``gnn_outer_idpp.npz``, ``idpp_results.json`` and ``idpp_results.md`` beside this file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "cv"))

import gnn_oof  # noqa: E402
from run_stack import KEYS, scored  # noqa: E402

from alem.hops.hop import Hop  # noqa: E402
from alem.inference.stacking import combine_members  # noqa: E402
from alem.model_dir import OOF_FILENAME, default_ensemble_path  # noqa: E402

N_GRAPH_IMAGES = 5


def use_idpp_path_nodes(images: Path) -> None:
    """Make every hop's 5-point path (the graph's path nodes) the IDPP one; other point counts
    (the descriptors' 9-point profile) keep the straight line."""
    data = np.load(images)
    by_id = dict(zip(data["hop_id"].tolist(), data["frac_coords"]))
    straight = Hop.path_frac_coords

    def path_frac_coords(self: Hop, n_images: int) -> np.ndarray:
        if n_images == N_GRAPH_IMAGES and self.hop_id in by_id:
            return by_id[self.hop_id]
        return straight(self, n_images)

    Hop.path_frac_coords = path_frac_coords


def main() -> None:
    out = HERE / "gnn_outer_idpp.npz"
    if not out.exists():
        use_idpp_path_nodes(HERE / "idpp_images.npz")
        sys.argv = ["gnn_oof.py", "--level", "outer", "--members", "5", "--out", str(out)]
        torch.set_num_threads(1)
        gnn_oof.main()
    idpp = np.load(out)
    shipped = np.load(default_ensemble_path() / OOF_FILENAME)
    y, folds = shipped["y"], shipped["folds"]
    assert np.allclose(idpp["y"], y)
    rows = []
    for name, location, scale in (
        ("GNN ensemble, straight-line path nodes (shipped)", shipped["location"], shipped["scale"]),
        ("GNN ensemble, IDPP path nodes", np.nansum(idpp["location"], axis=1), np.nansum(idpp["scale"], axis=1)),
    ):
        mean, sigma = combine_members(location, scale, 1.0)
        metrics = scored(y, mean, sigma, folds)
        rows.append({"model": name, **{k: metrics[k] for k in KEYS}})
        print(f"{name:55s} MAE {metrics['mae_ev']:.3f}  R2 {metrics['r2']:.3f}", flush=True)
    status = np.load(HERE / "idpp_images.npz")["idpp_status"]
    results = {"rows": rows, "idpp_converged": int((status == 2).sum()), "idpp_stopped_at_maxiter": int((status == 1).sum()),
               "idpp_failed": int((status == 0).sum())}
    (HERE / "idpp_results.json").write_text(json.dumps(results, indent=2))
    lines = ["| model (grouped 5-fold, 556 hops) | MAE (eV) | MAE E_m<1.5 | R² | acc@0.65 | ρ(σ,\\|err\\|) | cov90 |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['mae_ev']:.3f} | {r['mae_below_1p5_ev']:.3f} | {r['r2']:.3f} | {r['accuracy_065']:.3f} | "
                     f"{r['spearman_sigma_abs_err']:.3f} | {r['coverage_90']:.3f} |")
    (HERE / "idpp_results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
