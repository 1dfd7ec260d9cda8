"""``wm-hub predict``: the old name of ``wm-hub generate`` (``--model`` for ``--fdm``, 4 candidates by default)."""

from __future__ import annotations

from wm_hub.cli._tasks import Task
from wm_hub.cli.generate import GENERATE_DESCRIPTION, run_generate


def _configs() -> tuple[type, ...]:
    from wm_hub.inference.prediction import PredictConfig

    return (PredictConfig,)


TASKS = (
    Task(
        words=("predict",),
        help="`wm-hub generate` under its old name: source image + action -> candidate next images",
        configs=_configs,
        run=run_generate,
        description="`wm-hub generate` under its old name, kept for the commands users already type: --model is "
        "--fdm, and it samples 4 candidates with seed 0 unless told otherwise, all in one batched generate call. "
        "Use `wm-hub generate` in new commands.\n\n" + GENERATE_DESCRIPTION,
        epilog='example:\n  wm-hub predict --model /tmp/tiny-chameleon --image kitchen.jpg --action "open the '
        'drawer" --num-candidates 4 --out preds/',
    ),
)
