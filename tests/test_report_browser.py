"""The campaign report in a real browser (headless Chromium, as for the review page): its
structure, and that its words say what its plots and tables show.

The campaign holds results of two fidelities, DFT and CHGNet (one CHGNet barrier below 0.1 eV),
each predicted before its NEB by a model that learns DFT. The page must keep them apart: counts,
parity plots, captions and learning curve per fidelity, never one number over both.
"""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest
from test_review_browser import CHROMIUM, WINDOW, chromium

from alem.config import CampaignConfig
from alem.neb.schemas import NebOutcome
from alem.report import write_report
from alem.store import Store

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)")

#: hop -> (fidelity, NEB barrier eV, prediction before it eV)
RESULTS = {
    "h-dft-1": ("dft:GGA", 0.45, 0.50), "h-dft-2": ("dft:GGA", 0.90, 0.70),
    "h-mlip-1": ("mlip:CHGNet", 0.05, 0.40), "h-mlip-2": ("mlip:CHGNet", 0.30, 0.35), "h-mlip-3": ("mlip:CHGNet", 0.80, 0.60),
}

#: Collected by the browser once the page has loaded, into the body's data-probe attribute.
PROBE = """<script>window.addEventListener('load',()=>{
const q=s=>[...document.querySelectorAll(s)], r={};
r.images=document.images.length;
r.decoded=[...document.images].filter(i=>i.complete&&i.naturalWidth>300).length;
r.figures=q('figure').map(f=>({alt:(f.querySelector('img')||{}).alt,
  caption:(f.querySelector('figcaption')||{textContent:''}).textContent,
  captionBelow:!!(f.querySelector('img')&&f.querySelector('figcaption')&&
    f.querySelector('figcaption').getBoundingClientRect().top>=f.querySelector('img').getBoundingClientRect().bottom-1)}));
r.emptyHeadings=q('h2').filter(h=>!h.nextElementSibling||h.nextElementSibling.tagName==='H2').map(h=>h.textContent);
const after=t=>{const h=q('h2').find(h=>h.textContent===t);return h&&h.nextElementSibling};
const rows=t=>{const e=after(t);return e&&e.tagName==='TABLE'?[...e.tBodies[0].rows].map(tr=>[...tr.cells].map(c=>c.textContent)):null};
r.results=rows('NEB results'); r.parity=rows('Predictions behind the parity plots');
r.summary=document.getElementById('summary').textContent;
r.text=document.body.innerText;
r.pageWidth=document.documentElement.scrollWidth;
document.body.dataset.probe=JSON.stringify(r);});</script></body>"""


def _campaign(tmp_path):
    from alem.campaign import init_campaign
    from tests._factories import make_tiny_hop

    config = init_campaign(tmp_path / "campaign", backend="local")
    with Store.open(config.store_path) as store:
        store.add_hops([make_tiny_hop(hop_id, 0.3 + 0.05 * k) for k, hop_id in enumerate(RESULTS)])
        version = store.add_model_version(str(tmp_path / "no-model-here"), {"cv": {"mae_ev": 0.25}}, "sha256:abc", 556)
        hop_ids = list(RESULTS)
        store.record_predictions(version, hop_ids, [RESULTS[h][2] for h in hop_ids], [0.1] * len(hop_ids), [0.5] * len(hop_ids))
        store.approve(hop_ids, who="alice")
        for hop_id, (fidelity, barrier_ev, _) in RESULTS.items():
            job = store.begin_submission(hop_id, "local", fidelity)
            store.mark_submitted(job.id, f"ext-{hop_id}")
            store.record_result(job.id, NebOutcome(
                barrier_ev=barrier_ev, reverse_barrier_ev=barrier_ev, image_energies_ev=[0.0, barrier_ev, 0.0],
                path_coordinate_a=[0.0, 1.0, 2.0], converged=True, method=f"{fidelity} NEB",
            ))
    return CampaignConfig.load(config.campaign_dir)


def test_the_report_keeps_fidelities_apart_and_says_what_it_shows(tmp_path):
    config = _campaign(tmp_path)
    page = write_report(config, tmp_path / "report.html")
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(page.read_text().replace("</body>", PROBE))
    dom = chromium(tmp_path / "profile", "--dump-dom", probe_page.as_uri()).stdout
    seen = json.loads(html.unescape(re.search(r'data-probe="([^"]*)"', dom).group(1)))

    # structure: every plot decoded, each with its caption right under it; no heading left empty
    assert seen["images"] == seen["decoded"] == len(seen["figures"]) == 5  # CV, 2 campaign parities, curve, history
    assert all(f["captionBelow"] and len(f["caption"]) > 40 for f in seen["figures"]), seen["figures"]
    assert seen["emptyHeadings"] == []
    assert not re.search(r"\b(Left|Right|left|right):", seen["text"])  # positions depend on the window
    assert seen["pageWidth"] <= WINDOW[0]

    # the summary counts what the results table lists, per fidelity
    usable = [row for row in seen["results"] if row[6] == "usable"]
    for fidelity in ("dft:GGA", "mlip:CHGNet"):
        rows = [row for row in usable if row[4] == fidelity]
        good = [row for row in rows if float(row[2]) < 0.65]
        assert f"{len(rows)} at {fidelity}" in seen["summary"] and f"{len(good)} at {fidelity}" in seen["summary"]
    assert f"{len(usable)} usable NEB results" in seen["summary"]

    # one parity plot per fidelity; its caption's MAE is the one of the rows behind it, and the
    # CHGNet one says the model learns DFT
    by_alt = {f["alt"]: f["caption"] for f in seen["figures"]}
    for fidelity in ("dft:GGA", "mlip:CHGNet"):
        rows = [row for row in seen["parity"] if row[1] == fidelity]
        mae = np.mean([abs(float(row[2]) - float(row[3])) for row in rows])
        caption = by_alt[f"campaign parity at {fidelity}"]
        assert f"MAE {mae:.3f} eV on {len(rows)} results" in caption, caption
        assert ("learns dft labels, not mlip:CHGNet" in caption) is (fidelity == "mlip:CHGNet")
    pooled = np.mean([abs(RESULTS[h][1] - RESULTS[h][2]) for h in RESULTS])
    assert f"{pooled:.3f}" not in seen["text"]  # never one number over both fidelities
    assert "MAE on later mlip:CHGNet results (eV)" in seen["text"] and "MAE on later dft:GGA results (eV)" in seen["text"]

    # an MLIP barrier below 0.1 eV carries a plausibility note; the others do not
    notes = {row[0]: row[7] for row in seen["results"]}
    assert "check the path" in notes["h-mlip-1"] and not any(notes[h] for h in RESULTS if h != "h-mlip-1")
