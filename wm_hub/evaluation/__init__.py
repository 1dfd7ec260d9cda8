"""Evaluation of world models the way the paper does it.

Modules (import them by full path; this package imports nothing heavy):

- :mod:`wm_hub.evaluation.aurora`: the AURORA-BENCH runner (predictions, metrics, ``results.json``).
- :mod:`wm_hub.evaluation.image_metrics`: L1, CLIP-I, CLIP-T and DINO.
- :mod:`wm_hub.evaluation.baselines`: the InstructPix2Pix baseline (copy is in :mod:`wm_hub.evaluation.aurora`).
- :mod:`wm_hub.evaluation.reports`: Markdown tables and plots from one or several ``results.json``.
"""
