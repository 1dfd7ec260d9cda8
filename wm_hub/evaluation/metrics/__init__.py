"""IDM text metrics as ``evaluate`` modules shipped with wm-hub, so they load offline.

``evaluate.load("bleu")`` fetches its script from the Hub; these folders hold wm-hub's own ``evaluate.Metric``
scripts over the same libraries (sacrebleu, rouge_score, bert_score) and load with ``evaluate.load(<folder>)``::

    import evaluate
    from wm_hub.evaluation.metrics import metric_path

    bleu = evaluate.load(metric_path("bleu"))
    bleu.compute(predictions=["open the door"], references=["open the door"])  # {"bleu": 1.0, ...}
"""

from __future__ import annotations

from pathlib import Path

METRICS = ("bleu", "rouge", "bertscore")


def metric_path(name: str) -> str:
    """The folder of the wm-hub metric ``name`` (one of :data:`METRICS`), for ``evaluate.load``.

    Raises:
        ValueError: ``name`` is not a wm-hub metric.
    """
    if name not in METRICS:
        raise ValueError(f"unknown wm-hub text metric {name!r}; choose one of {list(METRICS)}")
    return str(Path(__file__).resolve().parent / name)
