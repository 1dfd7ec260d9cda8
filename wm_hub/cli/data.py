"""``wm-hub data build`` and ``wm-hub data show-weights``: building triplet datasets and looking at them."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path


def _data_build(args: argparse.Namespace) -> int:
    from wm_hub.hub.dataset_folder import build_hub_dataset

    config_kwargs = {"skip_missing": True} if args.skip_missing else {}
    if args.annotations:
        if args.name != "synthetic_triplets":
            raise SystemExit("error: --annotations is an option of the synthetic_triplets builder")
        config_kwargs["annotation_files"] = args.annotations
    try:
        build = build_hub_dataset(
            args.name,
            args.out,
            data_dir=args.data_dir,
            config_name=args.config,
            max_shard_size=args.max_shard_size,
            **config_kwargs,
        )
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        raise SystemExit(f"error: {error}") from None
    report_path = str(build.out / "build_report.json")
    skipped = {split: split_report.skipped_rows for split, split_report in build.report.splits.items()}
    if any(skipped.values()):
        print(f"Skipped rows with missing or unreadable files {skipped}, listed in {report_path}", file=sys.stderr)
    summary = {"out": str(build.out), "examples": build.num_examples, "skipped_rows": skipped, "report": report_path}
    print(json.dumps(summary, indent=2))
    return 0


def _add_data_build(tasks) -> None:
    parser = tasks.add_parser(
        "build",
        help="build a triplet dataset from local data into a Hub-layout folder",
        description="Run a registered dataset builder on a local copy of the data and write a folder laid out like\n"
        "a Hub dataset repo: datasets.load_dataset(OUT) loads it without wm-hub, and it uploads as it is.\n"
        "  OUT/data/{split}-00000-of-0000N.parquet  triplets, images embedded\n"
        "  OUT/README.md                            YAML (configs, dataset_info) that datasets reads\n"
        "  OUT/build_report.json                    rows per subset, rows without a target, skipped rows\n"
        "Builders: aurora (configs ag, magicbrush, something, kubric: data/<name>/train.json; bench: test.json,\n"
        "the paper's five subsets), epic_kitchens (EPIC_100_*.csv + rgb_frames or videos).\n"
        "Rows whose images are missing or unreadable stop the build with one error naming every such row,\n"
        "unless --skip-missing. OUT is written to a temporary folder beside it and renamed at the end.",
        epilog="examples:\n"
        "  wm-hub data build aurora --config bench --data-dir AURORA --out aurora-bench --skip-missing\n"
        "  wm-hub data build aurora --config ag --data-dir AURORA --out aurora-ag\n"
        "  wm-hub data build epic_kitchens --data-dir EPIC-KITCHENS --out epic-triplets --max-shard-size 1GB",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", help="registered builder, e.g. aurora or epic_kitchens")
    parser.add_argument("--config", help="builder config, e.g. bench (default: the builder's only config)")
    parser.add_argument(
        "--data-dir", help="local data root (AURORA checkout, EPIC-KITCHENS folder); not needed by generated data"
    )
    parser.add_argument("--out", required=True, help="output folder (must not exist, or be empty)")
    parser.add_argument(
        "--skip-missing",
        action="store_true",
        help="skip rows with missing or unreadable files, and list them in build_report.json",
    )
    parser.add_argument("--max-shard-size", default="500MB", help="largest Parquet shard (default: 500MB)")
    parser.add_argument(
        "--annotations",
        nargs="+",
        metavar="FILE",
        help="synthetic_triplets: read only these JSONL files of --data-dir, e.g. the output of wm-hub sample "
        "written into the annotation folder (default: the annotations-*.jsonl shards of wm-hub annotate)",
    )
    parser.set_defaults(func=_data_build)


def _load_triplets(data: str, split: str):
    import datasets

    path = Path(data)
    try:
        if path.suffix == ".parquet":
            return datasets.load_dataset("parquet", data_files=str(path), split="train")
        return datasets.load_dataset(data, split=split)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: --data {data} (split {split!r}): {error}") from None


def _show_weights(args: argparse.Namespace) -> int:
    from wm_hub.models.loading import load_backbone
    from wm_hub.training.weight_maps import write_weight_panels

    triplets = _load_triplets(args.data, args.split)
    missing = {"source", "target"} - set(triplets.column_names)
    if missing:
        raise SystemExit(f"error: --data {args.data} has no {sorted(missing)} column(s): not a triplet dataset")
    backbone = load_backbone(args.backbone, device=args.device)
    limit = min(args.limit, len(triplets))
    written = write_weight_panels(backbone, triplets.select(range(limit)), args.out, display_size=args.display_size)
    print(json.dumps({"out": args.out, "panels": [str(path) for path in written]}, indent=2))
    return 0


def _add_data_show_weights(tasks) -> None:
    parser = tasks.add_parser(
        "show-weights",
        help="draw recognition-weight heatmaps (paper Figure 3) for triplets",
        description="For each triplet, write source | target | target overlaid with the FDM recognition weights: the "
        "squared L2 distance between source and target pre-quantisation VQ features per image token (mean 1 per "
        "image). Check that the weights land where the action happens before training with loss_weighting=l2.",
        epilog="example: wm-hub data show-weights --backbone tiny-chameleon --data shapes-triplets --out weights/",
    )
    parser.add_argument(
        "--backbone", required=True, help="backbone folder or Hub id (its VQ encoder is the recognizer)"
    )
    parser.add_argument("--data", required=True, help="Hub-layout folder, Hub dataset id, or a .parquet file")
    parser.add_argument("--split", default="train", help="split to read (default: train)")
    parser.add_argument("--out", required=True, help="output folder for the PNG panels")
    parser.add_argument("--limit", type=int, default=16, help="triplets to draw (default: 16)")
    parser.add_argument("--display-size", type=int, default=256, help="side of each panel tile (default: 256)")
    parser.add_argument("--device", help="torch device (default: CPU)")
    parser.set_defaults(func=_show_weights)


# `wm-hub data <task>`: building datasets and looking at them.
DATA_TASKS: tuple[Callable, ...] = (_add_data_build, _add_data_show_weights)


def _add_data(subparsers) -> None:
    parser = subparsers.add_parser(
        "data",
        help="build triplet datasets (Hub layout) and inspect them",
        description="Dataset tasks. Every builder writes the one triplet schema (id, source, target, action, origin, "
        "score, action_class, video, frames) as a folder that datasets.load_dataset(OUT) reads without wm-hub.",
    )
    tasks = parser.add_subparsers(title="data tasks", metavar="<data task>", required=True)
    for add in DATA_TASKS:
        add(tasks)


def register(subparsers) -> None:
    """Add ``wm-hub data``."""
    _add_data(subparsers)
