"""Graph neural networks (PyG)."""

from alem.nn.backbone import Backbone, BackboneConfig
from alem.nn.models import BarrierModel, PropertyModel

__all__ = ["Backbone", "BackboneConfig", "BarrierModel", "PropertyModel"]
