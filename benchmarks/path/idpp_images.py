"""IDPP-interpolated ion positions for the 556 literature hops (issue: accuracy lever 3, the path).

The GNN's path nodes sit on the straight line between the ion's endpoints. pymatgen's
``IDPPSolver`` (image-dependent pair potential, Smidstrup et al. 2014) instead interpolates every
atom so that interatomic distances change smoothly, which pushes the ion around host atoms that
block the straight line — the usual starting path of a DFT-NEB. This writes the ion's fractional
coordinates at 5 images (endpoints included) for every hop; ``run_idpp_cv.py`` feeds them to the
GNN in place of the straight line.

    python benchmarks/path/idpp_images.py --workers 2      # ~20 min on 2 cores

Writes ``idpp_images.npz`` beside this file (hop ids, 556 x 5 x 3 fractional coordinates, per hop
IDPP's status: 2 converged, 1 stopped at 300 iterations, 0 failed; seconds). A hop whose IDPP run fails keeps its straight line (counted).
"""

from __future__ import annotations

import argparse
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from pymatgen.analysis.diffusion.neb.pathfinder import IDPPSolver

from alem.hops import load_training_hops

HERE = Path(__file__).resolve().parent
N_IMAGES = 5


def ion_path(index: int) -> tuple[int, np.ndarray, int, float]:
    """(index, ion path, 2 converged / 1 stopped at maxiter / 0 failed -> straight line, seconds)."""
    hop = load_training_hops()[index]
    started = time.time()
    straight = hop.path_frac_coords(N_IMAGES)
    try:
        final = hop.final.copy()
        # the ion's final position as the minimum image of the hop, so IDPP interpolates the short way
        final.replace(0, final[0].species, straight[-1], coords_are_cartesian=False, properties=final[0].properties)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            images = IDPPSolver.from_endpoints([hop.initial, final], nimages=N_IMAGES - 2, sort_tol=0.0).run(maxiter=300)
        status = 1 if any("without convergence" in str(w.message) for w in caught) else 2
        path = np.array([image.frac_coords[0] for image in images])
        # unwrap each image next to the straight line (periodic images of the same point)
        path = straight + (path - straight - np.round(path - straight))
        return index, path, status, time.time() - started
    except Exception:  # noqa: BLE001 - any failure keeps the straight line and is counted
        return index, straight, 0, time.time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0)
    args = parser.parse_args()
    hops = load_training_hops()
    n = args.limit or len(hops)
    paths = np.zeros((n, N_IMAGES, 3))
    status = np.zeros(n, dtype=int)
    seconds = np.zeros(n)
    started = time.time()
    with ProcessPoolExecutor(args.workers) as pool:
        for done, (index, path, ok, secs) in enumerate(pool.map(ion_path, range(n), chunksize=4), start=1):
            paths[index], status[index], seconds[index] = path, ok, secs
            if done % 50 == 0:
                print(f"{done}/{n} hops, {time.time() - started:.0f} s", flush=True)
    np.savez_compressed(HERE / "idpp_images.npz", hop_id=np.array([h.hop_id for h in hops[:n]]), frac_coords=paths,
                        idpp_status=status, seconds=seconds)
    shift = np.linalg.norm((paths - np.stack([h.path_frac_coords(N_IMAGES) for h in hops[:n]])) @ np.eye(3), axis=2)
    print(f"IDPP on {n} hops in {time.time() - started:.0f} s: {(status == 2).sum()} converged, {(status == 1).sum()} stopped at "
          f"300 iterations (kept), {(status == 0).sum()} failed (straight line); "
          f"median fractional shift of the middle image {np.median(shift[:, N_IMAGES // 2]):.3f}")


if __name__ == "__main__":
    main()
