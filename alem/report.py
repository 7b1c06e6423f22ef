"""``alem report``: one self-contained HTML page (PNG plots embedded as base64) about a campaign.

* parity of the current model: its grouped cross-validation (out-of-fold predictions stored with
  the model as ``oof_predictions.npz``; for a version retrained in the loop without CV, the newest
  version that has them, named on the plot);
* parity on the campaign, one plot per fidelity: every usable NEB barrier against the prediction
  made *before* it was computed (the current model's, if it scored the hop before the result
  arrived, else the prediction shown when the hop was proposed), with ±σ error bars;
* learning curve across model versions: each version's cross-validated MAE from its card and
  its prospective MAE on the results of each fidelity that arrived while it was current;
* campaign history: cumulative proposed, approved, computed and good (E_m < 0.65 eV) hops over
  time, computed and good per fidelity;
* tables: hop states, model versions, results (an MLIP barrier below 0.1 eV gets a plausibility note).

Every number says which fidelity it is about, and results of different fidelities are never
pooled: the model learns DFT barriers, and its error against CHGNet barriers measures the
distance between two levels of theory as much as the model's own error.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from alem.hops.hop import GOOD_CONDUCTOR_THRESHOLD_EV

#: An MLIP barrier below this is physically possible but more often a path that went wrong
#: (a collapsed or discontinuous band, a spurious minimum): the report says so beside it.
IMPLAUSIBLY_LOW_MLIP_EV = 0.1
#: Shown for a result recorded before alem stored fidelities.
UNKNOWN_FIDELITY = "fidelity not recorded"

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
    fidelity: str = UNKNOWN_FIDELITY  # of the NEB barrier


def fidelity_of(result) -> str:
    """The fidelity label of a stored result, or :data:`UNKNOWN_FIDELITY`."""
    return result.fidelity or UNKNOWN_FIDELITY


def by_fidelity(items, key) -> dict[str, list]:
    """``items`` grouped by ``key(item)``, fidelities in first-seen order."""
    groups: dict[str, list] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def plausibility_note(fidelity: str, barrier_ev: float | None) -> str:
    """A note for a barrier an experienced practitioner would look at twice, else ''."""
    if barrier_ev is not None and fidelity.startswith("mlip") and barrier_ev < IMPLAUSIBLY_LOW_MLIP_EV:
        return (f"below {IMPLAUSIBLY_LOW_MLIP_EV} eV from an MLIP: check the path (a collapsed band or a spurious "
                "minimum looks like this) before trusting it")
    return ""


def parity_points(store: Store) -> list[ParityPoint]:
    from alem.campaign.approve import latest_proposals

    current = store.current_model()
    results = store.results(usable=True)
    # the predictions of the computed hops only: the pool's are most of a large campaign's store
    current_predictions = store.predictions(current.id, hop_ids=[r.hop_id for r in results]) if current else {}
    proposal_of = latest_proposals(store)
    points = []
    for result in results:
        prediction = current_predictions.get(result.hop_id)
        if prediction is not None and prediction.created_at < result.created_at:
            points.append(ParityPoint(result.hop_id, result.barrier_ev, prediction.mean_ev, prediction.std_ev,
                                      f"model v{current.id}", fidelity_of(result)))
            continue
        proposal = proposal_of.get(result.hop_id)
        if proposal is not None and proposal.mean_ev is not None:
            points.append(ParityPoint(
                result.hop_id, result.barrier_ev, proposal.mean_ev, proposal.std_ev, f"proposal (model v{proposal.model_version_id})",
                fidelity_of(result),
            ))
    return points


def out_of_fold(store: Store) -> tuple[int, np.ndarray, np.ndarray] | None:
    """(model version, reference barriers, out-of-fold mean predictions) of the newest model
    version, current first, whose directory holds cross-validation predictions (read with numpy
    alone: the first report after a new version loads no training code)."""
    from alem.out_of_fold import OOF_FILENAME, read_out_of_fold

    for version in sorted(store.model_versions(), key=lambda v: (not v.is_current, -v.id)):
        path = Path(version.path)
        if (path / OOF_FILENAME).is_file():
            oof = read_out_of_fold(path)
            return version.id, np.asarray(oof.y_ev, float), np.asarray(oof.mean_ev, float)
    return None


def learning_curve(store: Store) -> list[dict[str, Any]]:
    """Per model version: CV MAE (card) and, per fidelity, the prospective MAE on results that
    arrived while it was current, using the predictions it made before each result
    (``prospective``: fidelity -> {"mae_ev", "n"})."""
    from alem.campaign.model_versions import cv_mae_ev

    versions = store.model_versions()
    results = store.results(usable=True)
    rows = []
    for k, version in enumerate(versions):
        until = versions[k + 1].created_at if k + 1 < len(versions) else float("inf")
        predictions = store.predictions(version.id, hop_ids=[r.hop_id for r in results])
        scored = [
            r for r in results
            if version.created_at <= r.created_at < until
            and r.hop_id in predictions and predictions[r.hop_id].created_at < r.created_at
        ]
        prospective = {
            fidelity: {"mae_ev": float(np.mean([abs(predictions[r.hop_id].mean_ev - r.barrier_ev) for r in group])),
                       "n": len(group)}
            for fidelity, group in by_fidelity(scored, fidelity_of).items()
        }
        rows.append({
            "version": version.id,
            "n_training_hops": version.n_training_hops,
            "cv_mae_ev": cv_mae_ev(version.card),
            "prospective": prospective,
            "created_at": version.created_at,
        })
    return rows


def history_series(store: Store) -> dict[str, list[float]]:
    """Times (Unix s) of each proposal, approval, and per fidelity each usable NEB result and good barrier."""
    first_proposal: dict[str, float] = {}
    for proposal in store.proposals():
        first_proposal.setdefault(proposal.hop_id, proposal.created_at)
    approvals = [d.created_at for d in store.decisions() if d.decision == "approve"]
    series = {"proposed": sorted(first_proposal.values()), "approved": sorted(approvals)}
    for fidelity, results in by_fidelity(store.results(usable=True), fidelity_of).items():
        series[f"computed ({fidelity})"] = sorted(r.created_at for r in results)
        series[f"good (E_m < {GOOD_CONDUCTOR_THRESHOLD_EV} eV at {fidelity})"] = sorted(
            r.created_at for r in results if r.barrier_ev < GOOD_CONDUCTOR_THRESHOLD_EV
        )
    return series


# ---------------------------------------------------------------------------- figures
#: Where a campaign keeps its report's pictures (under its state directory): a picture is drawn
#: again only when what it shows changed (a new model version, a new result, a host's barrier).
FIGURES_DIRNAME = "report_figures"


class KeptFigures:
    """The report's PNGs (base64) by what they show: ``figure(key, draw)`` reads the picture kept
    under ``key`` (with this module's and the parity plot's code), or draws and keeps it. Pictures
    the report no longer shows are removed by :meth:`prune`."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.used: set[str] = set()
        code = hashlib.sha256(Path(__file__).read_bytes())
        code.update((Path(__file__).parent / "parity.py").read_bytes())
        self._code = code.hexdigest()

    def figure(self, key: object, draw: Callable[[], str]) -> str:
        if self.directory is None:
            return draw()
        path = self.directory / f"{hashlib.sha256(f'{self._code} {key!r}'.encode()).hexdigest()}.png.b64"
        self.used.add(path.name)
        try:
            return path.read_text()
        except OSError:
            pass  # not drawn yet
        png = draw()
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_text(png)
        os.replace(partial, path)  # a report written beside this one never reads half a picture
        return png

    def prune(self) -> None:
        if self.directory is not None and self.directory.is_dir():
            for old in self.directory.glob("*.png.b64"):
                if old.name not in self.used:
                    old.unlink(missing_ok=True)


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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _cv_parity_png(store: Store, trained_on: str) -> str:
    """The cross-validation parity plot of the newest model version with out-of-fold predictions."""
    oof = out_of_fold(store)
    version, y_ref, y_oof = oof if oof is not None else (None, np.array([]), np.array([]))
    return _parity_png(
        _pyplot(), y_ref, y_oof, None, f"model v{version}: grouped CV, MAE {np.abs(y_ref - y_oof).mean():.3f} eV (n={len(y_ref)})"
        if len(y_ref) else "", "no out-of-fold predictions\nstored with the models", f"{trained_on} training label (eV)",
        "out-of-fold prediction (eV)",
    )


