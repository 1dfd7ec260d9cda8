"""IDM action prediction (paper Table 1): generate the action of every (source, target) pair and score it.

An inverse-dynamics model generates the action of each pair (greedy, batched; replies appended to the predictions
JSONL as they are made, so a rerun only generates the missing ones) and :mod:`wm_hub.evaluation.text_metrics` scores
them against the reference actions, per subset and overall. ``results.json``::

    {"subsets": {NAME: {"n", "bleu", "rouge1", "rougeL", "bertscore_f1", ...}}, "overall": {...},
     "skipped": [rows skipped for missing images], "predictions": PATH, "config": {...}}
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from typing import Any

from wm_hub.atomic_io import write_json
from wm_hub.evaluation.generation import GenerationEvalConfig, complete_predictions
from wm_hub.evaluation.text_metrics import TextMetricsConfig, compute_text_metrics_by_subset
from wm_hub.evaluation.triplet_sources import EvalTripletsConfig

logger = logging.getLogger(__name__)

MAX_NEW_TOKENS = 48


def evaluate_idm(config: GenerationEvalConfig, data: EvalTripletsConfig, metrics: TextMetricsConfig) -> dict[str, Any]:
    """Generate the missing actions of the triplets in ``data``, score them all and write ``config.out``.

    The BERTScore model runs on ``config.device`` unless ``metrics.bertscore_device`` says otherwise.

    Returns:
        The results, as written to ``config.out``.

    Raises:
        ValueError: A model fine-tuned as an FDM, not a triplet dataset, an unknown subset, rows with missing images
            (``MissingFilesError``, without ``skip_missing``) or a predictions file this run did not write.
        FileNotFoundError: A builder's data folder or a BERTScore baseline file that does not exist.
    """
    from wm_hub.inference.actions import generate_actions
    from wm_hub.inference.prediction import check_trained_task
    from wm_hub.models.loading import load_backbone

    check_trained_task("--model", config.model, "idm")  # before loading anything
    config.check_apart_from("--data", data.data)
    triplets = data.load()
    metrics.check_bertscore_model()  # before generating: offline without the model it would fail at the end
    if triplets.skipped:
        names = ", ".join(f"{bad['id']} ({bad['field']}: {bad['path']})" for bad in triplets.skipped)
        logger.warning("Skipped %d row(s) with missing or unreadable images: %s", len(triplets.skipped), names)
    dataset = triplets.dataset
    if config.limit:
        dataset = dataset.select(range(min(config.limit, len(dataset))))
    subsets = triplets.subsets()[: len(dataset)]
    max_new_tokens = config.max_new_tokens or MAX_NEW_TOKENS

    def predict(idm, indices: list[int]) -> list[dict[str, Any]]:
        rows = dataset.select(indices)
        texts = generate_actions(idm, list(zip(rows["source"], rows["target"])), max_new_tokens=max_new_tokens)
        return [
            {"id": row_id, "subset": subsets[index], "reference": reference, "prediction": text}
            for index, row_id, reference, text in zip(indices, rows["id"], rows["action"], texts)
        ]

    rows = complete_predictions(
        config.predictions_path,
        dataset["id"],
        config.batch_size,
        lambda: load_backbone(config.model, device=config.device, dtype=config.dtype),
        predict,
        desc="IDM actions",
    )
    if metrics.bertscore_device is None:
        metrics = replace(metrics, bertscore_device=config.device)
    predictions, references = [row["prediction"] for row in rows], [row["reference"] for row in rows]
    scores = compute_text_metrics_by_subset(predictions, references, [row["subset"] for row in rows], metrics)
    overall = scores.pop("all")
    results = {
        "subsets": scores,
        "overall": overall,
        "skipped": triplets.skipped,
        "predictions": str(config.predictions_path),
        "config": {
            "model": config.model,
            "data": triplets.description,
            "max_new_tokens": max_new_tokens,
            "decoding": "greedy",
            "metrics": asdict(metrics),
        },
    }
    write_json(config.out, results)
    return results
