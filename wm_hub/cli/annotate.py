"""``wm-hub annotate``: label key-frame pairs with actions by an inverse-dynamics model (paper section 3.2)."""

from __future__ import annotations

import json
import sys

from wm_hub.cli._tasks import Task


def _annotate(config) -> int:
    if config.executor is not None:  # imports datatrove: only when asked for
        from wm_hub.bootstrap.annotate_pipeline import annotate_on_executor as run
    else:
        from wm_hub.bootstrap.annotate import annotate as run

    try:
        summary = run(config)
    except (FileNotFoundError, FileExistsError, ValueError, RuntimeError) as error:
        raise SystemExit(f"error: {error}") from None
    if summary is not None and "pending" in summary:
        from wm_hub.bootstrap.executors import pending_message

        print(pending_message(summary["pending"]), file=sys.stderr)
        print(json.dumps(summary, indent=2))
    elif summary is not None:
        rate = summary["pairs_per_second"]
        print(json.dumps({key: value for key, value in summary.items() if key != "settings"}, indent=2))
        print(f"annotated {summary['annotated']} pairs ({summary['already_done']} already done)", end="")
        print(f" at {rate} pairs/s" if rate else "")
    return 0


def _configs() -> tuple[type, ...]:
    from wm_hub.bootstrap.annotate import AnnotateConfig

    return (AnnotateConfig,)


TASKS = (
    Task(
        words=("annotate",),
        help="label key-frame pairs with actions generated and scored by an inverse-dynamics model",
        configs=_configs,
        run=_annotate,
        description="IDM annotation of key-frame pairs (paper section 3.2): for every pair the IDM generates an "
        "action (batched, greedy unless --sample) and scores it, log p(action | source, target) over the action "
        "tokens and eos in the IDM's training format (score_sum, score_mean, num_action_tokens; score = "
        "score_mean, what stratified sampling ranks by).\n\n"
        "DATA is a folder written by `wm-hub keyframes` (consecutive key frames of each video form pairs) or a "
        "triplet dataset with id, source, target columns (e.g. `wm-hub data build video_keyframes` output, a "
        "Parquet file, a Hub id).\n\n"
        "OUT gets annotations-NNNNN-of-NNNNN.jsonl shards (each written atomically) and the pair images under "
        "frames/, which the synthetic_triplets builder and `wm-hub sample` read as they are, plus "
        "annotation_config.json and annotation_run.json. Rerun the same command to resume after a crash: "
        "finished shards are kept, every pair ends up in exactly one row. --config annotate.yaml reads the same "
        "options from YAML (recipes/annotate.py's recipes). For several GPUs, run recipes/annotate.py under "
        "`accelerate launch`, or spread the shards over datatrove tasks: --executor local|ray|slurm --tasks N "
        "--workers W (--gpus-per-task 1 on a cluster; Slurm submits and returns, rerun the same command to merge).",
        epilog="examples:\n"
        "  wm-hub keyframes UCF-101/ --out ucf101-kf\n"
        "  wm-hub annotate --idm outputs/anole-7b-idm --data ucf101-kf --out ucf101-annotated --batch-size 16\n"
        "  wm-hub data build shapes_world --config videos --out shapes-videos\n"
        "  wm-hub annotate --idm tiny-idm --data shapes-videos --out shapes-annotated --max-new-tokens 16\n"
        "  wm-hub annotate --idm outputs/anole-7b-idm --data ucf101-kf --out ucf101-annotated --executor slurm \\\n"
        "      --tasks 32 --gpus-per-task 1 --slurm-partition gpu --slurm-env-command 'source .venv/bin/activate'",
    ),
)
