"""``alem report``: one self-contained HTML page (PNG plots embedded as base64) about a campaign.

* parity of the current model: its grouped cross-validation (out-of-fold predictions stored with
  the model as ``oof_predictions.npz``; for a version retrained in the loop without CV, the newest
  version that has them, named on the plot);
* parity on the campaign: every usable NEB barrier against the prediction made *before* it was
  computed (the current model's, if it scored the hop before the result arrived, else the
  prediction shown when the hop was proposed), with ±σ error bars;
* learning curve across model versions: each version's cross-validated MAE from its card and
  its prospective MAE on the results that arrived while it was current;
* campaign history: cumulative proposed, approved, computed and good (E_m < 0.65 eV) hops over time;
* tables: hop states, model versions, results.
"""

from __future__ import annotations

import base64
import html
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from alem.hops.hop import GOOD_CONDUCTOR_THRESHOLD_EV

if TYPE_CHECKING:
    from alem.config import CampaignConfig
    from alem.store import Store


@dataclass
class ParityPoint:
    hop_id: str
    barrier_ev: float
    predicted_ev: float
    sigma_ev: float | None
    source: str  # "model vN" or "proposal (model vN)"


def parity_points(store: Store) -> list[ParityPoint]:
    from alem.campaign.approve import latest_proposals

    current = store.current_model()
    current_predictions = store.predictions(current.id) if current else {}
    proposal_of = latest_proposals(store)
    points = []
    for result in store.results(usable=True):
        prediction = current_predictions.get(result.hop_id)
        if prediction is not None and prediction.created_at < result.created_at:
            points.append(ParityPoint(result.hop_id, result.barrier_ev, prediction.mean_ev, prediction.std_ev, f"model v{current.id}"))
            continue
        proposal = proposal_of.get(result.hop_id)
        if proposal is not None and proposal.mean_ev is not None:
            points.append(ParityPoint(
                result.hop_id, result.barrier_ev, proposal.mean_ev, proposal.std_ev, f"proposal (model v{proposal.model_version_id})"
            ))
    return points


def out_of_fold(store: Store) -> tuple[int, np.ndarray, np.ndarray] | None:
    """(model version, reference barriers, out-of-fold mean predictions) of the newest model
    version, current first, whose directory holds cross-validation predictions."""
    from alem.model_dir import CARD_FILENAME, OOF_FILENAME
    from alem.training.recipe import oof_mean_sigma

    for version in sorted(store.model_versions(), key=lambda v: (not v.is_current, -v.id)):
        path = Path(version.path)
        if (path / OOF_FILENAME).is_file() and (path / CARD_FILENAME).is_file():
            y, mean, _ = oof_mean_sigma(path)
            return version.id, np.asarray(y, float), np.asarray(mean, float)
    return None


def learning_curve(store: Store) -> list[dict[str, Any]]:
    """Per model version: CV MAE (card) and prospective MAE on results that arrived while it was
    current, using the predictions it made before each result."""
    from alem.campaign.model_versions import cv_mae_ev

    versions = store.model_versions()
    results = store.results(usable=True)
    rows = []
    for k, version in enumerate(versions):
        until = versions[k + 1].created_at if k + 1 < len(versions) else float("inf")
        predictions = store.predictions(version.id)
        errors = [
            abs(predictions[r.hop_id].mean_ev - r.barrier_ev)
            for r in results
            if version.created_at <= r.created_at < until
            and r.hop_id in predictions and predictions[r.hop_id].created_at < r.created_at
        ]
        rows.append({
            "version": version.id,
            "n_training_hops": version.n_training_hops,
            "cv_mae_ev": cv_mae_ev(version.card),
            "prospective_mae_ev": float(np.mean(errors)) if errors else None,
            "n_prospective": len(errors),
            "created_at": version.created_at,
        })
    return rows


def history_series(store: Store) -> dict[str, list[float]]:
    """Times (Unix s) of each proposal, approval, NEB result and good barrier."""
    first_proposal: dict[str, float] = {}
    for proposal in store.proposals():
        first_proposal.setdefault(proposal.hop_id, proposal.created_at)
    approvals = [d.created_at for d in store.decisions() if d.decision == "approve"]
    results = store.results()
    return {
        "proposed": sorted(first_proposal.values()),
        "approved": sorted(approvals),
        "computed": sorted(r.created_at for r in results if r.usable),
        f"good (E_m < {GOOD_CONDUCTOR_THRESHOLD_EV} eV)": sorted(
            r.created_at for r in results if r.usable and r.barrier_ev < GOOD_CONDUCTOR_THRESHOLD_EV
        ),
    }


# ---------------------------------------------------------------------------- figures
def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return base64.b64encode(buffer.getvalue()).decode()