def _campaign_parity_png(fidelity: str, x: np.ndarray, y: np.ndarray, err: np.ndarray) -> str:
    return _parity_png(
        _pyplot(), x, y, err, f"vs {fidelity}: MAE {np.abs(x - y).mean():.3f} eV on {len(x)} results", "",
        f"NEB barrier at {fidelity} (eV)", "predicted before the NEB (eV)",
    )


def _figures(
    store: Store,
    points: list[ParityPoint],
    curve: list[dict[str, Any]],
    history: dict[str, list[float]],
    trained_on: str,
    kept: KeptFigures,
) -> dict[str, str]:
    """The report's PNGs: ``cv_parity``, one ``parity:<fidelity>`` per fidelity with results (or
    one ``parity`` saying there are none), ``learning_curve``, ``history``; each drawn only when
    what it shows changed (``kept``). The cross-validation plot changes only with the model
    versions (a version's directory is never rewritten), so its out-of-fold file is read only to draw."""
    versions = [(v.id, v.path, v.is_current) for v in store.model_versions()]
    figures = {"cv_parity": kept.figure(("cv_parity", versions, trained_on), lambda: _cv_parity_png(store, trained_on))}
    for fidelity, group in by_fidelity(points, lambda p: p.fidelity).items():
        x = np.array([p.barrier_ev for p in group])
        y = np.array([p.predicted_ev for p in group])
        err = np.array([p.sigma_ev or 0.0 for p in group])
        figures[f"parity:{fidelity}"] = kept.figure(
            ("parity", fidelity, x.tolist(), y.tolist(), err.tolist()), partial(_campaign_parity_png, fidelity, x, y, err),
        )
    if not points:
        figures["parity"] = kept.figure("no parity", lambda: _parity_png(
            _pyplot(), np.array([]), np.array([]), None, "", "no NEB results yet", "NEB barrier (eV)", "predicted before the NEB (eV)",
        ))
    figures["learning_curve"] = kept.figure(("learning_curve", curve, trained_on), lambda: _learning_curve_png(curve, trained_on))
    figures["history"] = kept.figure(("history", history), lambda: _history_png(history))
    return figures


