"""The stack's components: barrier models that fit, predict and draw joint samples.

One small interface (:class:`~alem.inference.components.BarrierComponent`) that every kind
implements: the GNN members (:mod:`~alem.inference.members`, which also fine-tunes one member),
the descriptor trees and the kernel model, and the trees of the fidelity-aware add-on
(:mod:`~alem.inference.tree_components`); what they read for a set of hops
(:class:`~alem.inference.components.HopInputs`: hop graphs and the frozen-backbone path tensors of
:mod:`~alem.inference.hop_graphs`, descriptors, the backbone's features); how components combine
into one mean and σ (:mod:`~alem.inference.stacking`, :class:`~alem.inference.components.Mixture`)
and where tensors live (:mod:`~alem.inference.device`). :mod:`alem.ensemble` combines components
without knowing their kinds; :mod:`alem.training` runs the recipe (CV, weights, calibration) and
writes model directories. Nothing here imports either.
"""
