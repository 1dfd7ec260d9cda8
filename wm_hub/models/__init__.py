"""Backbones: one module per unified-VLM family behind the interface of :mod:`wm_hub.models.base`."""

from wm_hub.models.base import Backbone, BackboneConfig, PromptFormat, SequenceExample
from wm_hub.models.loading import load_backbone

__all__ = ["Backbone", "BackboneConfig", "PromptFormat", "SequenceExample", "load_backbone"]
