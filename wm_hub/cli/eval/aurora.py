"""``wm-hub eval aurora``: AURORA-BENCH predictions and metrics (paper Tables 2, 3 and 6)."""

from __future__ import annotations

import json

from wm_hub.cli._tasks import Task


def _aurora(config) -> int:
    from wm_hub.evaluation.aurora import evaluate_aurora
    from wm_hub.evaluation.judge import JudgeRequestError

    try:
        results = evaluate_aurora(config)
    except (FileNotFoundError, ValueError, JudgeRequestError) as error:
        raise SystemExit(f"error: {error}") from None
    except RuntimeError as error:
        if "API key" not in str(error):  # the judge's missing-key error; anything else is a bug to show in full
            raise
        raise SystemExit(f"error: {error}") from None
    summary = {
        "results": config.out,
        "rows": str(config.rows_path),
        "report": config.report,
        "subsets": {
            name: {key: value for key, value in subset.items() if not key.startswith("judge_usage")}
            for name, subset in results["subsets"].items()
        },
        "overall": results["overall"],
    }
    print(json.dumps(summary, indent=2))
    return 0


def _configs() -> tuple[type, ...]:
    from wm_hub.evaluation.aurora import AuroraEvalConfig

    return (AuroraEvalConfig,)


TASKS = (
    Task(
        words=("eval", "aurora"),
        help="AURORA-BENCH: predictions (copy, InstructPix2Pix, a folder, an FDM) and L1/CLIP/DINO/judge metrics",
        configs=_configs,
        run=_aurora,
        description="Evaluate next-observation predictions on AURORA-BENCH (paper Tables 2, 3 and 6). Rows are read "
        "by the `aurora` dataset builder (bench config): missing images stop the run naming every bad row, or are "
        "skipped and named in the results with --skip-missing. The built rows stay in the datasets cache for the "
        "next run (--rebuild after editing the checkout). Writes OUT (results.json: per-subset means, the overall "
        "mean of subset means, the config) and OUT's stem + .rows.jsonl (every per-row value, the judge's raw "
        "replies). Generated predictions go to <OUT dir>/predictions/<row id>.png, each written when done, and a "
        "rerun reuses them (resume). The judge's API key is read from OPENAI_API_KEY and never written.\n\n"
        "Options: the judge's start with --judge-, InstructPix2Pix's (--predictions ip2p) with --ip2p-; --idm, "
        "--num-candidates, --temperature, --top-k, --top-p and --dtype are a forward-dynamics model's "
        "(--predictions MODEL).",
        epilog="examples:\n"
        "  wm-hub eval aurora --data-dir AURORA --predictions copy --metrics l1,clip_i,clip_t,dino --out copy.json\n"
        "  wm-hub eval aurora --data-dir AURORA --predictions ip2p --metrics l1,judge --out ip2p/results.json\n"
        "  wm-hub eval aurora --data-dir AURORA --predictions my-preds/ --metrics judge --out mine.json "
        "--report mine.md\n"
        "  wm-hub eval aurora --data-dir AURORA --predictions org/c-ft --idm org/c-idm --num-candidates 4 "
        "--metrics judge --out cft-k4/results.json",
    ),
)
