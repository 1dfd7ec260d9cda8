"""``wm-hub eval report``: tables and plots from one or several AURORA-BENCH ``results.json``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _report(args: argparse.Namespace) -> int:
    from wm_hub.evaluation.reports import (
        candidate_series,
        load_results,
        metrics_of,
        plot_candidates,
        plot_subset_bars,
        score_table,
        write_markdown_report,
    )

    try:
        runs = load_results(args.results)
        metrics = metrics_of(runs)
        if not metrics:
            raise ValueError(f"no metric in {', '.join(args.results)}")
        out = Path(args.out)
        written = [str(write_markdown_report(runs, out / "report.md"))]
        if args.models_as_rows:
            text = "\n".join(score_table(runs, metric, models_as_rows=True) for metric in metrics)
            (out / "models_as_rows.md").write_text(text)
            written.append(str(out / "models_as_rows.md"))
        series, _ = candidate_series(runs)
        for metric in metrics:
            written.append(str(plot_subset_bars(runs, metric, out / f"{metric}_subsets.png")))
            if any(len(group) > 1 for group in series.values()):
                written.append(str(plot_candidates(runs, metric, out / f"{metric}_vs_k.png")))
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    print(json.dumps({"runs": [run.column for run in runs], "metrics": metrics, "written": written}, indent=2))
    return 0


def register(tasks) -> None:
    """Add ``wm-hub eval report``."""
    parser = tasks.add_parser(
        "report",
        help="Markdown tables (paper Tables 2, 3, 6) and plots (per-subset bars, score vs K) from results.json files",
        description="Build a report from results.json files of `wm-hub eval aurora` (one per model, baseline or "
        "number of candidates K): OUT/report.md (Table 2: judge score per subset and run; Table 6: every metric; "
        "Table 3: editing success / minimal editing), OUT/<metric>_subsets.png (grouped bars) and, when a model was "
        "run with several K, OUT/<metric>_vs_k.png (Figure 4; other runs as horizontal lines).",
        epilog="example:\n  wm-hub eval report copy.json ip2p/results.json cft-k1.json cft-k2.json cft-k4.json "
        "--out report/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("results", nargs="+", help="results.json files (columns in this order)")
    parser.add_argument("--out", required=True, help="folder for report.md and the plots")
    parser.add_argument(
        "--models-as-rows", action="store_true", help="also write models_as_rows.md: runs as rows, subsets as columns"
    )
    parser.set_defaults(func=_report)
