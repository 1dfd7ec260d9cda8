"""Recognition weighting from the shipped sandbox base: the FDM fine-tuned with ``none``, the paper's ``l2`` and
``l2`` with a floor, everything else equal, scored on held-out triplets.

Each variant runs the demo's FDM recipe (``recipes/sandbox/demo-fdm.yaml``) on its labelled triplets only (the same
data for every variant; no IDM-labelled pairs, so the IDM's quality does not enter) through
``accelerate launch recipes/fdm.py`` and is measured greedily (:func:`wm_hub.sandbox.measure.measure_dynamics`)::

    python benchmarks/bench_sandbox_weighting.py --out benchmarks/results/sandbox_weighting_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import yaml

from wm_hub.models.loading import load_backbone
from wm_hub.sandbox.finetune import demo_recipe, fine_tune
from wm_hub.sandbox.measure import measure_dynamics
from wm_hub.sandbox.world import SANDBOX_WORLD

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"none": ("none", 0.0), "l2": ("l2", 0.0), "l2_floor_0.5": ("l2", 0.5), "l2_floor_0.8": ("l2", 0.8)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--base", default=str(ROOT / "sandbox" / "base"))
    parser.add_argument("--max-steps", type=int, help="override the recipe's max_steps")
    parser.add_argument("--num-eval", type=int, default=200)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    steps = {"max_steps": args.max_steps} if args.max_steps else {}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants:
            weighting, floor = VARIANTS[name]
            start = time.perf_counter()
            folder = fine_tune(
                "fdm", args.base, f"{tmp}/{name}", labelled_only=True, loss_weighting=weighting,
                loss_weight_floor=floor, **steps,
            )  # fmt: skip
            seconds = time.perf_counter() - start
            scores = measure_dynamics(load_backbone(str(folder)), SANDBOX_WORLD, args.num_eval, tasks=("fdm",))["fdm"]
            results.append({"variant": name, "loss_weighting": weighting, "loss_weight_floor": floor,
                            "train_seconds": seconds, **scores})  # fmt: skip
            print(json.dumps(results[-1]))
    recipe = yaml.safe_load(demo_recipe("fdm").read_text())
    labelled = next(source for source in recipe["sources"] if source["builder"] == "shapes_world")
    record = {
        "recipe": "recipes/sandbox/demo-fdm.yaml (labelled triplets only)",
        "max_steps": args.max_steps or recipe["max_steps"],
        "num_train": labelled["builder_kwargs"]["num_train"],
        "num_eval": args.num_eval,
        "load_average": os.getloadavg(),
        "results": results,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
