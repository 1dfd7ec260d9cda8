"""Recognition weighting from the shipped sandbox base: the FDM fine-tuned with ``none``, the paper's ``l2`` and
``l2`` with a floor, everything else equal, scored on held-out triplets; with ``--normalizations`` and ``--seeds``,
also how the weights are normalised (per image, raw as Eq. 2 is written, per batch), over several training seeds.

Each variant runs the demo's FDM recipe (``recipes/sandbox/demo-fdm.yaml``) on its labelled triplets only (the same
data for every variant; no IDM-labelled pairs, so the IDM's quality does not enter) through
``accelerate launch recipes/fdm.py`` and is measured greedily (:func:`wm_hub.sandbox.measure.measure_dynamics`)::

    python benchmarks/bench_sandbox_weighting.py --out benchmarks/results/sandbox_weighting_cpu.json
    python benchmarks/bench_sandbox_weighting.py --variants l2_floor_0.9 --normalizations mean none batch \
        --seeds 0 1 2 --max-steps 400 --out benchmarks/results/sandbox_weight_normalization_cpu.json
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
VARIANTS["l2_floor_0.9"] = ("l2", 0.9)  # the demo's


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--base", default=str(ROOT / "sandbox" / "base"))
    parser.add_argument("--max-steps", type=int, help="override the recipe's max_steps")
    parser.add_argument("--num-eval", type=int, default=200)
    parser.add_argument("--normalizations", nargs="+", choices=["mean", "none", "batch"], default=["mean"])
    parser.add_argument("--seeds", nargs="+", type=int, help="training seeds (default: the recipe's)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    steps = {"max_steps": args.max_steps} if args.max_steps else {}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants:
            weighting, floor = VARIANTS[name]
            for normalization in args.normalizations:
                for seed in args.seeds or [None]:
                    start = time.perf_counter()
                    seeded = {} if seed is None else {"seed": seed}
                    folder = fine_tune(
                        "fdm", args.base, f"{tmp}/{name}-{normalization}-{seed}", labelled_only=True,
                        loss_weighting=weighting, loss_weight_floor=floor, weight_normalization=normalization,
                        **steps, **seeded,
                    )  # fmt: skip
                    seconds = time.perf_counter() - start
                    backbone = load_backbone(str(folder))
                    scores = measure_dynamics(backbone, SANDBOX_WORLD, args.num_eval, tasks=("fdm",))["fdm"]
                    results.append({"variant": name, "loss_weighting": weighting, "loss_weight_floor": floor,
                                    "weight_normalization": normalization, "seed": seed, "train_seconds": seconds,
                                    **scores})  # fmt: skip
                    print(json.dumps(results[-1]), flush=True)
    if args.seeds and len(args.seeds) > 1:
        record_summary = _mean_and_std(results)
    else:
        record_summary = None
    recipe = yaml.safe_load(demo_recipe("fdm").read_text())
    labelled = next(source for source in recipe["sources"] if source["builder"] == "shapes_world")
    record = {
        "recipe": "recipes/sandbox/demo-fdm.yaml (labelled triplets only)",
        "max_steps": args.max_steps or recipe["max_steps"],
        "num_train": labelled["builder_kwargs"]["num_train"],
        "num_eval": args.num_eval,
        "load_average": os.getloadavg(),
        "results": results,
        "mean_std_over_seeds": record_summary,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")


def _mean_and_std(results: list[dict]) -> list[dict]:
    """Each (variant, normalisation)'s mean and standard deviation over its seeds."""
    import numpy as np

    groups: dict[tuple[str, str], list[dict]] = {}
    for row in results:
        groups.setdefault((row["variant"], row["weight_normalization"]), []).append(row)
    summary = []
    for (variant, normalization), rows in groups.items():
        entry = {"variant": variant, "weight_normalization": normalization, "seeds": [row["seed"] for row in rows]}
        for metric in ("whole_image", "changed_cells", "all_cells"):
            values = np.array([row[metric] for row in rows], dtype=float)
            entry[metric] = {"mean": round(float(values.mean()), 4), "std": round(float(values.std(ddof=1)), 4)}
        summary.append(entry)
    return summary


if __name__ == "__main__":
    main()
