"""``wm-hub eval report``: tables and plots from one or several AURORA-BENCH ``results.json``."""

from __future__ import annotations

import argparse
import json

from wm_hub.cli._tasks import Task


def _report(config, inputs: argparse.Namespace) -> int:
    from wm_hub.evaluation.reports import write_report

    try:
        summary = write_report(inputs.results, config)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    print(json.dumps(summary, indent=2))
    return 0


def _configs() -> tuple[type, ...]:
    from wm_hub.evaluation.reports import ReportConfig

    return (ReportConfig,)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", help="results.json files (columns in this order)")


TASKS = (
    Task(
        words=("eval", "report"),
        help="Markdown tables (paper Tables 2, 3, 6) and plots (per-subset bars, score vs K) from results.json files",
        configs=_configs,
        run=_report,
        arguments=_arguments,
        description="Build a report from results.json files of `wm-hub eval aurora` (one per model, baseline or "
        "number of candidates K): OUT/report.md (Table 2: judge score per subset and run; Table 6: every metric; "
        "Table 3: editing success / minimal editing), OUT/<metric>_subsets.png (grouped bars) and, when a model was "
        "run with several K, OUT/<metric>_vs_k.png (Figure 4; other runs as horizontal lines).",
        epilog="example:\n  wm-hub eval report copy.json ip2p/results.json cft-k1.json cft-k2.json cft-k4.json "
        "--out report/",
    ),
)