def _parity_png(plt, x: np.ndarray, y: np.ndarray, yerr: np.ndarray | None, title: str, empty: str,
                xlabel: str, ylabel: str) -> str:
    from alem.parity import draw_parity

    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    draw_parity(ax, x, y, yerr, title=title, empty=empty, xlabel=xlabel, ylabel=ylabel)
    fig.tight_layout()
    png = _png(fig)
    plt.close(fig)
    return png


def _figures(
    points: list[ParityPoint],
    curve: list[dict[str, Any]],
    history: dict[str, list[float]],
    oof: tuple[int, np.ndarray, np.ndarray] | None,
) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {}
    version, y_ref, y_oof = oof if oof is not None else (None, np.array([]), np.array([]))
    figures["cv_parity"] = _parity_png(
        plt, y_ref, y_oof, None, f"model v{version}: grouped CV, MAE {np.abs(y_ref - y_oof).mean():.3f} eV (n={len(y_ref)})"
        if len(y_ref) else "", "no out-of-fold predictions\nstored with the models", "reference barrier (eV)",
        "out-of-fold prediction (eV)",
    )
    x = np.array([p.barrier_ev for p in points])
    y = np.array([p.predicted_ev for p in points])
    err = np.array([p.sigma_ev or 0.0 for p in points])
    figures["parity"] = _parity_png(
        plt, x, y, err, f"MAE {np.abs(x - y).mean():.3f} eV on {len(points)} NEB results" if points else "",
        "no NEB results yet", "NEB barrier (eV)", "predicted before the NEB (eV)",
    )

    fig, ax = plt.subplots(figsize=(4.8, 4.0))
    versions = [row["version"] for row in curve]
    for key, label, marker in (("cv_mae_ev", "cross-validated MAE (model card)", "s"),
                               ("prospective_mae_ev", "MAE on later campaign results", "o")):
        pairs = [(row["version"], row[key]) for row in curve if row[key] is not None]
        if pairs:
            ax.plot(*zip(*pairs), marker=marker, label=label)
    ax.set_xticks(versions or [1])
    ax.set_xlabel("model version")
    ax.set_ylabel("MAE (eV)")
    if any(row["cv_mae_ev"] is not None or row["prospective_mae_ev"] is not None for row in curve):
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no error measured yet", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    figures["learning_curve"] = _png(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    stamps = [t for series in history.values() for t in series]
    start = min(stamps, default=time.time())
    span_s = max(stamps, default=start) - start
    unit, per = ("hours", 3600.0) if span_s > 3 * 3600 else ("minutes", 60.0) if span_s > 120 else ("seconds", 1.0)
    for label, times in history.items():
        if times:
            elapsed = (np.array([start, *times]) - start) / per
            ax.step(elapsed, np.arange(len(times) + 1), where="post", label=label)
    ax.set_xlabel(f"{unit} since the first proposal")
    ax.set_ylabel("hops (cumulative)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    figures["history"] = _png(fig)
    plt.close(fig)
    return figures


# ------------------------------------------------------------------------------ HTML
class _Markup(str):
    """A table cell that is already HTML (escaped where it had to be)."""


def _cell(value: object) -> str:
    return value if isinstance(value, _Markup) else html.escape(str(value))


def _table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _provenance_link(result) -> _Markup:
    from alem.neb.provenance import provenance_summary

    return _Markup(f'<a href="#provenance-{result.id}">{html.escape(provenance_summary(result.provenance))}</a>')


def _provenance_section(results) -> str:
    """Every result's provenance record, each with the anchor its row in the results table links to."""
    from alem.neb.provenance import provenance_lines

    blocks = "".join(
        f'<details id="provenance-{r.id}"><summary>result {r.id}: {html.escape(r.hop_id)}</summary>'
        f"<pre>{html.escape(chr(10).join(provenance_lines(r.provenance)))}</pre></details>"
        for r in results
    )
    return f"<h2>Provenance of each result</h2>\n{blocks}" if blocks else ""


def _f(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _fidelity_section(config: CampaignConfig, store: Store) -> str:
    """Usable results per fidelity, the screening stage and the remaining promise with its trend."""
    from alem.campaign.fidelity_status import fidelity_status, fidelity_status_lines

    data = fidelity_status(config, store)
    counts = data["results_by_fidelity"]
    trend = [[r["round"], r["model_version"], _f(r["expected_good"], 2), _f(r["best_acquisition"], 4)]
             for r in data["promise"]["trend"]]
    lines = "".join(f"<li>{html.escape(line)}</li>" for line in fidelity_status_lines(data))
    return f"""<h2>Fidelities and remaining promise</h2>
<ul>{lines}</ul>
{_table(list(counts), [list(counts.values())]) if counts else ""}
{_table(["round", "model version", "expected good hops left", "best acquisition value"], trend) if trend else ""}
"""


def _core_hours_section(config: CampaignConfig, store: Store) -> str:
    """Core-hours spent per stage and per hop, with the attempts each hop took (the store's ledger)."""
    from alem.campaign.budget import STAGE_NAMES, core_hour_ledger, core_hour_lines

    ledger = core_hour_ledger(store, config.approval, top_hops=10_000)
    lines = "".join(f"<li>{html.escape(line)}</li>" for line in core_hour_lines(ledger))
    stages = [[STAGE_NAMES.get(stage, stage), _f(hours, 1), _f(ledger["last_24h"][stage], 1)]
              for stage, hours in ledger["by_stage"].items()]
    hops = [[row["hop_id"], _f(row["core_hours"], 2), row["attempts"]] for row in ledger["by_hop"]]
    return f"""<h2>Core-hours spent</h2>
<ul>{lines}</ul>
{_table(["stage", "core-hours", "last 24 h"], stages)}
{_table(["hop", "core-hours", "attempts"], hops) if hops else ""}
"""


def render_report(config: CampaignConfig, store: Store) -> str:
    points = parity_points(store)
    curve = learning_curve(store)
    history = history_series(store)
    figures = _figures(points, curve, history, out_of_fold(store))
    counts = store.hop_counts()
    results = store.results()
    host_of = {r.hop_id: r.group for r in store.hops()}
    result_rows = [
        [r.hop_id, host_of.get(r.hop_id, ""), _f(r.barrier_ev), _f(r.reverse_barrier_ev), r.fidelity or "—", r.method,
         "usable" if r.usable else f"failed: {r.failure_reason}", _provenance_link(r)]
        for r in results
    ]
    fidelity_html = _fidelity_section(config, store)
    parity_rows = [[p.hop_id, _f(p.barrier_ev), _f(p.predicted_ev), _f(p.sigma_ev), p.source] for p in points]
    version_rows = [
        [row["version"], row["n_training_hops"] or "—", _f(row["cv_mae_ev"]), _f(row["prospective_mae_ev"]),
         row["n_prospective"], time.strftime("%Y-%m-%d %H:%M", time.localtime(row["created_at"]))]
        for row in curve
    ]
    good = sum(1 for r in results if r.usable and r.barrier_ev < GOOD_CONDUCTOR_THRESHOLD_EV)
    title = f"alem campaign report: {config.campaign.name}"
    img = '<img alt="{0}" src="data:image/png;base64,{1}">'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;font-size:90%}}
