"""``wm-hub push model|dataset``: publish a world model or synthetic trajectories to the Hub in one commit."""

from __future__ import annotations

import argparse
import json

from wm_hub.cli._tasks import Task

TOKEN_NOTE = (
    "The token is read from HF_TOKEN or the `hf auth login` cache (never from the command line, never printed). "
    "HF_ENDPOINT selects another Hub. Identical content makes no commit; an interrupted push leaves the repository "
    "as it was, and rerunning it completes it."
)


def _folder(parser: argparse.ArgumentParser) -> None:
    """DIR, the first word after the task: the configs' ``folder`` field (``--folder`` and YAML set it too)."""
    parser.add_argument(
        "folder", nargs="?", default=argparse.SUPPRESS, metavar="DIR", help="the folder to publish (as --folder)"
    )


def _push(push, config) -> int:
    from wm_hub.hub import push_failure

    try:
        result = push(config)
    except Exception as error:
        message = push_failure(error)
        if message is None:
            raise
        raise SystemExit(f"error: {message}") from None
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def _push_model(config) -> int:
    from wm_hub.hub import push_model

    return _push(push_model, config)


def _push_dataset(config) -> int:
    from wm_hub.hub import push_dataset

    return _push(push_dataset, config)


def _model_config() -> tuple[type, ...]:
    from wm_hub.hub.model_push import ModelPushConfig

    return (ModelPushConfig,)


def _dataset_config() -> tuple[type, ...]:
    from wm_hub.hub.dataset_push import DatasetPushConfig

    return (DatasetPushConfig,)


TASKS = (
    Task(
        words=("push", "model"),
        help="a trained IDM/FDM (merged weights or LoRA adapter), with its model card",
        configs=_model_config,
        run=_push_model,
        description="Publish a model folder: a training output (recipes/idm.py, recipes/fdm.py), a backbone saved "
        "by wm-hub, or an adapter folder. A LoRA run publishes its adapter (the base model must be on the Hub: "
        "--base-model) unless --merge publishes the merged weights. The card (README.md) is rendered from "
        "training_run.json with the evaluation table of --results. " + TOKEN_NOTE,
        epilog="examples:\n"
        "  wm-hub push model tiny-chameleon --repo-id me/tiny-chameleon\n"
        "  wm-hub push model out/fdm --repo-id me/anole-fdm --base-model me/anole-7b --results eval/aurora.json\n"
        "  wm-hub push model out/fdm --repo-id me/anole-fdm --merge --revision round-2",
        arguments=_folder,
    ),
    Task(
        words=("push", "dataset"),
        help="synthetic trajectories as one config (origin) of a Parquet dataset, with provenance",
        configs=_dataset_config,
        run=_push_dataset,
        description="Publish triplets as one config of a dataset repository (Parquet with Image columns, one "
        "config per origin; other configs are kept): a folder written by `wm-hub data build`, or an IDM annotation "
        "folder (built with the synthetic_triplets builder first). The dataset card records each config's IDM, "
        "key-frame and sampling settings, score statistics and source licence. " + TOKEN_NOTE,
        epilog="examples:\n"
        "  wm-hub push dataset annotated-ucf/ --repo-id me/synthetic-trajectories --config-name ucf\n"
        "  wm-hub push dataset shapes-triplets/ --repo-id me/synthetic-trajectories --config-name shapes_world\n"
        "  wm-hub push dataset annotated-mit/ --repo-id me/synthetic-trajectories --provenance provenance.json",
        arguments=_folder,
    ),
)
