"""``wm-hub probe``: the trajectory-preference probe (paper Section 2, Figure 2, Appendix D)."""

from __future__ import annotations

import json

from wm_hub.cli._tasks import Task


def _probe(run, data, config) -> int:
    from wm_hub.evaluation.probe import evaluate_probe

    try:
        result, files = evaluate_probe(run, data, config)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    overall = {
        direction: {negative: by_subset["all"]["win_rate"] for negative, by_subset in by_negative.items()}
        for direction, by_negative in result.win_rates.items()
    }
    files = {name: str(path) for name, path in files.items()}
    print(json.dumps({"rows": len(result.rows), "win_rates_all": overall, "files": files}, indent=2))
    return 0


def _configs() -> tuple[type, ...]:
    from wm_hub.evaluation.probe import ProbeConfig, ProbeRunConfig
    from wm_hub.evaluation.triplet_sources import EvalTripletsConfig

    return (ProbeRunConfig, EvalTripletsConfig, ProbeConfig)


TASKS = (
    Task(
        words=("probe",),
        help="trajectory-preference probe: does the model prefer real trajectories to manipulated ones?",
        configs=_configs,
        run=_probe,
        description="For every triplet, compare the log-likelihood of the real (source, action, target) trajectory "
        "with negatives from the same subset: random_action, random_target, copy (source as target), inverse "
        "(source and target swapped) and, with --disc-data, AURORA's counterfactual actions. Both directions: "
        "forward = log p(target image codes | source, action), inverse = log p(action | source, target), in the "
        "model's own IDM/FDM format. Reports the % of rows where the reference wins (strictly), per negative type, "
        "direction and subset. Writes OUT/probe.json, OUT/probe.md, OUT/probe_rows.jsonl (every trajectory and "
        "score), OUT/probe_scatter.png and OUT/probe_hist.png (paper Figure 7). Scores are cached in "
        "OUT/scores-<model>.jsonl: a rerun (or an interrupted run) only scores what is missing.\n\n"
        "--data: an AURORA checkout (test.json: AURORA-BENCH, the paper's five subsets), a folder written by "
        "`wm-hub data build`, a Hub dataset id, or a builder's data folder with --builder (its config: "
        "--data-config).",
        epilog="examples:\n"
        "  wm-hub probe --model Anole-7b --data AURORA --disc-data AURORA/data/disc_edit_data --out probe/\n"
        "  wm-hub probe --model tiny --data aurora-bench-mini --skip-missing --subsets ag,kubric --out probe/",
    ),
)
