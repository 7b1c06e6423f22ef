"""Where a rescoring's time goes: one chunk of a campaign's candidates predicted by its current model
version with the feature cache full, part by part (CPU and wall ms per hop, no profiler).

Run it on a campaign whose cache already holds the hops (after ``run_scale.py``'s ``first_scoring``),
on a copy: reading moves rows of an older cache layout to the current one.

    python benchmarks/scale/rescoring_parts.py --campaign /tmp/scale-10k/campaign --hops 2048

The parts are timed one after another on the same hops, each computed once (as ``Ensemble.predict``
computes them): reading the hops from the store, their content keys, reading and
joining their cache rows (and how many hops had their structures built: none, where the store
keeps the content keys), the GNN members' path side, each other stack component, the stacking
(and sister correction). Results go to ``--out`` (the numbers in the docs, before and after the
rescoring was made faster, are ``parts_before`` and ``parts_after`` of ``rescoring.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path


def measure(campaign: Path, n_hops: int, offset: int) -> dict:
    import torch

    from alem.campaign.model_versions import load_current_model
    from alem.campaign.score import feature_cache_of
    from alem.config import CampaignConfig
    from alem.inference.feature_cache import hop_content_key
    from alem.store import HopState, Store

    config = CampaignConfig.load(campaign)
    parts: dict[str, dict[str, float]] = {}
    with Store.open(config.store_path) as store, feature_cache_of(store) as cache:
        model = load_current_model(store, config)
        ensemble = model.ensemble
        hop_ids = [r.hop_id for r in store.hops(state=HopState.CANDIDATE)][offset : offset + n_hops]
        n = len(hop_ids)

        def timed(name: str, work):
            cpu, wall = time.process_time(), time.perf_counter()
            result = work()
            parts[name] = {"cpu_ms_per_hop": round(1000 * (time.process_time() - cpu) / n, 3),
                           "wall_ms_per_hop": round(1000 * (time.perf_counter() - wall) / n, 3)}
            return result

        # schema 12: hops come with their content keys (kept first, as the scoring pass does: once per hop after
        # the upgrade), their structures built only if something reads them
        timed("content keys kept where a hop has none", lambda: store.keep_content_keys(hop_ids))
        hops = timed("reading the hops from the store", lambda: store.load_hops(hop_ids))
        timed("content keys", lambda: [hop_content_key(h) for h in hops])
        built = sum("initial" in h.__dict__ for h in hops)
        inputs = ensemble.hop_inputs(hops, device="cpu", cache=cache)
        timed("cache rows read and joined (keys again included)", lambda: inputs.path_tensors)
        timed("GNN members' path side", lambda: ensemble.gnn.member_predictions(inputs))
        for component in ensemble.structure.components[1:]:
            timed(f"component {component.name}", lambda c=component: c.predict(inputs))
        prediction = timed("the stack: members memoised, the other components again, mixing", lambda: ensemble._predict(inputs))
        timed("sister correction", lambda: ensemble.sister_correction(inputs, prediction, (), "cpu"))
        assert cache.misses == 0, "the cache did not hold every hop: run the first scoring first"
        built += sum("initial" in h.__dict__ for h in hops)
    return {
        "n_hops": n, "model_version": model.version_id, "parts": parts, "hops_whose_structures_were_built": built,
        # the keys are computed again with the cache rows, the components again in the stack
        "total_cpu_ms_per_hop": round(sum(p["cpu_ms_per_hop"] for name, p in parts.items()
                                          if name != "content keys" and not name.startswith("component ")), 3),
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with other work, CPython {platform.python_version()}",
        "load_average_1min": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaign", type=Path, required=True)
    parser.add_argument("--hops", type=int, default=2048, help="candidates predicted (one scoring chunk)")
    parser.add_argument("--offset", type=int, default=0, help="skip this many candidates first")
    parser.add_argument("--out", type=Path, default=Path("rescoring_parts.json"))
    args = parser.parse_args()
    result = measure(args.campaign, args.hops, args.offset)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
