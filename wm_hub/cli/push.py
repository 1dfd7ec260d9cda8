"""``wm-hub push model|dataset``: publish a world model or synthetic trajectories to the Hub in one commit."""

from __future__ import annotations

import argparse
import json

REPO_ID_HELP = "the repository, org/name (created if missing)"
TOKEN_NOTE = (
    "The token is read from HF_TOKEN or the `hf auth login` cache (never from the command line, never printed). "
    "HF_ENDPOINT selects another Hub. Identical content makes no commit; an interrupted push leaves the repository "
    "as it was, and rerunning it completes it."
)


def _push_model(args: argparse.Namespace) -> int:
    from wm_hub.hub import ModelPushConfig, push_model

    config = ModelPushConfig(
        revision=args.revision,
        private=args.private,
        merge=args.merge,
        base_model=args.base_model,
        results=args.results,
        datasets=args.dataset or (),
        license=args.license,
        commit_message=args.message,
    )
    return _report(lambda: push_model(args.dir, args.repo_id, config))


def _push_dataset(args: argparse.Namespace) -> int:
    from wm_hub.hub import DatasetPushConfig, push_dataset

    config = DatasetPushConfig(
        config_name=args.config_name,
        revision=args.revision,
        private=args.private,
        provenance=args.provenance,
        commit_message=args.message,
    )
    return _report(lambda: push_dataset(args.dir, args.repo_id, config))


def _report(push) -> int:
    import os

    from httpx2 import TransportError  # huggingface_hub's HTTP client: connection refused, DNS, timeouts
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        result = push()
    except TransportError as error:
        endpoint = os.environ.get("HF_ENDPOINT", constants.ENDPOINT)
        raise SystemExit(
            f"error: cannot reach the Hub at {endpoint} ({type(error).__name__}: {error}); nothing was committed, "
            "rerun to retry"
        ) from None
    except (FileNotFoundError, ValueError, OfflineModeIsEnabled) as error:
        raise SystemExit(f"error: {error}") from None
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        raise SystemExit(
            f"error: the Hub answered {status} ({str(error).splitlines()[0]}); nothing was committed, rerun to retry"
        ) from None
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo-id", required=True, help=REPO_ID_HELP)
    parser.add_argument("--revision", help="branch to push to, created from main if missing (e.g. round-2)")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--message", help="commit message")


def register(subparsers) -> None:
    """Add ``wm-hub push model`` and ``wm-hub push dataset``."""
    parser = subparsers.add_parser(
        "push",
        help="publish a model or synthetic trajectories to the Hugging Face Hub (one commit, idempotent)",
        description="Publish to the Hugging Face Hub. " + TOKEN_NOTE,
    )
    kinds = parser.add_subparsers(title="what", metavar="{model,dataset}", required=True)

    model = kinds.add_parser(
        "model",
        help="a trained IDM/FDM (merged weights or LoRA adapter), with its model card",
        description="Publish a model folder: a training output (recipes/idm.py, recipes/fdm.py), a backbone saved "
        "by wm-hub, or an adapter folder. A LoRA run publishes its adapter (the base model must be on the Hub: "
        "--base-model) unless --merge publishes the merged weights. The card (README.md) is rendered from "
        "training_run.json with the evaluation table of --results. " + TOKEN_NOTE,
        epilog="examples:\n"
        "  wm-hub push model tiny-chameleon --repo-id me/tiny-chameleon\n"
        "  wm-hub push model out/fdm --repo-id me/anole-fdm --base-model me/anole-7b --results eval/aurora.json\n"
        "  wm-hub push model out/fdm --repo-id me/anole-fdm --merge --revision round-2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model.add_argument("dir", help="the model folder")
    _common(model)
    model.add_argument("--merge", action="store_true", help="publish merged weights instead of the LoRA adapter")
    model.add_argument("--base-model", help="Hub id of the base model when the adapter names a local folder")
    model.add_argument("--results", metavar="JSON", help="evaluation results for the card's evaluation table")
    model.add_argument("--dataset", action="append", metavar="ID", help="a training dataset's Hub id (repeatable)")
    model.add_argument("--license", default="cc-by-nc-4.0", help="licence identifier (default: %(default)s)")
    model.set_defaults(func=_push_model)

    dataset = kinds.add_parser(
        "dataset",
        help="synthetic trajectories as one config (origin) of a Parquet dataset, with provenance",
        description="Publish triplets as one config of a dataset repository (Parquet with Image columns, one "
        "config per origin; other configs are kept): a folder written by `wm-hub data build`, or an IDM annotation "
        "folder (built with the synthetic_triplets builder first). The dataset card records each config's IDM, "
        "key-frame and sampling settings, score statistics and source licence. " + TOKEN_NOTE,
        epilog="examples:\n"
        "  wm-hub push dataset annotated-ucf/ --repo-id me/synthetic-trajectories --config-name ucf\n"
        "  wm-hub push dataset shapes-triplets/ --repo-id me/synthetic-trajectories --config-name shapes_world\n"
        "  wm-hub push dataset annotated-mit/ --repo-id me/synthetic-trajectories --provenance provenance.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dataset.add_argument("dir", help="the Hub-layout or annotation folder")
    _common(dataset)
    dataset.add_argument("--config-name", help="the config (origin), e.g. mit, kinetics, ucf, shapes_world")
    dataset.add_argument(
        "--provenance", metavar="JSON", help="provenance to record: idm, keyframes, sampling, source (name, url...)"
    )
    dataset.set_defaults(func=_push_dataset)
