"""Hop and crystal graphs in PyG."""

from alem.graphs.crystal_graph import GraphSettings, HopData, crystal_graph, hop_graph

__all__ = ["GraphSettings", "HopData", "crystal_graph", "hop_graph"]