def _learning_curve_png(curve: list[dict[str, Any]], trained_on: str) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.0))
    versions = [row["version"] for row in curve]
    series = {f"cross-validated MAE on its {trained_on} labels (card)": [(row["version"], row["cv_mae_ev"]) for row in curve]}
    for row in curve:
        for fidelity, measured in row["prospective"].items():
            series.setdefault(f"MAE on later {fidelity} results", []).append((row["version"], measured["mae_ev"]))
    drawn = False
    for (label, pairs), marker in zip(series.items(), "so^vD<>"):
        pairs = [(v, mae) for v, mae in pairs if mae is not None]
        if pairs:
            ax.plot(*zip(*pairs), marker=marker, label=label)
            drawn = True
    ax.set_xticks(versions or [1])
    ax.set_xlabel("model version")
    ax.set_ylabel("MAE (eV)")
    if drawn:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no error measured yet", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    png = _png(fig)
    plt.close(fig)
    return png


def _history_png(history: dict[str, list[float]]) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    stamps = [t for times in history.values() for t in times]
    start = min(stamps, default=time.time())
    span_s = max(stamps, default=start) - start
    unit, per = ("hours", 3600.0) if span_s > 3 * 3600 else ("minutes", 60.0) if span_s > 120 else ("seconds", 1.0)
    # lines that often coincide (every hop computed is good) stay visible: wide pale under narrow dark
    styles = {"proposed": dict(lw=5.0, alpha=0.35), "approved": dict(lw=3.0, alpha=0.7, ls="--"),
              "computed": dict(lw=2.2), "good": dict(lw=1.2, ls=":", marker="o", markersize=3)}
    for label, times in history.items():
        if times:
            elapsed = (np.array([start, *times]) - start) / per
            ax.step(elapsed, np.arange(len(times) + 1), where="post", label=label, **styles[label.split()[0]])
    ax.set_xlabel(f"{unit} since the first proposal")
    ax.set_ylabel("hops (cumulative)")
    if stamps:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "nothing proposed yet", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    png = _png(fig)
    plt.close(fig)
    return png


#: Up to this many hosts the plot names each one on its axis; beyond, hosts are ranked by barrier.
HOSTS_NAMED_ON_PLOT = 40


