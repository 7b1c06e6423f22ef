"""Inference: from trained barrier models to barrier predictions.

Everything a loaded model needs to predict, and nothing that trains: hop graphs and the
frozen-backbone path tensors (:mod:`~alem.inference.hop_graphs`), one GNN member's prediction
(:mod:`~alem.inference.members`), the descriptor-tree components (:mod:`~alem.inference.trees`),
how components combine into one mean and σ (:mod:`~alem.inference.stacking`) and where tensors
live (:mod:`~alem.inference.device`). :mod:`alem.training` and :mod:`alem.ensemble` import from
here; nothing here imports them.
"""
