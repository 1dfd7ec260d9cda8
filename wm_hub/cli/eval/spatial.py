"""``wm-hub eval spatial``: multiple-choice spatial reasoning accuracy with greedy decoding (paper Table 2)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wm_hub.atomic_io import read_jsonl_log, write_json
from wm_hub.cli.eval._arguments import check_generation_arguments


def _eval_spatial(args: argparse.Namespace) -> int:
    from wm_hub.evaluation.spatial import SpatialConfig, accuracy_report, answer_questions, read_questions
    from wm_hub.models.loading import load_backbone

    predictions_path = check_generation_arguments(args)
    try:
        questions = read_questions(args.data, args.format, args.image_dir)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    if args.limit:
        questions = questions[: args.limit]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict] = {}
    try:
        rows = read_jsonl_log(predictions_path)  # a last line cut short by a crash is redone
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    for number, row in enumerate(rows, 1):
        if "id" not in row:
            raise SystemExit(f"error: {predictions_path}: row {number} is not a prediction row")
        done[row["id"]] = row
    todo = [question for question in questions if question.id not in done]
    if todo:
        backbone = load_backbone(args.model, device=args.device, dtype=args.dtype)
        config = SpatialConfig(batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
        with predictions_path.open("a") as handle:
            for start in range(0, len(todo), args.batch_size):
                for row in answer_questions(backbone, todo[start : start + args.batch_size], config):
                    done[row["id"]] = row
                    handle.write(json.dumps(row) + "\n")
                handle.flush()
    rows = [done[question.id] for question in questions]
    report = accuracy_report(rows)
    results = {
        **report,
        "predictions": str(predictions_path),
        "config": {
            "model": args.model,
            "data": args.data,
            "format": args.format,
            "decoding": "greedy",
            "max_new_tokens": args.max_new_tokens,
        },
    }
    write_json(out, results)
    shown = {key: report[key] for key in ("accuracy", "correct", "n", "unparsed")}
    print(json.dumps({**shown, "results": str(out)}, indent=2))
    return 0


def register(tasks) -> None:
    """Add ``wm-hub eval spatial``."""
    parser = tasks.add_parser(
        "spatial",
        help="spatial reasoning: multiple-choice accuracy with greedy decoding (SpatialMQA, EmbSpatial-Bench)",
        description="Ask the model each multiple-choice question about an image (image block, question, lettered\n"
        "options, 'Answer with the option's letter.'), decode greedily and parse the letter (or the one option\n"
        "the reply names); unparsed replies count as wrong. Reports accuracy (%) overall and per category, and\n"
        "the number of unparsed replies. Replies go to OUT's .predictions.jsonl as they are made (a rerun\n"
        "resumes). Formats: plain {image, question, choices, answer: letter | index | text, id?, category?};\n"
        "spatialmqa {image, question, options, answer: text}; embspatial {question_id, image: base64 | path,\n"
        "question, answer_options, answer: index, relation}. Image paths are relative to --image-dir (default:\n"
        "the data file's folder). Bad rows stop the run with one error naming each row and field.",
        epilog="examples:\n"
        "  wm-hub eval spatial --model my-fdm --data SpatialMQA/test.jsonl --format spatialmqa --image-dir coco/ "
        "--out smqa.json\n"
        "  wm-hub eval spatial --model my-fdm --data embspatial_bench.json --format embspatial --out emb.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="checkpoint folder or Hub id")
    parser.add_argument("--data", required=True, help="questions: JSONL file or JSON list")
    parser.add_argument("--format", choices=("plain", "spatialmqa", "embspatial"), default="plain")
    parser.add_argument("--image-dir", help="folder image paths are relative to (default: the data file's)")
    parser.add_argument("--out", required=True, help="results JSON file")
    parser.add_argument("--predictions", help="replies JSONL (default: OUT with suffix .predictions.jsonl)")
    parser.add_argument("--limit", type=int, help="ask only the first N questions")
    parser.add_argument("--batch-size", type=int, default=8, help="questions per generate call (default: 8)")
    parser.add_argument("--max-new-tokens", type=int, default=8, help="longest reply in tokens (default: 8)")
    parser.add_argument("--device", help="torch device (default: CPU)")
    parser.add_argument("--dtype", help="LM dtype, e.g. bfloat16 (default: checkpoint's)")
    parser.set_defaults(func=_eval_spatial)