th{{background:#f3f3f3}}.figs img{{margin-right:1em;vertical-align:top}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(config.campaign.working_ion)} migration barriers, backend <b>{html.escape(config.backend.kind)}</b>,
written {time.strftime("%Y-%m-%d %H:%M:%S")}. {len([r for r in results if r.usable])} usable NEB results,
{good} with E<sub>m</sub> &lt; {GOOD_CONDUCTOR_THRESHOLD_EV} eV.</p>
<h2>Hops by state</h2>
{_table(list(counts), [list(counts.values())])}
<h2>Current model: parity and learning curve</h2>
<div class="figs">{img.format("cross-validation parity", figures["cv_parity"])}{img.format("campaign parity", figures["parity"])}</div>
<div class="figs">{img.format("learning curve", figures["learning_curve"])}</div>
<p>Left: the model's grouped cross-validation on its training data (out-of-fold predictions).
Right: each NEB barrier of this campaign against the prediction made before it was computed (error bars ±σ).
Learning curve: per model version, the cross-validated MAE from its card and the MAE of its own
predictions on the results that arrived while it was current.</p>
{_table(["model version", "training hops", "CV MAE (eV)", "prospective MAE (eV)", "results scored", "created"], version_rows)}
<h2>Campaign history</h2>
<div class="figs">{img.format("history", figures["history"])}</div>
<h2>NEB results</h2>
{fidelity_html}
{_table(["hop", "host", "barrier (eV)", "reverse (eV)", "fidelity", "method", "status", "provenance"], result_rows)}
{_core_hours_section(config, store)}
<h2>Predictions behind the parity plot</h2>
{_table(["hop", "NEB barrier (eV)", "predicted (eV)", "σ (eV)", "prediction by"], parity_rows)}
{_provenance_section(results)}
</body></html>
"""


def write_report(config: CampaignConfig, out: Path | None = None) -> Path:
    """Write the campaign's report (default ``<state>/report.html``); returns its path."""
    from alem.store import Store

    out = Path(out) if out is not None else config.state_dir / "report.html"
    with Store.open(config.store_path, create=False) as store:
        page = render_report(config, store)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page)
    tmp.replace(out)
    return out
