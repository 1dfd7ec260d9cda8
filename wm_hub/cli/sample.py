"""``wm-hub sample``: stratified top-K sampling of IDM-annotated pairs (paper Algorithm 1)."""

from __future__ import annotations

import json

from wm_hub.cli._tasks import Task


def _sample(files, config) -> int:
    from wm_hub.bootstrap.sampling import sample_annotations

    try:
        report = sample_annotations(files.input, files.out, config)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    summary = {
        "output": report.output,
        "report": report.report,
        "plot": report.plot,
        "score_field": report.score_field,
        "rows_read": report.rows_read,
        "rows_skipped": len(report.skipped),
        "blank_actions_left_out": report.blank_actions,
        "rows_selected": report.rows_selected,
        "classes": len(report.class_order),
        "mean_score": {stage: report.scores[stage]["all"]["mean"] for stage in ("before", "after")},
    }
    print(json.dumps(summary, indent=2))
    return 0


def _configs() -> tuple[type, ...]:
    from wm_hub.bootstrap.sampling import SamplingConfig, SamplingFiles

    return (SamplingFiles, SamplingConfig)


TASKS = (
    Task(
        words=("sample",),
        help="keep K annotated pairs: round-robin over action classes, best IDM score first (paper Algorithm 1)",
        configs=_configs,
        run=_sample,
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
    ),
)
