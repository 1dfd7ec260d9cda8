"""The demo's IDM stage from a sandbox base, with recipe changes: where its exact match is lost, by action kind.

Each run fine-tunes the IDM with the demo recipe (``recipes/sandbox/demo-idm.yaml``, through the same launcher as
``wm-hub demo``) from ``--base``, with the recipe fields given by ``--set`` replaced, and measures greedy exact match:

- on the first ``--num-eval`` held-out triplets of the sandbox world (the demo's figure is the first 200), per
  action kind;
- on the action transitions of ``--num-videos`` unlabelled sandbox videos: the pictures at consecutive key frames
  (``ShapesVideo.pairs()``, one whole action each: where ``wm-hub keyframes`` lands on them) against the hidden
  action (``ShapesVideo.true_action``), per kind. The videos hold only moves and swaps.

Results are merged into ``--out`` under ``--name`` (a run of the same name is replaced). The demo recipe's IDM
reasons first (``idm_rationale``); the runs before ``rationale`` were made with it writing the action alone (the
recipe without its ``idm_instruction`` and ``idm_rationale`` lines, as ``action_alone`` sets them)::

    python benchmarks/bench_sandbox_idm.py --name rationale --out benchmarks/results/sandbox_idm_cpu.json
    python benchmarks/bench_sandbox_idm.py --name rationale_steps_1200 --set max_steps=1200 \
        --out benchmarks/results/sandbox_idm_cpu.json
    python benchmarks/bench_sandbox_idm.py --name action_alone --set idm_rationale=false idm_instruction=null \
        --out benchmarks/results/sandbox_idm_cpu.json
    python benchmarks/bench_sandbox_idm.py --name differences_prompt \
        --set 'idm_instruction="What differs between the pictures?"' --out benchmarks/results/sandbox_idm_cpu.json
    python benchmarks/bench_sandbox_idm.py --name batch12_1333_steps \
        --set per_device_train_batch_size=12 max_steps=1333 --out benchmarks/results/sandbox_idm_cpu.json
    python benchmarks/bench_sandbox_idm.py --name steps_1400 --set max_steps=1400 \
        --out benchmarks/results/sandbox_idm_cpu.json
    python benchmarks/bench_sandbox_idm.py --name beta2_095 --set adam_beta2=0.95 \
        --out benchmarks/results/sandbox_idm_cpu.json
    python benchmarks/bench_sandbox_idm.py --name wsd_decay300 --set lr_scheduler_type=warmup_stable_decay \
        'lr_scheduler_kwargs={num_decay_steps: 300}' --out benchmarks/results/sandbox_idm_cpu.json
    python benchmarks/bench_sandbox_idm.py --name no_clip --set max_grad_norm=1000.0 \
        --out benchmarks/results/sandbox_idm_cpu.json
    python benchmarks/bench_sandbox_idm.py --name deep_base --base outputs/sandbox-base-deep \
        --out benchmarks/results/sandbox_idm_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

from wm_hub.atomic_io import write_json
from wm_hub.data.shapes_world import ShapesWorld
from wm_hub.inference.actions import generate_actions
from wm_hub.models.loading import load_backbone
from wm_hub.sandbox.finetune import demo_recipe, fine_tune
from wm_hub.sandbox.world import SANDBOX_BASE, SANDBOX_VIDEO_WORLD, SANDBOX_WORLD

BATCH = 200


def parse_set(items: list[str]) -> dict:
    """``key=value`` pairs, each value read as YAML (``max_steps=1500``, ``sources=[...]``)."""
    fields = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --set wants key=value, got {item!r}")
        fields[key] = yaml.safe_load(value)
    return fields


def greedy_labels(idm, pairs: list) -> list[str]:
    """The IDM's greedy actions for ``(source, target)`` pairs, in batches."""
    labels = []
    for start in range(0, len(pairs), BATCH):
        labels += generate_actions(idm, pairs[start : start + BATCH], max_new_tokens=24)
    return labels


def exact_match_by_kind(labels: list[str], truths: list[str], kinds: list[str]) -> dict:
    """Exact match of ``labels`` against ``truths``, overall and per action kind (with the first wrong ones)."""
    right, seen = Counter(), Counter()
    for label, truth, kind in zip(labels, truths, kinds):
        seen[kind] += 1
        right[kind] += label == truth
    return {
        "num": len(labels),
        "exact_match": sum(right.values()) / len(labels),
        "by_kind": {kind: {"num": seen[kind], "exact_match": right[kind] / seen[kind]} for kind in sorted(seen)},
        "errors": [{"idm": a, "truth": t} for a, t in zip(labels, truths) if a != t][:12],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="name of this run in --out")
    parser.add_argument("--base", default=str(SANDBOX_BASE), help="the sandbox base to fine-tune")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="recipe fields to replace (YAML)")
    parser.add_argument("--num-eval", type=int, default=400, help="held-out triplets (the demo's figure: first 200)")
    parser.add_argument("--num-videos", type=int, default=400, help="unlabelled videos whose transitions are read")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    overrides = parse_set(args.set)
    recipe = yaml.safe_load(demo_recipe("idm").read_text())
    world, video_world = ShapesWorld(SANDBOX_WORLD), ShapesWorld(SANDBOX_VIDEO_WORLD)
    triplets = [world.triplet("test", index) for index in range(args.num_eval)]
    videos = [video_world.video("unlabelled", index) for index in range(args.num_videos)]
    transitions = [(video, i, j) for video in videos for i, j in video.pairs()]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        folder = fine_tune("idm", args.base, Path(tmp) / "idm", **overrides)
        seconds = time.perf_counter() - start
        trained = json.loads((folder / "all_results.json").read_text())
        idm = load_backbone(str(folder))
        labels = greedy_labels(idm, [(t.source, t.target) for t in triplets])
        video_labels = greedy_labels(idm, [(v.frames[i], v.frames[j]) for v, i, j in transitions])
    truths, kinds = [t.action.text for t in triplets], [t.action.kind for t in triplets]
    held_out = exact_match_by_kind(labels, truths, kinds)
    video = exact_match_by_kind(
        video_labels,
        [v.true_action(i, j) for v, i, j in transitions],
        [v.true_action_class(i, j) for v, i, j in transitions],
    )
    demo_figure = exact_match_by_kind(labels[:200], truths[:200], kinds[:200])["exact_match"]
    steps = overrides.get("max_steps", recipe["max_steps"])
    run = {
        "base": args.base,
        "recipe": "recipes/sandbox/demo-idm.yaml",
        "overrides": overrides,
        "max_steps": steps,
        "wall_seconds": seconds,
        "train_seconds_per_step": trained["train_runtime"] / steps,
        "held_out_first_200": demo_figure,
        "held_out": held_out,
        "video_transitions": video,
    }
    record = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": {}}
    record["runs"][args.name] = run
    record["load_average_at_end"] = os.getloadavg()
    write_json(args.out, record)
    summary = {kind: round(value["exact_match"], 3) for kind, value in held_out["by_kind"].items()}
    print(
        f"{args.name}: held-out {held_out['exact_match']:.3f} (first 200: {demo_figure:.3f}) {summary}; "
        f"video transitions {video['exact_match']:.3f}; {seconds:.0f} s"
    )


if __name__ == "__main__":
    main()
