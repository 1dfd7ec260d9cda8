"""Argument checks shared by the generating benchmarks (``eval idm``, ``eval spatial``), run before any loading."""

from __future__ import annotations

import argparse
from pathlib import Path


def check_generation_arguments(args: argparse.Namespace) -> Path:
    """Refuse counts below 1, an ``--out`` that is a folder, and ``--predictions`` equal to ``--out``.

    Returns:
        The predictions file (``--predictions``, or ``--out`` with the suffix ``.predictions.jsonl``).

    Raises:
        SystemExit: One ``error:`` line naming the argument.
    """
    for flag, value in (("--batch-size", args.batch_size), ("--max-new-tokens", args.max_new_tokens)):
        if value < 1:
            raise SystemExit(f"error: {flag} must be >= 1, got {value}")
    if args.limit is not None and args.limit < 1:
        raise SystemExit(f"error: --limit must be >= 1 (leave it out for every row), got {args.limit}")
    out = Path(args.out)
    if out.is_dir():
        raise SystemExit(f"error: --out {out} is a folder: give the results JSON file")
    predictions = Path(args.predictions) if args.predictions else out.with_suffix(".predictions.jsonl")
    if predictions.resolve() == out.resolve():
        raise SystemExit(f"error: --predictions and --out are both {out}: the results would overwrite the predictions")
    return predictions
