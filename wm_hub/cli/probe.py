"""``wm-hub probe``: the trajectory-preference probe (paper Section 2, Figure 2, Appendix D)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _split_list(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def _probe(args: argparse.Namespace) -> int:
    from wm_hub.data.build_report import MissingFilesError
    from wm_hub.evaluation.probe import (
        DIRECTIONS,
        NEGATIVE_TYPES,
        ProbeConfig,
        cache_name,
        load_counterfactuals,
        match_counterfactuals,
        run_probe,
        write_probe_outputs,
    )
    from wm_hub.evaluation.triplet_sources import load_eval_triplets
    from wm_hub.models.loading import load_backbone

    try:
        config = ProbeConfig(
            seed=args.seed,
            batch_size=args.batch_size,
            directions=_split_list(args.directions) or DIRECTIONS,
            negatives=_split_list(args.negatives) or NEGATIVE_TYPES,
            reduction=args.reduction,
        )
        triplets = load_eval_triplets(
            args.data,
            split=args.split,
            builder=args.builder,
            config=args.config,
            subsets=_split_list(args.subsets),
            skip_missing=args.skip_missing,
        )
        dataset = triplets.dataset
        if args.limit:
            dataset = dataset.select(range(min(args.limit, len(dataset))))
        ids, actions = dataset["id"], dataset["action"]
        subsets = triplets.subsets()[: len(dataset)]
        counterfactuals = None
        if args.disc_data:
            disc_rows = load_counterfactuals(args.disc_data, sorted(set(subsets)))
            counterfactuals = match_counterfactuals(ids, subsets, actions, disc_rows, triplets.image_paths)
    except (ValueError, FileNotFoundError, MissingFilesError) as error:
        raise SystemExit(f"error: {error}") from None
    if triplets.skipped:
        names = ", ".join(f"{bad['id']} ({bad['field']}: {bad['path']})" for bad in triplets.skipped)
        print(f"Skipped {len(triplets.skipped)} row(s) with missing or unreadable images: {names}", file=sys.stderr)
    backbone = load_backbone(args.model, device=args.device, dtype=args.dtype)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = run_probe(
        backbone,
        ids,
        subsets,
        dataset["source"],
        actions,
        dataset["target"],
        config,
        counterfactuals=counterfactuals,
        score_cache=out / cache_name(args.model),
    )
    files = write_probe_outputs(
        result,
        out,
        model=args.model,
        data=triplets.description,
        skipped=triplets.skipped,
        without_target=triplets.without_target,
        counterfactual_rows=len(counterfactuals or {}),
    )
    overall = {
        direction: {negative: by_subset["all"]["win_rate"] for negative, by_subset in by_negative.items()}
        for direction, by_negative in result.win_rates.items()
    }
    print(
        json.dumps(
            {"rows": len(result.rows), "win_rates_all": overall, "files": {k: str(v) for k, v in files.items()}},
            indent=2,
        )
    )
    return 0


def register(subparsers) -> None:
    """Add ``wm-hub probe``."""
    parser = subparsers.add_parser(
        "probe",
        help="trajectory-preference probe: does the model prefer real trajectories to manipulated ones?",
        description="For every triplet, compare the log-likelihood of the real (source, action, target) trajectory\n"
        "with negatives from the same subset: random_action, random_target, copy (source as target), inverse\n"
        "(source and target swapped) and, with --disc-data, AURORA's counterfactual actions. Both directions:\n"
        "forward = log p(target image codes | source, action), inverse = log p(action | source, target), in the\n"
        "model's own IDM/FDM format. Reports the % of rows where the reference wins (strictly), per negative\n"
        "type, direction and subset. Writes OUT/probe.json, OUT/probe.md, OUT/probe_rows.jsonl (every\n"
        "trajectory and score), OUT/probe_scatter.png and OUT/probe_hist.png (paper Figure 7). Scores are cached\n"
        "in OUT/scores-<model>.jsonl: a rerun (or an interrupted run) only scores what is missing.\n"
        "--data: an AURORA checkout (test.json: AURORA-BENCH, the paper's five subsets), a folder written by\n"
        "`wm-hub data build`, a Hub dataset id, or a builder's data folder with --builder.",
        epilog="examples:\n"
        "  wm-hub probe --model Anole-7b --data AURORA --disc-data AURORA/data/disc_edit_data --out probe/\n"
        "  wm-hub probe --model tiny --data aurora-bench-mini --skip-missing --subsets ag,kubric --out probe/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="checkpoint folder or Hub id (any backbone wm-hub loads)")
    parser.add_argument("--data", required=True, help="AURORA checkout, dataset folder or Hub id")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--subsets", help="comma-separated subsets (default: AURORA-BENCH's five, or all)")
    parser.add_argument("--split", help="split of a dataset (default: test)")
    parser.add_argument("--builder", help="run this registered dataset builder on --data")
    parser.add_argument("--config", help="builder or dataset config (AURORA: bench)")
    parser.add_argument(
        "--skip-missing", action="store_true", help="skip rows whose images are missing (listed in probe.json)"
    )
    parser.add_argument("--disc-data", help="AURORA's disc_edit_data folder: adds counterfactual-action negatives")
    parser.add_argument("--directions", help="comma-separated: forward,inverse (default: both)")
    parser.add_argument("--negatives", help="comma-separated negative types (default: all)")
    parser.add_argument(
        "--reduction",
        choices=("sum", "mean"),
        default="sum",
        help="compare summed log-likelihoods (default, the paper's) or per-token means",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random negatives (default: 0)")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per forward pass (default: 8)")
    parser.add_argument("--limit", type=int, help="probe only the first N triplets")
    parser.add_argument("--device", help="torch device (default: CPU)")
    parser.add_argument("--dtype", help="LM dtype, e.g. bfloat16 (default: checkpoint's)")
    parser.set_defaults(func=_probe)
