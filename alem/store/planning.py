"""Model versions, predictions, proposals and the people's decisions on them."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alem.store.core import StoreCore, _dumps
from alem.store.records import Decision, ModelVersion, Prediction, Proposal, ProposalInput
from alem.store.states import StoreError

#: Hop ids per query when predictions of some hops are read (well below SQLite's variable limit).
PREDICTIONS_PER_QUERY = 500


class PlanningTables(StoreCore):
    # ------------------------------------------------------------------ models
    def add_model_version(
        self,
        path: str | Path,
        card: dict[str, Any] | None = None,
        dataset_hash: str | None = None,
        n_training_hops: int | None = None,
        make_current: bool = True,
    ) -> int:
        """Register a trained ensemble; by default it becomes the current model."""
        with self.transaction():
            if make_current:
                self._conn.execute("UPDATE model_versions SET is_current = 0 WHERE is_current = 1")
            cursor = self._conn.execute(
                "INSERT INTO model_versions (path, card_json, dataset_hash, n_training_hops, created_at, is_current) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (str(path), _dumps(card or {}), dataset_hash, n_training_hops, self.now(), int(make_current)),
            )
            model_id = int(cursor.lastrowid)
            self._event(
                "model_added",
                f"model version {model_id} registered ({path})" + (", now current" if make_current else ""),
                payload={"dataset_hash": dataset_hash, "n_training_hops": n_training_hops},
            )
            return model_id

    def model_version(self, model_version_id: int) -> ModelVersion:
        row = self._conn.execute("SELECT * FROM model_versions WHERE id = ?", (model_version_id,)).fetchone()
        if row is None:
            raise StoreError(f"no model version {model_version_id} in {self.path}")
        return ModelVersion.from_row(row)

    def current_model(self) -> ModelVersion | None:
        row = self._conn.execute("SELECT * FROM model_versions WHERE is_current = 1").fetchone()
        return ModelVersion.from_row(row) if row else None

    def model_versions(self) -> list[ModelVersion]:
        return [ModelVersion.from_row(r) for r in self._query("SELECT * FROM model_versions ORDER BY id")]

    # ------------------------------------------------------------- predictions
    def record_predictions(
        self,
        model_version_id: int,
        hop_ids: Sequence[str],
        mean_ev: Sequence[float],
        std_ev: Sequence[float],
        prob_good: Sequence[float] | None = None,
    ) -> int:
        """Store (or replace) one model version's predictions for hops; NaN/inf is refused."""
        n = len(hop_ids)
        if len(mean_ev) != n or len(std_ev) != n or (prob_good is not None and len(prob_good) != n):
            raise StoreError(f"record_predictions: {n} hop ids but arrays of other lengths")
        probs = list(prob_good) if prob_good is not None else [None] * n
        with self.transaction():
            self.model_version(model_version_id)
            now = self.now()
            for hop_id, mean, std, prob in zip(hop_ids, mean_ev, std_ev, probs):
                mean, std = float(mean), float(std)
                if not (math.isfinite(mean) and math.isfinite(std)) or std < 0:
                    raise StoreError(f"prediction for hop {hop_id}: mean {mean}, std {std} (must be finite, std >= 0)")
                self._hop_row(hop_id)
                self._conn.execute(
                    "INSERT OR REPLACE INTO predictions (hop_id, model_version_id, mean_ev, std_ev, prob_good, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (hop_id, model_version_id, mean, std, None if prob is None else float(prob), now),
                )
            self._event("predictions", f"model version {model_version_id} predicted {n} hops")
        return n

    def predictions(
        self, model_version_id: int | None = None, hop_ids: Sequence[str] | None = None
    ) -> dict[str, Prediction]:
        """Predictions of one model version (default: the current one), keyed by hop id."""
        if model_version_id is None:
            current = self.current_model()
            if current is None:
                return {}
            model_version_id = current.id
        if hop_ids is None:
            rows = self._query("SELECT * FROM predictions WHERE model_version_id = ?", (model_version_id,))
            return {r["hop_id"]: Prediction.from_row(r) for r in rows}
        wanted = list(dict.fromkeys(hop_ids))
        found = {}
        for start in range(0, len(wanted), PREDICTIONS_PER_QUERY):  # by primary key: a page reads its hops only
            chunk = wanted[start : start + PREDICTIONS_PER_QUERY]
            rows = self._query(
                f"SELECT * FROM predictions WHERE model_version_id = ? AND hop_id IN ({','.join('?' * len(chunk))})",
                (model_version_id, *chunk),
            )
            found.update((r["hop_id"], Prediction.from_row(r)) for r in rows)
        return found

    def predicted_pool(self, model_version_id: int, states: Sequence[str]) -> tuple[list[tuple[str, float, float]], int]:
        """(working ion, μ, σ) of every hop in ``states`` that ``model_version_id`` predicted, and
        how many hops in ``states`` it did not: one join, no hop records built (a 10^5-hop pool
        is read in well under a second)."""
        marks = ", ".join("?" * len(states))
        rows = self._conn.execute(
            f"SELECT h.working_ion, p.mean_ev, p.std_ev FROM hops h JOIN predictions p "
            f"ON p.hop_id = h.hop_id AND p.model_version_id = ? WHERE h.state IN ({marks})", (model_version_id, *states),
        ).fetchall()
        (n_hops,) = self._conn.execute(f"SELECT COUNT(*) FROM hops WHERE state IN ({marks})", tuple(states)).fetchone()
        return [tuple(r) for r in rows], n_hops - len(rows)

    # --------------------------------------------------------------- proposals
    @staticmethod
    def new_batch_id() -> str:
        return time.strftime("b%Y%m%d-%H%M%S-", time.gmtime()) + uuid.uuid4().hex[:6]

    def add_proposals(
        self,
        batch_id: str,
        strategy: str,
        items: Sequence[ProposalInput],
        model_version_id: int | None = None,
    ) -> list[Proposal]:
        """Record a proposed batch; each hop moves candidate -> proposed (all or nothing)."""
        proposals = []
        with self.transaction():
            for item in items:
                self._move_hop(item.hop_id, "propose")
                cursor = self._conn.execute(
                    "INSERT INTO proposals (batch_id, hop_id, strategy, score, mean_ev, std_ev, model_version_id, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (batch_id, item.hop_id, strategy, float(item.score), item.mean_ev, item.std_ev, model_version_id, self.now()),
                )
                row = self._conn.execute("SELECT * FROM proposals WHERE id = ?", (cursor.lastrowid,)).fetchone()
                proposals.append(Proposal.from_row(row))
                sigma = f", σ {item.std_ev:.3f}" if item.std_ev is not None else ""
                mean = f"mean {item.mean_ev:.3f} eV" if item.mean_ev is not None else "no prediction"
                self._event(
                    "proposed",
                    f"hop {item.hop_id} proposed in batch {batch_id} ({strategy}, score {item.score:.4g}, {mean}{sigma})",
                    hop_id=item.hop_id,
                    payload={"batch_id": batch_id, "proposal_id": proposals[-1].id},
                )
        return proposals

    def proposals(self, batch_id: str | None = None, hop_id: str | None = None) -> list[Proposal]:
        rows = self._select("proposals", {"batch_id": batch_id, "hop_id": hop_id}, "id")
        return [Proposal.from_row(r) for r in rows]

    def withdraw_proposals(self, hop_ids: Sequence[str], reason: str) -> None:
        """Proposed hops back to candidate (e.g. the batch went stale after retraining)."""
        with self.transaction():
            for hop_id in hop_ids:
                self._move_hop(hop_id, "withdraw")
                self._event("withdrawn", f"proposal of hop {hop_id} withdrawn: {reason}", hop_id=hop_id)

    # --------------------------------------------------------------- decisions
    def _decide(self, hop_ids: Sequence[str], action: str, who: str, reason: str | None) -> list[Decision]:
        if not who:
            raise StoreError(f"{action}: say who decides (who must not be empty)")
        decisions = []
        with self.transaction():
            for hop_id in hop_ids:
                self._move_hop(hop_id, action)
                if action in ("approve", "reject"):
                    proposal = self._conn.execute(
                        "SELECT id FROM proposals WHERE hop_id = ? ORDER BY id DESC LIMIT 1", (hop_id,)
                    ).fetchone()
                    cursor = self._conn.execute(
                        "INSERT INTO decisions (hop_id, proposal_id, decision, who, reason, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (hop_id, proposal["id"] if proposal else None, action, who, reason, self.now()),
                    )
                    row = self._conn.execute("SELECT * FROM decisions WHERE id = ?", (cursor.lastrowid,)).fetchone()
                    decisions.append(Decision.from_row(row))
                past = {"approve": "approved", "reject": "rejected", "reopen": "reopened"}[action]
                self._event(
                    past,
                    f"hop {hop_id} {past} by {who}" + (f": {reason}" if reason else ""),
                    hop_id=hop_id,
                    payload={"who": who, "reason": reason},
                )
        return decisions

    def approve(self, hop_ids: Sequence[str], who: str, reason: str | None = None) -> list[Decision]:
        """Approve hops for NEB (from candidate, proposed or failed); all or nothing."""
        return self._decide(list(hop_ids), "approve", who, reason)

    def reject(self, hop_ids: Sequence[str], who: str, reason: str | None = None) -> list[Decision]:
        """Reject hops (from candidate, proposed or approved-but-not-submitted); all or nothing."""
        return self._decide(list(hop_ids), "reject", who, reason)

    def reopen(self, hop_ids: Sequence[str], who: str, reason: str | None = None) -> None:
        """Rejected hops back to candidate."""
        self._decide(list(hop_ids), "reopen", who, reason)

    def decisions(self, hop_id: str | None = None) -> list[Decision]:
        sql, params = "SELECT * FROM decisions", []
        if hop_id is not None:
            sql, params = sql + " WHERE hop_id = ?", [hop_id]
        return [Decision.from_row(r) for r in self._query(sql + " ORDER BY id", params)]
