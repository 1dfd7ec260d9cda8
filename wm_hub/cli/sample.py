"""``wm-hub sample``: stratified top-K sampling of IDM-annotated pairs (paper Algorithm 1)."""

from __future__ import annotations

import argparse
import json


def _sample(args: argparse.Namespace) -> int:
    from wm_hub.bootstrap.sampling import SamplingConfig, sample_annotations

    try:
        config = SamplingConfig(
            k=args.k,
            score_field=args.score_field,
            class_field=args.class_field,
            id_field=args.id_field,
            skip_invalid=args.skip_invalid,
            max_plot_classes=args.max_plot_classes,
        )
        report = sample_annotations(args.input, args.out, config)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    summary = {
        "output": report.output,
        "report": report.report,
        "plot": report.plot,
        "score_field": report.score_field,
        "rows_read": report.rows_read,
        "rows_skipped": len(report.skipped),
        "rows_selected": report.rows_selected,
        "classes": len(report.class_order),
        "mean_score": {stage: report.scores[stage]["all"]["mean"] for stage in ("before", "after")},
    }
    print(json.dumps(summary, indent=2))
    return 0


def register(subparsers) -> None:
    """Add ``wm-hub sample``."""
    parser = subparsers.add_parser(
        "sample",
        help="keep K annotated pairs: round-robin over action classes, best IDM score first (paper Algorithm 1)",
        description="Stratified top-K sampling of IDM-annotated pairs (paper Appendix E, Algorithm 1): sort the rows "
        "by score, then visit the classes round-robin, each visit taking the class's best row not yet taken, until "
        "K rows are taken or none is left. Classes are visited in the order of their best score, then name; ties in "
        "score are broken by id.\n\n"
        "Writes OUT (the selected rows' original lines, in pick order), OUT's stem + .report.json (per-class counts "
        "and score statistics before and after) and + .scores.png (per-class score distributions before and after, "
        "paper Figure 9), each atomically.",
        epilog="examples:\n"
        "  wm-hub sample --input annotated/ --k 7000 --out ucf101-7k.jsonl\n"
        "  wm-hub sample --input annotations.jsonl --k 500 --out top500.jsonl --score-field sum --skip-invalid",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--input",
        required=True,
        metavar="FILE_OR_DIR",
        help="a JSONL file, or a folder: its annotations-*.jsonl shards if it has any (wm-hub annotate output), "
        "else all its *.jsonl files, in name order",
    )
    parser.add_argument("--k", type=int, required=True, help="number of rows to keep (all when there are fewer)")
    parser.add_argument("--out", required=True, help="output JSONL file (report and plot are written next to it)")
    parser.add_argument(
        "--score-field",
        help="field to rank by; 'mean'/'sum' mean score_mean/score_sum (default: score_mean if the first row has "
        "it, else score)",
    )
    parser.add_argument("--class-field", default="action_class", help="field to stratify by (default: action_class)")
    parser.add_argument("--id-field", default="id", help="unique id field (default: id)")
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip rows with a missing/non-finite score or missing class/id (counted and listed in the report) "
        "instead of stopping at the first",
    )
    parser.add_argument(
        "--max-plot-classes", type=int, default=40, help="classes drawn in the plot, best first (default: 40)"
    )
    parser.set_defaults(func=_sample)