def _host_points(hosts: list[dict[str, Any]]) -> list[tuple[int, float, float, bool]]:
    """(position in ``hosts``, barrier, σ, every hop computed) of each host with a barrier."""
    points = []
    for x, host in enumerate(hosts):
        spread = host["spread"]
        value = spread["mean_ev"] if spread and spread["mean_ev"] is not None else host["percolation_barrier_ev"]
        if value is not None:
            error = spread["std_ev"] if spread and spread["std_ev"] is not None else 0.0
            points.append((x, float(value), float(error), not host["hops_predicted"]))
    return points


def _ranked_error_bars(ax, points: np.ndarray, colour: str, face: str) -> None:
    """``points`` (rank, barrier, σ rows) as small markers with ±σ bars: one line collection, as
    ``errorbar`` draws them, without its per-point bookkeeping (a second of 26,000 hosts' page)."""
    from matplotlib.collections import LineCollection

    x, value, error = points.T
    bars = np.stack([np.column_stack([x, value - error]), np.column_stack([x, value + error])], axis=1)
    ax.add_collection(LineCollection(bars, colors=colour, linewidths=0.4))
    ax.plot(x, value, "o", color=colour, mfc=face, markersize=2, linestyle="none")


def hosts_png(hosts: list[dict[str, Any]]) -> str:
    """The hosts' percolation barriers: mean ± σ over the joint rows (the point value when every
    hop a network needs is computed: filled markers), against the good-conductor threshold. Up
    to :data:`HOSTS_NAMED_ON_PLOT` hosts each is named on the axis; a screening campaign's
    thousands are ranked by barrier instead (one picture of fixed size, drawn in one call per kind)."""
    plt = _pyplot()
    named = len(hosts) <= HOSTS_NAMED_ON_PLOT
    points = _host_points(hosts)
    if not named:  # ranked: the lowest barriers first
        points = [(rank, value, error, computed) for rank, (_, value, error, computed) in enumerate(sorted(points, key=lambda p: p[1]))]
    fig, ax = plt.subplots(figsize=(max(4.8, 0.45 * len(hosts) + 2) if named else 8.0, 3.8))
    for computed, colour, face in ((True, "tab:blue", "tab:blue"), (False, "tab:orange", "white")):
        kind = [p for p in points if p[3] == computed]
        if kind and named:
            x, value, error, _ = zip(*kind)
            ax.errorbar(x, value, yerr=error, fmt="o", color=colour, mfc=face, capsize=3, markersize=6, elinewidth=1)
        elif kind:
            _ranked_error_bars(ax, np.array([p[:3] for p in kind]), colour, face)
    thresholds = sorted({h["good_barrier_ev"] for h in hosts})
    for threshold in thresholds:
        ax.axhline(threshold, color="grey", ls="--", lw=1)
    ax.plot([], [], "o", color="tab:blue", label="every hop computed")
    ax.plot([], [], "o", color="tab:orange", mfc="white", label="predicted hops (± σ over the joint rows)")
    ax.plot([], [], "--", color="grey", label="good-conductor threshold")
    if named:
        ax.set_xticks(range(len(hosts)), [f"{h['host_id']} {h['formula']}" for h in hosts], rotation=45, ha="right", fontsize=8)
    else:
        ax.set_xlabel(f"{len(points)} hosts with a barrier, ranked by it (the table names them)")
    ax.set_ylabel("percolation barrier (eV)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    png = _png(fig)
    plt.close(fig)
    return png


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


def _hosts_section(config: CampaignConfig, store: Store, kept: KeptFigures, note: Callable[[str], None] | None = None) -> str:
    """One row per host (alem hosts: the kept answers, ``note`` hears when they are refreshed) and
    the plot of their percolation barriers; "" without hosts."""
    if not store.hosts():
        return ""
    from alem.campaign.host_answers import host_table

    hosts = host_table(config, store, note=note, whole=False)
    rows = []
    for h in hosts:
        spread = h["spread"]
        barrier = (f"{spread['mean_ev']:.2f} ± {spread['std_ev']:.2f}" if spread and spread["mean_ev"] is not None
                   else _f(h["percolation_barrier_ev"], 2) if h["percolation_barrier_ev"] is not None else "none")
        network = f"{h['dimensionality']}D {h['directions']}" if h["dimensionality"] else (
            f"error: {h['error']}" if h.get("error") else "unscored" if h["missing_paths"] else "none")
        rows.append([h["host_id"], h["formula"], h["working_ion"], f"{h['hops_computed']}/{h['hops_total']}", network, barrier,
                     _f(h["prob_good"], 2), h["limiting_hop"] or "—"])
    rows_are = next((h["spread"]["rows"] for h in hosts if h["spread"]), "every hop computed")
    png = kept.figure(("hosts", _host_points(hosts), _host_labels(hosts)), partial(hosts_png, hosts))
    caption = ("Each host's percolation barrier (the lowest barrier of a network of hops that reaches a site's periodic "
               f"image): filled, every hop it needs computed; open, mean ± σ over {html.escape(rows_are)} with computed hops "
               "fixed. Dashed: the good-conductor threshold.")
    return f"""<h2>Hosts</h2>
{_table(["host", "formula", "ion", "hops computed / distinct", "network", "percolation barrier (eV)", "P(good)",
         "limiting hop"], rows)}
<div class="figs">{_figure("hosts' percolation barriers", png, caption)}</div>
"""


def _host_labels(hosts: list[dict[str, Any]]) -> list[tuple]:
    """What the hosts' plot shows of them besides their barriers: names (when named), thresholds."""
    names = [(h["host_id"], h["formula"]) for h in hosts] if len(hosts) <= HOSTS_NAMED_ON_PLOT else len(hosts)
    return [names, sorted({h["good_barrier_ev"] for h in hosts})]


def _figure(alt: str, png: str, caption: str) -> str:
    """One plot with its caption right under it (so a caption never depends on the layout)."""
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{png}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _counted(groups: dict[str, int]) -> str:
    return ", ".join(f"{n} at {html.escape(fidelity)}" for fidelity, n in groups.items()) or "none"


def _parity_caption(fidelity: str, group: list[ParityPoint], trained_on: list[str]) -> str:
    from alem.hops.fidelity import matches

    mae_ev = float(np.mean([abs(p.predicted_ev - p.barrier_ev) for p in group]))
    caption = (f"Each {html.escape(fidelity)} NEB barrier of this campaign against the model's prediction made "
               f"before it was computed (error bars ±σ): MAE {mae_ev:.3f} eV on {len(group)} results.")
    if not matches(None if fidelity == UNKNOWN_FIDELITY else fidelity, trained_on):
        caption += (f" The model learns {html.escape(', '.join(trained_on))} labels, not {html.escape(fidelity)}: this "
                    "error measures the gap between the two levels of theory as much as the model's own.")
    return caption


def render_report(config: CampaignConfig, store: Store, note: Callable[[str], None] | None = None) -> str:
    """The report page; ``note`` hears one line when the kept host answers are refreshed."""
    trained_on = list(config.model.train_fidelities)
    trained_text = ", ".join(trained_on)
    points = parity_points(store)
    curve = learning_curve(store)
    history = history_series(store)
    kept = KeptFigures(config.state_dir / FIGURES_DIRNAME)
    figures = _figures(store, points, curve, history, trained_text, kept)
    hosts_html = _hosts_section(config, store, kept, note)
    kept.prune()  # the pictures of an older report (a result since, a new model version) go
    counts = store.hop_counts()
    results = store.results()
    usable = [r for r in results if r.usable]
    usable_by_fidelity = {f: len(group) for f, group in by_fidelity(usable, fidelity_of).items()}
    good_by_fidelity = {
        f: sum(r.barrier_ev < GOOD_CONDUCTOR_THRESHOLD_EV for r in group) for f, group in by_fidelity(usable, fidelity_of).items()
    }
    host_of = {h: store.hop(h).group for h in dict.fromkeys(r.hop_id for r in results)}  # the computed hops' records only
    result_rows = [
        [r.hop_id, host_of.get(r.hop_id, ""), _f(r.barrier_ev), _f(r.reverse_barrier_ev), fidelity_of(r), r.method,
         "usable" if r.usable else f"failed: {r.failure_reason}", plausibility_note(fidelity_of(r), r.barrier_ev),
         _provenance_link(r)]
        for r in results
    ]
    fidelity_html = _fidelity_section(config, store)
    parity_rows = [[p.hop_id, p.fidelity, _f(p.barrier_ev), _f(p.predicted_ev), _f(p.sigma_ev), p.source] for p in points]
    prospective_fidelities = list(dict.fromkeys(f for row in curve for f in row["prospective"]))
    version_rows = [
        [row["version"], row["n_training_hops"] or "—", _f(row["cv_mae_ev"]),
         *[cell for f in prospective_fidelities
           for cell in (_f(row["prospective"].get(f, {}).get("mae_ev")), row["prospective"].get(f, {}).get("n", 0))],
         time.strftime("%Y-%m-%d %H:%M", time.localtime(row["created_at"]))]
        for row in curve
    ]
    version_headers = ["model version", "training hops", f"CV MAE on its {trained_text} labels (eV)",
                       *[h for f in prospective_fidelities for h in (f"MAE on later {f} results (eV)", f"{f} results scored")],
                       "registered"]
    parity_figures = "".join(
        _figure(f"campaign parity at {fidelity}", figures[f"parity:{fidelity}"], _parity_caption(fidelity, group, trained_on))
        for fidelity, group in by_fidelity(points, lambda p: p.fidelity).items()
    ) or _figure("campaign parity", figures["parity"], "No usable NEB result yet: nothing to compare predictions with.")
    cv_figure = _figure("cross-validation parity", figures["cv_parity"], f"The model's grouped cross-validation on its "
                        f"{html.escape(trained_text)} training labels (out-of-fold predictions).")
    title = f"alem campaign report: {config.campaign.name}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;font-size:90%}}
th{{background:#f3f3f3}}figure{{display:inline-block;vertical-align:top;margin:0 1em 1em 0;max-width:530px}}
figure img{{max-width:100%}}figcaption{{font-size:88%;color:#444}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p id="summary">{html.escape(config.campaign.working_ion)} migration barriers, backend <b>{html.escape(config.backend.kind)}</b>,
written {time.strftime("%Y-%m-%d %H:%M:%S")}. <span id="n-usable">{len(usable)}</span> usable NEB results
({_counted(usable_by_fidelity)}); with E<sub>m</sub> &lt; {GOOD_CONDUCTOR_THRESHOLD_EV} eV: {_counted(good_by_fidelity)}.
The model learns from {html.escape(trained_text)} labels; results of other fidelities are counted and plotted apart.</p>
<h2>Hops by state</h2>
{_table(list(counts), [list(counts.values())])}
<h2>Current model: parity and learning curve</h2>
<div class="figs">{cv_figure}{parity_figures}</div>
<div class="figs">{_figure("learning curve", figures["learning_curve"],
    f"Per model version: the cross-validated MAE on its {html.escape(trained_text)} training labels (from its card), and, "
    "one line per fidelity, the MAE of its own predictions on the results of that fidelity that arrived while it was current.")}</div>
{_table(version_headers, version_rows)}
<h2>Campaign history</h2>
<div class="figs">{_figure("history", figures["history"],
    "Cumulative hops proposed and approved, and per fidelity the usable NEB results and the good ones "
    f"(E<sub>m</sub> &lt; {GOOD_CONDUCTOR_THRESHOLD_EV} eV).")}</div>
{fidelity_html}
{hosts_html}
<h2>NEB results</h2>
{_table(["hop", "host", "barrier (eV)", "reverse (eV)", "fidelity", "method", "status", "note", "provenance"], result_rows)
 if result_rows else "<p>No NEB result yet.</p>"}
{_core_hours_section(config, store)}
<h2>Predictions behind the parity plots</h2>
{_table(["hop", "fidelity of the NEB", "NEB barrier (eV)", "predicted (eV)", "σ (eV)", "prediction by"], parity_rows)
 if parity_rows else "<p>No prediction has a NEB result to compare with yet.</p>"}
{_provenance_section(results)}
</body></html>
"""


def write_report(config: CampaignConfig, out: Path | None = None, note: Callable[[str], None] | None = None) -> Path:
    """Write the campaign's report (default ``<state>/report.html``); returns its path. ``note``
    hears one line when the kept host answers are refreshed."""
    from alem.store import Store

    out = Path(out) if out is not None else config.state_dir / "report.html"
    with Store.open(config.store_path, create=False) as store:
        page = render_report(config, store, note)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page)
    tmp.replace(out)
    return out
