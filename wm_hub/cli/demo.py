"""``wm-hub demo``: the paper's whole loop on the pretrained sandbox base."""

from __future__ import annotations

import json

from wm_hub.cli._tasks import Task


def _demo(config) -> int:
    from wm_hub.demo import DemoStageError, run_demo

    if not (config.base / "config.json").is_file():  # before the demo makes its output folder
        raise SystemExit(f"error: --base {config.base}: no sandbox base there (a folder load_backbone reads)")
    try:
        summary = run_demo(config)
    except DemoStageError as error:
        raise SystemExit(f"error: {error}") from None
    shown = {key: value for key, value in summary.items() if key != "examples"}
    print(json.dumps(shown, indent=2))
    out = config.out
    print(f"Wrote {out / 'demo_grid.png'}, {out / 'summary.json'} and {out / 'report.md'}")
    return 0


def _configs() -> tuple[type, ...]:
    from wm_hub.demo import DemoConfig  # imports torch: only when the demo runs or explains itself

    return (DemoConfig,)


TASKS = (
    Task(
        words=("demo",),
        help="offline end-to-end demo: the paper's whole loop on the pretrained sandbox base",
        configs=_configs,
        run=_demo,
        description="The paper's loop at laptop scale, nothing downloaded, from the shipped sandbox base "
        "(sandbox/base): fine-tunes the IDM (`accelerate launch recipes/idm.py --config "
        "recipes/sandbox/demo-idm.yaml`), writes unlabelled sandbox videos, cuts their key frames (`wm-hub "
        "keyframes`), labels key-frame pairs with the IDM (`wm-hub annotate`), keeps the stratified top K (`wm-hub "
        "sample`), fine-tunes the FDM on labelled + IDM-labelled pairs with the recognition-weighted loss "
        "(recipes/sandbox/demo-fdm.yaml), and scores held-out triplets through pipeline('forward-dynamics') with "
        "best-of-8 IDM verification. Writes OUT/demo_grid.png, OUT/summary.json and OUT/report.md. Stages whose "
        "output exists are skipped. Runs from a source checkout (it uses recipes/).",
        epilog="example: wm-hub demo --out demo_out",
    ),
)
