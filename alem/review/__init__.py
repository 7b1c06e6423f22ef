"""The review page: one card per proposal waiting for a decision (``alem review``)."""

from alem.review.cards import ReviewCard, ReviewError, review_cards, strategy_reason, waiting_proposals
from alem.review.neighbours import LiteratureIndex, NeighbourHop
from alem.review.page import render_review, write_review

__all__ = [
    "LiteratureIndex", "NeighbourHop", "ReviewCard", "ReviewError", "render_review", "review_cards",
    "strategy_reason", "waiting_proposals", "write_review",
]
