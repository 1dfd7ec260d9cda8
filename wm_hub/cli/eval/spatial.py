"""``wm-hub eval spatial``: multiple-choice spatial reasoning accuracy with greedy decoding (paper Table 2)."""

from __future__ import annotations

import json

from wm_hub.cli._tasks import Task


def _eval_spatial(config, questions) -> int:
    from wm_hub.evaluation.spatial import evaluate_spatial

    try:
        results = evaluate_spatial(config, questions)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    shown = {key: results[key] for key in ("accuracy", "correct", "n", "unparsed")}
    print(json.dumps({**shown, "results": config.out}, indent=2))
    return 0


def _configs() -> tuple[type, ...]:
    from wm_hub.evaluation.generation import GenerationEvalConfig
    from wm_hub.evaluation.spatial import SpatialQuestionsConfig

    return (GenerationEvalConfig, SpatialQuestionsConfig)


TASKS = (
    Task(
        words=("eval", "spatial"),
        help="spatial reasoning: multiple-choice accuracy with greedy decoding (SpatialMQA, EmbSpatial-Bench)",
        configs=_configs,
        run=_eval_spatial,
        description="Ask the model each multiple-choice question about an image (image block, question, lettered "
        "options, 'Answer with the option's letter.'), decode greedily and parse the letter (or the one option the "
        "reply names); unparsed replies count as wrong. Reports accuracy (%) overall and per category, and the "
        "number of unparsed replies. Replies go to OUT's .predictions.jsonl as they are made (a rerun resumes).\n\n"
        "Formats: plain {image, question, choices, answer: letter | index | text, id?, category?}; spatialmqa "
        "{image, question, options, answer: text}; embspatial {question_id, image: base64 | path, question, "
        "answer_options, answer: index, relation}. Image paths are relative to --image-dir (default: the data "
        "file's folder). Bad rows stop the run with one error naming each row and field. --config run.yaml reads "
        "the same options from YAML.",
        epilog="examples:\n"
        "  wm-hub eval spatial --model my-fdm --data SpatialMQA/test.jsonl --format spatialmqa --image-dir coco/ "
        "--out smqa.json\n"
        "  wm-hub eval spatial --model my-fdm --data embspatial_bench.json --format embspatial --out emb.json",
    ),
)
