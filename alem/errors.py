"""The root of every error alem raises on purpose.

Each module keeps its own narrow exception class (``StoreError``, ``ConfigError``, ``HopError``…),
but every one of them derives from :class:`AlemError`, so a caller (the CLI above all) catches one
type and turns it into one message. Classes also keep the builtin they used to be
(``ValueError``, ``FileNotFoundError``…) as a second base: code that caught those still works.
"""

from __future__ import annotations


class AlemError(Exception):
    """An expected failure with a message meant for the user (bad input, bad state, bad config)."""
