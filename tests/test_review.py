"""`alem review`: a self-contained page with one card per waiting proposal (picture, prediction,
reason, cost, nearest literature hops, commands); a proposal without prediction is refused."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest
from _proposal_campaign import make_campaign, propose_by_hand, small_shipped_hops
from typer.testing import CliRunner

from alem.cli import app
from alem.hops import load_training_hops
from alem.review import LiteratureIndex, strategy_reason
from alem.review.cost import estimate_cost
from alem.review.picture import bottleneck, hop_picture_png, view_direction
from alem.store import HopState, Store
from tests._factories import train_tiny_ensemble

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def invoke(config, *args):
    return runner.invoke(app, [*map(str, args), "--campaign", str(config.campaign_dir)])


@pytest.fixture(scope="module")
def tiny_ensemble_dir(tmp_path_factory):
    """A real 2-member ensemble trained from scratch for 3 epochs on 24 small shipped hops."""
    return train_tiny_ensemble(tmp_path_factory.mktemp("ensemble") / "tiny", small_shipped_hops()[:24])


@pytest.fixture(scope="module")
def literature():
    # built here (the shipped index read back keeps no hops, and these tests look the hops up)
    return LiteratureIndex(load_training_hops())


def test_review_page_has_a_card_per_proposal_with_picture_neighbours_and_commands(tmp_path, tiny_ensemble_dir):
    config, _ = make_campaign(tmp_path, n_hops=6, ensemble_dir=tiny_ensemble_dir)
    proposed = invoke(config, "propose", "--strategy", "explore", "--batch", "3")
    assert proposed.exit_code == 0, proposed.output
    out = tmp_path / "review.html"
    result = invoke(config, "review", "--out", out, "--neighbours", "4")
    assert result.exit_code == 0, result.output
    assert "review of 3 waiting proposal(s)" in result.output
    page = out.read_text()

    with Store.open(config.store_path) as store:
        waiting = [r.hop_id for r in store.hops(state=HopState.PROPOSED)]
        predictions = store.predictions()
    assert len(waiting) == 3
    cards = re.findall(r'<section class="card" id="([^"]+)">(.*?)</section>', page, flags=re.S)
    assert sorted(hop_id for hop_id, _ in cards) == sorted(waiting)
    training = {h.hop_id: h for h in load_training_hops()}
    for hop_id, card in cards:
        images = re.findall(r'src="data:image/png;base64,([^"]+)"', card)
        assert len(images) == 1 and base64.b64decode(images[0]).startswith(PNG_MAGIC)
        prediction = predictions[hop_id]
        assert f"{prediction.mean_ev:.2f} ± {prediction.std_ev:.2f} eV" in card
        assert f"disagree most about it: σ {prediction.std_ev:.2f} eV" in card
        assert f"alem approve {hop_id}" in card and f"alem reject {hop_id}" in card
        assert "the replay backend answers from its dataset, no calculation runs" in card
        neighbours = re.findall(r"<tr><td>(em-\d+)</td><td>([^<]+)</td><td>(\w+)</td><td class=num>([\d.]+)</td>", card)
        assert len(neighbours) == 4
        for neighbour_id, _, ion, barrier in neighbours:
            assert training[neighbour_id].working_ion == ion
            assert float(barrier) == pytest.approx(training[neighbour_id].barrier_ev, abs=0.006)
    assert "<script" not in page and "http" not in page  # self-contained: no code, nothing fetched


def test_pictures_are_drawn_once_per_hop_and_leave_with_the_decided_hops(tmp_path, tiny_ensemble_dir, monkeypatch):
    # drawing is most of a page's time: `alem propose` draws the batch's pictures, so even the
    # first page draws nothing (the pictures read back equal), and once a hop is decided its
    # picture leaves the folder
    from alem.review import picture
    from alem.review.picture import PICTURES_DIRNAME

    config, _ = make_campaign(tmp_path, n_hops=6, ensemble_dir=tiny_ensemble_dir)
    assert invoke(config, "propose", "--strategy", "explore", "--batch", "3").exit_code == 0
    kept = config.state_dir / PICTURES_DIRNAME
    assert len(list(kept.glob("*.png"))) == 3

    def no_drawing(hop):
        raise AssertionError(f"{hop.hop_id} drawn again")

    monkeypatch.setattr(picture, "hop_picture_png", no_drawing)
    first = invoke(config, "review", "--out", tmp_path / "first.html")
    assert first.exit_code == 0, first.output
    second = invoke(config, "review", "--out", tmp_path / "second.html")
    assert second.exit_code == 0, second.output
    images = [re.findall(r'src="data:image/png;base64,([^"]+)"', (tmp_path / f"{n}.html").read_text()) for n in ("first", "second")]
    assert images[0] == images[1] and len(images[0]) == 3
    with Store.open(config.store_path) as store:
        decided = store.hops(state=HopState.PROPOSED)[0].hop_id
    assert invoke(config, "reject", decided, "--reason", "not this one").exit_code == 0
    assert invoke(config, "review", "--out", tmp_path / "third.html").exit_code == 0
    assert len(list(kept.glob("*.png"))) == 2


def test_a_proposal_without_prediction_is_refused_and_nothing_written(tmp_path):
    config, hop_ids = make_campaign(tmp_path, n_hops=3)
    propose_by_hand(config, hop_ids[:2], predicted=False)
    out = tmp_path / "review.html"
    result = invoke(config, "review", "--out", out)
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert f"hop {hop_ids[0]}" in text and "has no prediction to review" in text and "nothing was written" in text
    assert not out.exists()


def test_no_waiting_proposals_gives_an_empty_page(tmp_path):
    config, _ = make_campaign(tmp_path, n_hops=2)
    result = invoke(config, "review")
    assert result.exit_code == 0, result.output
    assert "No proposals wait for a decision" in (config.state_dir / "review.html").read_text()


def test_nearest_literature_hop_of_a_training_hop_is_itself(literature):
    hop = literature.hops[100]
    nearest = literature.nearest(hop, k=3)
    assert nearest[0].hop_id == hop.hop_id and nearest[0].distance == pytest.approx(0.0, abs=1e-5)
    assert nearest[0].barrier_ev == hop.barrier_ev
    assert nearest[1].distance >= nearest[0].distance and nearest[2].distance >= nearest[1].distance
    assert literature.typicality(0.0) == 0.0 and literature.typicality(1e9) == 1.0


def test_the_atoms_near_a_path_are_those_a_sphere_around_each_path_point_holds(literature):
    # one neighbour search for every path point finds what Structure.get_sites_in_sphere finds
    # point by point: each host atom image within reach once, at its distance from each point
    from alem.review.picture import SHOWN_WITHIN_A, _host_near_path, _path_cart

    for hop in literature.hops[::97]:
        path = _path_cart(hop)
        atoms, distances = _host_near_path(hop, path)
        expected: dict[tuple, dict[int, float]] = {}
        for p, point in enumerate(path):
            for site in hop.host.get_sites_in_sphere(point, SHOWN_WITHIN_A):
                key = (site.specie.symbol, *np.round(site.coords, 6))
                expected.setdefault(key, {})[p] = site.nn_distance
        found = {(a.element, *np.round(a.cart, 6)): k for k, a in enumerate(atoms)}
        assert set(found) == set(expected) and distances.shape == (len(path), len(atoms))
        for key, k in found.items():
            reached = {p: float(distances[p, k]) for p in range(len(path)) if np.isfinite(distances[p, k])}
            assert reached == pytest.approx(expected[key], abs=1e-9)
            assert atoms[k].distance_a == pytest.approx(min(expected[key].values()), abs=1e-9)


def test_the_literature_neighbours_descriptors_do_not_read_the_bond_valence_tables():
    # pymatgen reads them when its bond_valence module loads (seconds of a first review); only the
    # v2 descriptors' bond-valence R0 needs them
    import subprocess
    import sys

    code = ("import sys; from alem.graphs.descriptors import hop_descriptors; from alem.hops import load_training_hops; "
            "hop_descriptors(load_training_hops()[0]); print('pymatgen.core.bond_valence' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == ["False"]


def test_bottleneck_and_view_of_a_hand_made_hop(tiny_hop):
    # Li moves 2 Å along x from the origin in a 5 Å cubic cell with O at (0, ½, ½) and (½, ½, ½):
    # the closest O is the (0, ½, ½) one seen from the start, √(2·2.5²) = 3.536 Å away
    hop = tiny_hop("t", ion_x=0.4)
    neck = bottleneck(hop)
    assert neck.min_distance_a == pytest.approx(np.sqrt(2 * 2.5**2), abs=1e-3)
    assert neck.nearest_element == "O" and neck.fraction == pytest.approx(0.0)
    direction, name = view_direction(hop)
    assert abs(direction @ np.array([1.0, 0.0, 0.0])) < 1e-9 and name in "bcyz"  # seen side-on
    assert hop_picture_png(hop).startswith(PNG_MAGIC)


def test_strategy_reasons_and_cost_in_words(tmp_path, li2o_hop):
    assert "disagree most about it: σ 1.50 eV" in strategy_reason("explore", 1.5, 0.3, 1.5, 0.6)
    assert "P(E_m < 0.65 eV) 0.80" in strategy_reason("discover", -0.2, 0.3, 0.2, 0.8)
    assert "σ − μ = +0.30 eV" in strategy_reason("balanced", 0.3, 0.2, 0.5, 0.9)
    from alem.campaign import init_campaign

    config = init_campaign(tmp_path / "c", backend="fireworks")  # vasp_gga: images 8 Å apart, 5 images
    cost = estimate_cost(li2o_hop, config)
    assert cost.n_atoms == 12 * 8 - 1  # the 4.61 Å pristine cell doubled along each axis, one vacancy
    # 2000 core-hours × (95/100)² × 5/5 images: the acquisition's own estimate, from the same function
    assert "95-atom NEB cell, 5 images, vasp:GGA CI-NEB: roughly 1,800 core-hours" in cost.summary
    assert cost.core_hours == pytest.approx(2000.0 * 0.95**2)
    assert "neutral cell: removing Li leaves a hole per unit of its charge; the hole is free" in cost.summary


@pytest.mark.parametrize("kind", ["slurm", "pbs"])
def test_a_batch_backends_cost_is_the_acquisitions_estimate(tmp_path, li2o_hop, kind):
    from alem.campaign import init_campaign
    from alem.campaign.neb_costs import backend_preset_or_none, cost_request_fields

    config = init_campaign(tmp_path / "c", backend=kind)
    config.backend.slurm.preset = config.backend.pbs.preset = "vasp_gga"
    config.costs.aware = True
    cost = estimate_cost(li2o_hop, config)
    assert "runs no calculation" not in cost.summary and "95-atom NEB cell, 5 images" in cost.summary
    acquisition = cost_request_fields([li2o_hop], "dft:GGA", config.costs, backend_preset_or_none(config))
    assert acquisition["cost_core_hours_of"][li2o_hop.hop_id] == pytest.approx(cost.core_hours)
    # a campaign preset with 7 images: the images multiply the cost
    shipped = (Path(__file__).parents[1] / "workflows" / "vasp_gga.toml").read_text()
    (config.campaign_dir / "workflows").mkdir(exist_ok=True)
    (config.campaign_dir / "workflows" / "gga7.toml").write_text(
        shipped.replace('name = "vasp_gga"', 'name = "gga7"').replace("n_images = 5 ", "n_images = 7 "))
    config.backend.slurm.preset = config.backend.pbs.preset = "gga7"
    more = estimate_cost(li2o_hop, config)
    assert backend_preset_or_none(config).neb.n_images == 7 and "7 images" in more.summary
    assert more.core_hours == pytest.approx(cost.core_hours * 7 / 5)


def test_near_duplicate_literature_entries_are_one_row_with_a_note(literature):
    """The issue's case: four identical rows for one compound. Entries that read the same
    (formula, ion, length, barrier, functional) are one distinct hop, noted with the others' ids;
    the k rows shown are k distinct hops."""
    import dataclasses

    from alem.review.page import _agreeing

    hops = literature.hops[:60]
    probe = hops[7]
    copies = [dataclasses.replace(probe, hop_id=f"copy-{i}") for i in range(3)]
    index = LiteratureIndex([*hops, *copies])
    nearest = index.nearest(probe, k=4)
    assert len(nearest) == 4 and len({n.shown_as() for n in nearest}) == 4
    assert nearest[0].hop_id == probe.hop_id and nearest[0].agreeing == ("copy-0", "copy-1", "copy-2")
    assert all(n.hop_id not in {c.hop_id for c in copies} for n in nearest)
    assert "4 entries in the dataset agree (also copy-0, copy-1, copy-2)" in _agreeing(nearest[0].agreeing)

    # the shipped dataset has such near-duplicates: no hop of it lists a row twice
    for hop in literature.hops[::50]:
        rows = [n.shown_as() for n in literature.nearest(hop, k=5)]
        assert len(rows) == len(set(rows)) == 5
