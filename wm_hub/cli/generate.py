"""``wm-hub generate`` and ``wm-hub rollout``: the forward-dynamics pipeline from the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from wm_hub.cli._tasks import Task


def run_generate(config) -> int:
    """Run :func:`~wm_hub.inference.prediction.generate` (``wm-hub generate``, and ``wm-hub predict``, its old
    name) and print its summary."""
    from wm_hub.inference.prediction import generate

    return _print_summary(generate, config)


def _rollout(config) -> int:
    from wm_hub.inference.prediction import rollout

    return _print_summary(rollout, config)


def _print_summary(work: Callable[[Any], dict[str, Any]], config: Any) -> int:
    """Print the JSON summary of ``work(config)``; a bad setting or input ends as one ``error:`` line."""
    try:
        summary = work(config)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    print(json.dumps(summary, indent=2))
    return 0


def _generate_configs() -> tuple[type, ...]:
    from wm_hub.inference.prediction import GenerateConfig

    return (GenerateConfig,)


def _rollout_configs() -> tuple[type, ...]:
    from wm_hub.inference.prediction import RolloutConfig

    return (RolloutConfig,)


GENERATE_DESCRIPTION = (
    "Run pipeline('forward-dynamics') once. With --idm and --num-candidates N, the FDM samples N candidates in one "
    "batch and the IDM keeps the one with the highest log p(action | image, candidate) (summed over the action "
    "tokens).\n\n"
    "--out next.png writes the chosen image; --out DIR (a folder) writes every candidate as DIR/candidate_<i>.png "
    "and DIR/prediction.json (the action, the files, with --idm the verifier's scores, the settings), so N "
    "candidates without --idm need a folder. Files are written atomically; a rerun removes the candidates of an "
    "earlier, larger run. Prints a JSON summary."
)

TASKS = (
    Task(
        words=("generate",),
        help="predict the next observation of an image after an action (optionally best-of-N with an IDM)",
        configs=_generate_configs,
        run=run_generate,
        description=GENERATE_DESCRIPTION,
        epilog="examples:\n"
        "  wm-hub generate --fdm my-fdm --image kitchen.jpg --action 'open the drawer' --idm my-idm "
        "--num-candidates 8 --out next.png\n"
        "  wm-hub generate --fdm my-fdm --image kitchen.jpg --action 'open the drawer' --num-candidates 4 "
        "--out preds/",
    ),
    Task(
        words=("rollout",),
        help="apply several actions in turn, each prediction feeding the next step",
        configs=_rollout_configs,
        run=_rollout,
        description="Run pipeline('forward-dynamics') with actions=[A1, A2, ...]: step i predicts from the image "
        "of step i - 1 (the first from --image). Writes OUT/step_01.png, ... and OUT/rollout.json (actions, files, "
        "verifier scores), each atomically.",
        epilog="example:\n  wm-hub rollout --fdm my-fdm --image kitchen.jpg --actions 'open the drawer' "
        "'take out a spoon' --out rollout/",
    ),
)
