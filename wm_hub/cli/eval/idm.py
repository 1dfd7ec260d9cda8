"""``wm-hub eval idm``: IDM action prediction scored by BLEU, ROUGE-1, ROUGE-L and BERTScore (paper Table 1)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wm_hub.atomic_io import read_jsonl_log, write_json
from wm_hub.cli._checks import check_trained_task
from wm_hub.cli.eval._arguments import check_generation_arguments


def _split_list(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def _read_predictions(path: Path) -> dict[str, dict]:
    """Predictions already made (resume); a last line cut short by a crash is dropped."""
    try:
        rows = read_jsonl_log(path)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    done = {}
    for number, row in enumerate(rows, 1):
        if "id" not in row:
            raise SystemExit(f"error: {path}: row {number} is not a prediction row; delete the file to redo")
        done[row["id"]] = row
    return done


def _eval_idm(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from wm_hub.data.build_report import MissingFilesError
    from wm_hub.evaluation.text_metrics import TextMetricsConfig, compute_text_metrics_by_subset, config_summary
    from wm_hub.evaluation.triplet_sources import load_eval_triplets
    from wm_hub.inference.actions import generate_actions
    from wm_hub.models.loading import load_backbone

    predictions_path = check_generation_arguments(args)
    check_trained_task("--model", args.model, "idm")
    try:
        metrics_config = TextMetricsConfig(
            metrics=_split_list(args.metrics) or ("bleu", "rouge", "bertscore"),
            bertscore_model=args.bertscore_model,
            bertscore_num_layers=args.bertscore_num_layers,
            bertscore_rescale=not args.no_bertscore_rescale,
            bertscore_baseline_path=args.bertscore_baseline,
            device=args.device,
        )
        triplets = load_eval_triplets(
            args.data,
            split=args.split,
            builder=args.builder,
            config=args.config,
            subsets=_split_list(args.subsets),
            skip_missing=args.skip_missing,
        )
    except (ValueError, FileNotFoundError, MissingFilesError) as error:
        raise SystemExit(f"error: {error}") from None
    if triplets.skipped:
        names = ", ".join(f"{bad['id']} ({bad['field']}: {bad['path']})" for bad in triplets.skipped)
        print(f"Skipped {len(triplets.skipped)} row(s) with missing or unreadable images: {names}", file=sys.stderr)
    dataset = triplets.dataset
    if args.limit:
        dataset = dataset.select(range(min(args.limit, len(dataset))))
    subsets = triplets.subsets()[: len(dataset)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = _read_predictions(predictions_path)
    todo = [index for index, id in enumerate(dataset["id"]) if id not in done]
    if todo:
        idm = load_backbone(args.model, device=args.device, dtype=args.dtype)
        with predictions_path.open("a") as handle:
            for start in tqdm(range(0, len(todo), args.batch_size), desc="IDM actions", unit="batch"):
                rows = dataset.select(todo[start : start + args.batch_size])
                texts = generate_actions(
                    idm, list(zip(rows["source"], rows["target"])), max_new_tokens=args.max_new_tokens
                )
                for index, row_id, reference, text in zip(
                    todo[start : start + args.batch_size], rows["id"], rows["action"], texts
                ):
                    entry = {"id": row_id, "subset": subsets[index], "reference": reference, "prediction": text}
                    done[row_id] = entry
                    handle.write(json.dumps(entry) + "\n")
                handle.flush()
    ordered = [done[id] for id in dataset["id"]]
    try:
        scores = compute_text_metrics_by_subset(
            [row["prediction"] for row in ordered],
            [row["reference"] for row in ordered],
            [row["subset"] for row in ordered],
            metrics_config,
        )
    except FileNotFoundError as error:
        raise SystemExit(f"error: {error}") from None
    overall = scores.pop("all")
    results = {
        "subsets": scores,
        "overall": overall,
        "skipped": triplets.skipped,
        "predictions": str(predictions_path),
        "config": {
            "model": args.model,
            "data": triplets.description,
            "max_new_tokens": args.max_new_tokens,
            "decoding": "greedy",
            "metrics": config_summary(metrics_config),
        },
    }
    write_json(out, results)
    print(json.dumps({"overall": overall, "results": str(out), "predictions": str(predictions_path)}, indent=2))
    return 0


def register(tasks) -> None:
    """Add ``wm-hub eval idm``."""
    parser = tasks.add_parser(
        "idm",
        help="IDM action prediction: BLEU, ROUGE-1, ROUGE-L, BERTScore against reference actions (paper Table 1)",
        description="Generate the action of every (source, target) pair with an inverse-dynamics model (greedy,\n"
        "batched) and score it against the reference action: corpus BLEU (sacrebleu), mean ROUGE-1 and ROUGE-L\n"
        "F-measures (rouge_score) and mean BERTScore (bert_score), per subset and overall, with wm-hub's offline\n"
        "`evaluate` metric modules. BERTScore is rescaled with bert_score's baseline by default (the paper's\n"
        "0-1 scale); a local BERTScore model needs --bertscore-num-layers and --no-bertscore-rescale (or\n"
        "--bertscore-baseline). Predictions go to OUT's .predictions.jsonl (or --predictions) as they are made:\n"
        "a rerun only generates the missing ones.\n"
        "--data: an AURORA checkout (test.json: AURORA-BENCH), a folder written by `wm-hub data build`, a Hub\n"
        "dataset id, or a builder's data folder with --builder.",
        epilog="examples:\n"
        "  wm-hub eval idm --model my-idm --data AURORA --out idm.json\n"
        "  wm-hub eval idm --model my-idm --data aurora-bench/ --split test --metrics bleu,rouge --out idm.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="IDM checkpoint folder or Hub id")
    parser.add_argument("--data", required=True, help="AURORA checkout, dataset folder or Hub id")
    parser.add_argument("--out", required=True, help="results JSON file")
    parser.add_argument("--predictions", help="predictions JSONL (default: OUT with suffix .predictions.jsonl)")
    parser.add_argument("--split", help="split of a dataset (default: test)")
    parser.add_argument("--builder", help="run this registered dataset builder on --data")
    parser.add_argument("--config", help="builder or dataset config (AURORA: bench)")
    parser.add_argument("--subsets", help="comma-separated subsets to keep")
    parser.add_argument("--skip-missing", action="store_true", help="skip rows whose images are missing")
    parser.add_argument("--limit", type=int, help="evaluate only the first N triplets")
    parser.add_argument("--metrics", help="comma-separated: bleu,rouge,bertscore (default: all)")
    parser.add_argument(
        "--bertscore-model", default="roberta-large", help="BERTScore model id or folder (default: roberta-large)"
    )
    parser.add_argument("--bertscore-num-layers", type=int, help="BERTScore layer (needed for a local folder)")
    parser.add_argument("--no-bertscore-rescale", action="store_true", help="report raw BERTScore")
    parser.add_argument("--bertscore-baseline", help="BERTScore baseline TSV for models bert_score has none for")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per generate call (default: 8)")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="longest action in tokens (default: 48)")
    parser.add_argument("--device", help="torch device of the IDM and BERTScore model (default: CPU)")
    parser.add_argument("--dtype", help="LM dtype, e.g. bfloat16 (default: checkpoint's)")
    parser.set_defaults(func=_eval_idm)
