"""Best-of-N with trained models: the demo's sandbox FDM and IDM verifier, against one sample, on held-out triplets.

``bench_verification.py`` times random tiny models, whose N candidates are all different pictures. Trained models
are often sure of a picture and sample it several times; the pipeline scores equal candidates of a prompt once.
This benchmark loads the FDM and IDM of a ``wm-hub demo`` output folder (``make demo``: they share the sandbox VQ,
so the verifier reads the sampled ids) and times, round-robin after a warm-up, on the first ``--num-eval`` held-out
triplets as one batch:

- ``one_sample``: ``fdm(sources, actions, seed=...)``;
- ``best_of_N``: ``fdm(..., num_candidates=N, verifier=idm)`` (equal candidates scored once);
- ``best_of_N_every_candidate``: the same with every candidate scored (the pipeline before it grouped them);

and reports the share of candidates equal to an earlier one of their prompt, and that both best-of-N variants pick
the same pictures. Usage::

    python benchmarks/bench_sandbox_verification.py --demo demo_out \
        --out benchmarks/results/sandbox_verification_cpu.json
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path
from unittest import mock

import torch
import transformers
from bench_backbone import interleaved_timings, write_json
from transformers import pipeline

import wm_hub  # noqa: F401  (registers the pipeline tasks)
from wm_hub.data.shapes_world import ShapesWorld
from wm_hub.inference import forward_dynamics
from wm_hub.sandbox.world import SANDBOX_WORLD

SEED = 0


def every_candidate(flat_ids: torch.Tensor, num_candidates: int) -> tuple[list[int], list[int]]:
    """Grouping that keeps every candidate apart (each is scored)."""
    indices = list(range(flat_ids.shape[0]))
    return indices, indices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, default=Path("demo_out"), help="a wm-hub demo output folder")
    parser.add_argument("--num-eval", type=int, default=100, help="held-out triplets, one batch")
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    for task in ("fdm", "idm"):
        if not (args.demo / task / "config.json").is_file():
            raise SystemExit(f"error: {args.demo / task} is not a trained model: run `make demo` (or wm-hub demo)")
    fdm = pipeline("forward-dynamics", model=str(args.demo / "fdm"))
    idm = pipeline("inverse-dynamics", model=str(args.demo / "idm"))
    world = ShapesWorld(SANDBOX_WORLD)
    triplets = [world.triplet("test", index) for index in range(args.num_eval)]
    sources, actions = [t.source for t in triplets], [t.action.text for t in triplets]
    n = args.candidates

    def best_of_n(**kwargs):
        return fdm(sources, actions, num_candidates=n, verifier=idm, seed=SEED, return_image_ids=True, **kwargs)

    def best_of_n_every_candidate():
        with mock.patch.object(forward_dynamics, "_distinct_per_prompt", every_candidate):
            return best_of_n()

    grouping = forward_dynamics._distinct_per_prompt
    counts = []  # (candidates, distinct ones) of each call, as the pipeline grouped them

    def counted(flat_ids: torch.Tensor, num_candidates: int) -> tuple[list[int], list[int]]:
        kept, where = grouping(flat_ids, num_candidates)
        counts.append((len(where), len(kept)))
        return kept, where

    with mock.patch.object(forward_dynamics, "_distinct_per_prompt", counted):
        grouped = best_of_n()
    separate = best_of_n_every_candidate()
    same_pictures = all(torch.equal(a["image_ids"], b["image_ids"]) for a, b in zip(grouped, separate))
    score_gap = max(abs(a["score"] - b["score"]) for a, b in zip(grouped, separate))
    [(total, distinct)] = counts
    timings = interleaved_timings(
        {
            "one_sample": lambda: fdm(sources, actions, seed=SEED),
            f"best_of_{n}": best_of_n,
            f"best_of_{n}_every_candidate": best_of_n_every_candidate,
        },
        args.repeats,
    )
    median = {name: timing["median_s"] for name, timing in timings.items()}
    record = {
        "note": "CPU figures: compare ratios within this run only.",
        "machine": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(),
            "load_average_at_end": os.getloadavg(),
        },
        "settings": {"demo": str(args.demo), "num_eval": args.num_eval, "candidates": n, "repeats": args.repeats},
        "repeated_candidate_share": (total - distinct) / total,
        "same_pictures_chosen": same_pictures,
        "max_score_difference": score_gap,
        "timings": timings,
        "ratios": {
            f"best_of_{n}_over_one_sample": median[f"best_of_{n}"] / median["one_sample"],
            f"best_of_{n}_every_candidate_over_one_sample": median[f"best_of_{n}_every_candidate"]
            / median["one_sample"],
            f"best_of_{n}_over_every_candidate": median[f"best_of_{n}"] / median[f"best_of_{n}_every_candidate"],
        },
    }
    write_json(args.out, record)
    print({key: record[key] for key in ("repeated_candidate_share", "same_pictures_chosen", "ratios")})


if __name__ == "__main__":
    main()
