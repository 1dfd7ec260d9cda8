"""Evaluation of world models the way the paper does it.

Modules (import them by full path; this package imports nothing heavy):

- :mod:`wm_hub.evaluation.aurora`: the AURORA-BENCH runner (predictions, metrics, ``results.json``).
- :mod:`wm_hub.evaluation.image_metrics`: L1, CLIP-I, CLIP-T and DINO.
- :mod:`wm_hub.evaluation.baselines`: the InstructPix2Pix baseline (copy is in :mod:`wm_hub.evaluation.aurora`).
- :mod:`wm_hub.evaluation.reports`: Markdown tables and plots from one or several ``results.json``.
- :mod:`wm_hub.evaluation.generation`: what the generating benchmarks share (settings, the resumable predictions).
- :mod:`wm_hub.evaluation.idm`: IDM action prediction scored by :mod:`wm_hub.evaluation.text_metrics`.
- :mod:`wm_hub.evaluation.spatial`: multiple-choice spatial reasoning.
- :mod:`wm_hub.evaluation.probe`: the trajectory-preference probe.
"""

from __future__ import annotations

from collections.abc import Sequence


def split_names(values: str | Sequence[str]) -> list[str]:
    """Names given as a list, comma-separated, or both: ``["l1,judge"]``, ``["l1", "judge"]`` and ``"l1,judge"``
    are ``["l1", "judge"]`` (so ``--metrics l1,judge`` and ``--metrics l1 judge`` both work)."""
    values = [values] if isinstance(values, str) else values
    return [name.strip() for value in values for name in value.split(",") if name.strip()]
