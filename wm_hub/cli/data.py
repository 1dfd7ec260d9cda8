"""``wm-hub data build`` and ``wm-hub data show-weights``: building triplet datasets and looking at them."""

from __future__ import annotations

import argparse
import json
import sys

from wm_hub.cli._tasks import Task


class _OneBuilder(argparse.Action):
    """Stores the builder, refusing a second, different one: NAME and ``--builder`` write the same field, and the
    later would otherwise silently win."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        given = getattr(namespace, self.dest, None)
        if given is not None and values != given:
            raise argparse.ArgumentError(self, f"two builders, {given!r} and {values!r}: give NAME or --builder, once")
        setattr(namespace, self.dest, values)


def _builder_name(parser: argparse.ArgumentParser) -> None:
    """NAME, the first word after the task: the config's ``builder`` field (``--builder`` sets it too)."""
    parser.add_argument(
        "builder",
        nargs="?",
        default=argparse.SUPPRESS,
        metavar="NAME",
        action=_OneBuilder,
        help="registered builder, e.g. aurora",
    )
    for action in parser._actions:  # the config field's --builder: the same check, whichever comes first
        if "--builder" in action.option_strings:
            action.__class__ = _OneBuilder


def _build(config) -> int:
    from wm_hub.hub.dataset_folder import build_hub_dataset

    try:
        build = build_hub_dataset(config.builder, config.out, **config.build_options())
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        raise SystemExit(f"error: {error}") from None
    summary = build.summary()
    if any(summary["skipped_rows"].values()):
        print(
            f"Skipped rows with missing or unreadable files {summary['skipped_rows']}, listed in {summary['report']}",
            file=sys.stderr,
        )
    print(json.dumps(summary, indent=2))
    return 0


def _show_weights(config) -> int:
    from wm_hub.training.weight_maps import show_weights

    try:
        written = show_weights(config)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    print(json.dumps({"out": config.out, "panels": [str(path) for path in written]}, indent=2))
    return 0


def _build_config() -> tuple[type, ...]:
    from wm_hub.hub.dataset_folder import DatasetBuildConfig

    return (DatasetBuildConfig,)


def _show_weights_config() -> tuple[type, ...]:
    from wm_hub.training.weight_maps import WeightPanelsConfig

    return (WeightPanelsConfig,)


TASKS = (
    Task(
        own_config_flag=True,
        words=("data", "build"),
        help="build a triplet dataset from local data into a Hub-layout folder",
        configs=_build_config,
        run=_build,
        description="Run a registered dataset builder on a local copy of the data and write a folder laid out like "
        "a Hub dataset repo: datasets.load_dataset(OUT) loads it without wm-hub, and it uploads as it is. Every "
        "builder writes the one triplet schema (id, source, target, action, origin, score, action_class, video, "
        "frames).\n"
        "  OUT/data/{split}-00000-of-0000N.parquet  triplets, images embedded\n"
        "  OUT/README.md                            YAML (configs, dataset_info) that datasets reads\n"
        "  OUT/build_report.json                    rows per subset, rows without a target, skipped rows\n"
        "Builders: aurora (configs ag, magicbrush, something, kubric: data/<name>/train.json; bench: test.json, the "
        "paper's five subsets), epic_kitchens (EPIC_100_*.csv + rgb_frames or videos).\n"
        "Rows whose images are missing or unreadable stop the build with one error naming every such row, unless "
        "--skip-missing. OUT is written to a temporary folder beside it and renamed at the end. --config names the "
        "builder config: this task reads no YAML recipe.",
        epilog="examples:\n"
        "  wm-hub data build aurora --config bench --data-dir AURORA --out aurora-bench --skip-missing\n"
        "  wm-hub data build aurora --config ag --data-dir AURORA --out aurora-ag\n"
        "  wm-hub data build epic_kitchens --data-dir EPIC-KITCHENS --out epic-triplets --max-shard-size 1GB",
        arguments=_builder_name,
    ),
    Task(
        words=("data", "show-weights"),
        help="draw recognition-weight heatmaps (paper Figure 3) for triplets",
        configs=_show_weights_config,
        run=_show_weights,
        description="For each triplet, write source | target | target overlaid with the FDM recognition weights: the "
        "squared L2 distance between source and target pre-quantisation VQ features per image token (mean 1 per "
        "image). Check that the weights land where the action happens before training with loss_weighting=l2.",
        epilog="example: wm-hub data show-weights --backbone tiny-chameleon --data shapes-triplets --out weights/",
    ),
)
