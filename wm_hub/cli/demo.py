"""``wm-hub demo``: the paper's whole loop on the pretrained sandbox base."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    from wm_hub.demo import DemoConfig, run_demo

    try:
        config = DemoConfig(
            out=Path(args.out),
            num_eval=args.num_eval,
            num_videos=args.num_videos,
            k=args.k,
            train_steps=args.train_steps,
        )
    except ValueError as error:  # before any training
        raise SystemExit(f"error: {error}") from None
    if args.base:
        config.base = Path(args.base)
    summary = run_demo(config)
    shown = {key: value for key, value in summary.items() if key != "examples"}
    print(json.dumps(shown, indent=2))
    out = Path(args.out)
    print(f"Wrote {out / 'demo_grid.png'}, {out / 'summary.json'} and {out / 'report.md'}")
    return 0


def _add_demo(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="offline end-to-end demo: the paper's whole loop on the pretrained sandbox base",
        description="The paper's loop at laptop scale, nothing downloaded, from the shipped sandbox base "
        "(sandbox/base): fine-tunes the IDM (`accelerate launch recipes/idm.py --config "
        "recipes/sandbox/demo-idm.yaml`), writes unlabelled sandbox videos, cuts their key frames (`wm-hub "
        "keyframes`), labels key-frame pairs with the IDM (`wm-hub annotate`), keeps the stratified top K (`wm-hub "
        "sample`), fine-tunes the FDM on labelled + IDM-labelled pairs with the recognition-weighted loss "
        "(recipes/sandbox/demo-fdm.yaml), and scores held-out triplets through pipeline('forward-dynamics') with "
        "best-of-8 IDM verification. Writes OUT/demo_grid.png, OUT/summary.json and OUT/report.md. Stages whose "
        "output exists are skipped. Runs from a source checkout (it uses recipes/).",
        epilog="example: wm-hub demo --out demo_out",
    )
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument(
        "--num-eval", type=int, default=200, help="held-out triplets to score (default: 200; the grid shows 8)"
    )
    parser.add_argument("--base", help="the pretrained sandbox base (default: sandbox/base of the checkout)")
    parser.add_argument("--num-videos", type=int, default=400, help="unlabelled videos, 5 pairs each (default: 400)")
    parser.add_argument("--k", type=int, default=1500, help="pairs kept by stratified top-K (default: 1500)")
    parser.add_argument("--train-steps", type=int, help="IDM/FDM optimizer steps (default: the demo recipes')")
    parser.set_defaults(func=_demo)


def register(subparsers) -> None:
    """Add ``wm-hub demo``."""
    _add_demo(subparsers)
