"""``alem review``: one self-contained HTML page (pictures embedded as base64 PNG, no scripts, no
server) with a card per proposal waiting for a decision."""

from __future__ import annotations

import base64
import html
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING

from alem.review.cards import ReviewCard, review_cards

if TYPE_CHECKING:
    from alem.config import CampaignConfig
    from alem.review.neighbours import LiteratureIndex
    from alem.store import Store

#: Beyond this share of training hops being closer to their own neighbour, a proposal is flagged.
FAR_FROM_DATA = 0.9

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1180px;margin:1.5em auto;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}.lead{color:#555;margin-top:0}
.card{border:1px solid #ccd;border-radius:8px;padding:1em 1.2em;margin:1.2em 0;display:grid;
  grid-template-columns:430px 1fr;gap:1.2em;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.card h2{font-size:1.15em;margin:0 0 .3em}.id{font-family:ui-monospace,monospace;user-select:all;
  background:#f2f2f7;padding:1px 5px;border-radius:4px}
.facts{border-collapse:collapse;margin:.4em 0}.facts td{padding:2px 10px 2px 0;vertical-align:top}
.facts td:first-child{color:#666;white-space:nowrap}
.why{background:#f6f8ff;border-left:3px solid #5a6fd6;padding:.4em .7em;margin:.5em 0}
.far{background:#fff4e5;border-left:3px solid #e08a00;padding:.4em .7em;margin:.5em 0}
table.nb{border-collapse:collapse;font-size:90%;margin:.3em 0}
table.nb td,table.nb th{border:1px solid #ddd;padding:2px 7px;white-space:nowrap}table.nb th{background:#f3f3f3}
pre.cmd{background:#1e1e2a;color:#e8e8f0;padding:.5em .8em;border-radius:5px;user-select:all;
  white-space:pre-wrap;margin:.3em 0;font-size:90%}
.num{text-align:right}img{max-width:100%}
"""


def _f(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _agreeing(hop_ids: tuple[str, ...]) -> str:
    """The note under a literature hop that several dataset entries agree on (the hop is shown
    once): a row of its own across the table, so the table gets no wider."""
    if not hop_ids:
        return ""
    ids = ", ".join(html.escape(h) for h in hop_ids)
    return f'<tr class="agree"><td colspan=7>↑ {len(hop_ids) + 1} entries in the dataset agree (also {ids})</td></tr>'


def _card_html(card: ReviewCard) -> str:
    e = html.escape
    threshold = card.threshold_ev
    picture = base64.b64encode(card.picture_png).decode()
    rows = "".join(
        f"<tr><td>{e(n.hop_id)}</td><td>{e(n.formula)}</td><td>{e(n.working_ion)}</td>"
        f"<td class=num>{_f(n.barrier_ev)}</td><td class=num>{n.hop_length_a:.2f}</td><td>{e(n.xc or '—')}</td>"
        f"<td class=num>{n.distance:.2f}</td></tr>{_agreeing(n.agreeing)}"
        for n in card.neighbours
    )
    far = (
        f'<p class="far">Far from the training data: {card.novelty:.0%} of training hops are closer to their own '
        "nearest neighbour than this hop is to its nearest; trust the prediction less.</p>"
        if card.novelty >= FAR_FROM_DATA else ""
    )
    approve = f"alem approve {shlex.quote(card.hop_id)}"
    reject = f"alem reject {shlex.quote(card.hop_id)} --reason \"...\""
    return f"""<section class="card" id="{e(card.hop_id)}">
<div><img alt="hop {e(card.hop_id)}: the ion's path through the host" src="data:image/png;base64,{picture}"></div>
<div>
<h2><span class="id">{e(card.hop_id)}</span> &nbsp;{e(card.formula)}</h2>
<table class="facts">
<tr><td>prediction</td><td><b>E<sub>m</sub> = {card.mean_ev:.2f} ± {card.std_ev:.2f} eV</b>,
 P(E<sub>m</sub> &lt; {threshold} eV) = {card.prob_below_threshold:.2f}</td></tr>
{f'<tr><td>screening NEB</td><td>{e(card.cheap_barrier)} (cheap fidelity: not a DFT label)</td></tr>' if card.cheap_barrier else ""}
<tr><td>hop</td><td>{e(card.working_ion)}, {card.hop_length_a:.2f} Å; the straight path passes
 {card.min_host_distance_a:.2f} Å from the nearest host atom</td></tr>
{f'<tr><td>host network</td><td>{e(card.host_line)}</td></tr>' if card.host_line else ""}
<tr><td>cell and cost</td><td>{e(card.cost.summary)}</td></tr>
<tr><td>proposed</td><td>{e(card.strategy)}, batch {e(card.batch_id)}, model v{card.model_version_id}
 {("(host " + e(card.host_name) + ")") if card.host_name else ""}</td></tr>
</table>
<p class="why">{e(card.reason)}</p>
{far}
<b>Nearest literature hops</b> (what the prediction leans on; distance in standardised descriptors):
<table class="nb"><tr><th>hop</th><th>formula</th><th>ion</th><th>DFT E<sub>m</sub> (eV)</th><th>length (Å)</th>
<th>functional</th><th>distance</th></tr>{rows}</table>
<pre class="cmd">{e(approve)}
{e(reject)}</pre>
</div>
</section>"""


def render_review(config: CampaignConfig, cards: list[ReviewCard]) -> str:
    e = html.escape
    title = f"alem review: {config.campaign.name}"
    body = "".join(_card_html(card) for card in cards) or (
        "<p>No proposals wait for a decision. <code>alem propose</code> makes a batch.</p>"
    )
    ids = " ".join(shlex.quote(card.hop_id) for card in cards)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title><style>{_STYLE}</style></head><body>
<h1>{e(title)}</h1>
<p class="lead">{len(cards)} proposed {e(config.campaign.working_ion)} hops wait for a decision
({time.strftime("%Y-%m-%d %H:%M")}). Each NEB on backend <b>{e(config.backend.kind)}</b> costs what its card says;
approve the ones worth it. A prefix of an id is enough for <code>alem approve</code> when no other hop shares it.</p>
{body}
{f'<div>Approve all of them:<pre class="cmd">alem approve {e(ids)}</pre></div>' if cards else ""}
</body></html>
"""


def write_review(
    config: CampaignConfig, out: Path | None = None, k_neighbours: int = 5, index: LiteratureIndex | None = None
) -> tuple[Path, int]:
    """Write the review page (default ``<state>/review.html``); returns its path and the number
    of cards. Raises :class:`ReviewError` (nothing written) for a proposal without prediction."""
    from alem.store import Store

    out = Path(out) if out is not None else config.state_dir / "review.html"
    with Store.open(config.store_path, create=False) as store:
        cards = review_cards(store, config, index=index, k_neighbours=k_neighbours)
    page = render_review(config, cards)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page)
    tmp.replace(out)
    return out, len(cards)


def draw_waiting_pictures(store: Store, config: CampaignConfig) -> int:
    """Draw, and keep in the state directory, the picture of every proposal waiting for a decision
    (:func:`~alem.review.picture.kept_pictures`), so the first review page after a batch is proposed
    reads them instead of drawing them (drawing is most of a first page's time). Returns how many
    waiting hops have a picture."""
    from alem.campaign.approve import waiting_proposals
    from alem.review.picture import PICTURES_DIRNAME, kept_pictures

    hop_ids = [p.hop_id for p in waiting_proposals(store)]
    return len(kept_pictures(store.load_hops(hop_ids), config.state_dir / PICTURES_DIRNAME)) if hop_ids else 0
