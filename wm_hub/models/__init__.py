"""Backbones: one module per unified-VLM family behind the interface of :mod:`wm_hub.models.base`.

Import the modules by full path (:func:`wm_hub.load_backbone` is the usual entry point); this package imports
nothing itself, so the light modules (:mod:`~wm_hub.models.model_folder`) stay light.
"""
