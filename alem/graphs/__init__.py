"""Hop and crystal graphs in PyG.

The names are imported on first use (PEP 562): :mod:`alem.graphs.crystal_graph` imports torch and
PyG, while the review page's literature index reads only :mod:`alem.graphs.descriptors` (numpy).
"""

from typing import TYPE_CHECKING

from alem import lazy_attributes

if TYPE_CHECKING:  # what type checkers and editors see; at run time names load on first use
    from alem.graphs.crystal_graph import GraphSettings, HopData, crystal_graph, hop_graph

_LAZY = {name: "crystal_graph" for name in ("GraphSettings", "HopData", "crystal_graph", "hop_graph")}

__all__ = ["GraphSettings", "HopData", "crystal_graph", "hop_graph"]

__getattr__ = lazy_attributes(__name__, _LAZY)
