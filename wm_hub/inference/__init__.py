"""Inference: batched image generation, action decoding and scoring, and the forward/inverse-dynamics pipelines.

Import the modules by full path; this package imports nothing itself (``import wm_hub`` registers the pipelines
through the light :mod:`~wm_hub.inference.registration`).
"""
