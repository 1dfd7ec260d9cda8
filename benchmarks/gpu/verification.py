"""Best-of-N verification at the real Chameleon-7B shape through ``pipeline("forward-dynamics")`` (for an H100).

Builds the Chameleon-7B shape with RANDOM weights in bf16 on the GPU and Meta's 512 px VQGAN, exactly as
``backbone.py`` in this folder does (same vocabulary layout, same ``ChameleonBackbone``), and runs the wm-hub
pipelines on it. The verifier is an inverse-dynamics pipeline over the same backbone object: a separate IDM of the
same shape costs the same time per forward (the paper's IDM and FDM are both Anole-7B fine-tunes), and sharing it
halves the build time and the memory.

Measured (each after a warm-up with the same batch and total length, which for the static cache holds
``generate``'s automatic ``torch.compile``; the warm-up runs on a small-grid view of the same model, as in
``backbone.py``):

- ``one_sample_s``: ``pipe(image, action)``: VQ-encode the source, 1024 image codes + ``<eoss>``, VQ-decode. Goal
  on an H100: <= 6 s per 1024-token image (anchors: 34 s with plain ``generate``, 10.3 ms/step static cache).
- ``best_of_N_s``: ``pipe(image, action, num_candidates=N, verifier=idm)``: ONE generation of N candidates sharing
  the prompt, N decodes, the IDM re-encoding them and scoring all N (source + candidate + action, ~2.1k tokens each)
  in ONE forward. Goal: ``best_of_N / one_sample <= 1.5``.
- the parts of best-of-N: ``generation_N_s`` (``generate_images`` alone), ``vq_decode_N_s``, ``scoring_N_s``
  (``idm.score`` of the N candidates; anchor 0.59 s for 8 rows);
- with ``--sequential``: N single-sample calls one after the other (costs N x ``one_sample``: off by default).

Results go to ``$OUT/verification_gpu.json`` when ``OUT`` is set, else ``benchmarks/results/``; the file is rewritten
after every measurement, so a run cut short keeps what it measured. ``--tiny`` runs the same code on the CPU with
the tiny shape of ``backbone.py`` (smoke test, ~1 minute).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

# Before torch loads OpenMP: spinning OpenMP threads slow the --tiny CPU run badly on a loaded machine (see
# bench_backbone.py); on the GPU machine only light host work (PIL preprocessing) uses CPU threads. An explicit
# OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from backbone import (  # noqa: E402
    ACTION,
    ANCHOR_DECODE_MS,
    REAL_7B,
    REPO_ROOT,
    SEED,
    TINY,
    build_backbones,
    machine_info,
    padded_prompt,
    seconds,
    synthetic_images,
    write_json,
)
from transformers import pipeline  # noqa: E402

import wm_hub  # noqa: E402, F401  (registers the pipeline tasks)
from wm_hub.inference.generation import generate_images  # noqa: E402
from wm_hub.models.chameleon import ChameleonBackbone  # noqa: E402

GOAL_ONE_SAMPLE_S = 6.0
GOAL_BEST_OF_N_RATIO = 1.5
ANCHOR_PLAIN_GENERATE_S = 34.0
ANCHOR_SCORING_8_S = 0.59


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="Tiny shape on the CPU (smoke test).")
    parser.add_argument("--candidates", type=int, default=8, help="N of best-of-N.")
    parser.add_argument("--cache", choices=["static", "dynamic"], default="static", help="KV cache of generation.")
    parser.add_argument("--repeats", type=int, default=1, help="Timed calls per case (the median is reported).")
    parser.add_argument("--sequential", action="store_true", help="Also time N single samples in a row.")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: $OUT or benchmarks/results).")
    return parser.parse_args()


def default_out(tiny: bool) -> Path:
    name = "verification_gpu_tiny.json" if tiny else "verification_gpu.json"
    if os.environ.get("OUT"):
        return Path(os.environ["OUT"]) / name
    return REPO_ROOT / "benchmarks" / "results" / name


def median_of(fn, device: torch.device, repeats: int) -> float:
    times = sorted(seconds(fn, device) for _ in range(repeats))
    return times[len(times) // 2]


def warm_up(measured: ChameleonBackbone, warmup: ChameleonBackbone, prompt_len: int, batch: int, cache: Any) -> float:
    """A generation at the measured batch and total length on the small-grid view (compiles the static cache)."""
    total_len = prompt_len + len(measured.generation_layout())
    tokens = padded_prompt(warmup, total_len - len(warmup.generation_layout()))
    started = time.perf_counter()
    generate_images(warmup, [tokens], num_candidates=batch, seed=SEED, cache_implementation=cache, decode=False)
    return time.perf_counter() - started


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    out = args.out or default_out(args.tiny)
    shape = TINY if args.tiny else REAL_7B
    device = torch.device("cpu" if args.tiny else "cuda")
    measured, warmup = build_backbones(shape, device, torch.bfloat16)
    cache = None if args.cache == "dynamic" else args.cache
    n = args.candidates
    fdm = pipeline("forward-dynamics", model=measured, device=device)
    idm = pipeline("inverse-dynamics", model=measured, device=device)
    source = synthetic_images(1)[0]
    source_ids = measured.encode_images([source])[0]
    prompt = measured.build_fdm_sequence(source_ids, ACTION).input_ids
    sampling = {"seed": SEED, "cache_implementation": cache}
    payload: dict[str, Any] = {
        "machine": machine_info(device),
        "shape": {
            "name": shape.name,
            "lm_parameters": sum(p.numel() for p in measured.model.parameters()),
            "image_seq_len": measured.image_seq_len,
            "generated_tokens_per_image": len(measured.generation_layout()),
            "fdm_prompt_len": len(prompt),
            "idm_sequence_len": len(measured.build_idm_sequence(source_ids, source_ids, ACTION).input_ids),
            "lm_dtype": str(measured.model.dtype),
        },
        "settings": {"candidates": n, "cache": args.cache, "repeats": args.repeats, "action": ACTION},
        "goals": {"one_sample_s": GOAL_ONE_SAMPLE_S, f"best_of_{n}_over_one_sample": GOAL_BEST_OF_N_RATIO},
        "anchors": {
            "plain_generate_one_image_s": ANCHOR_PLAIN_GENERATE_S,
            "decode_ms_per_step": {f"{c}_b{b}": ms for (c, b), ms in ANCHOR_DECODE_MS.items()},
            "scoring_8_rows_s": ANCHOR_SCORING_8_S,
        },
        "build_s": time.perf_counter() - started,
        "results": {},
    }
    results = payload["results"]
    print(f"built {shape.name} on {device} in {payload['build_s']:.1f} s; FDM prompt {len(prompt)} tokens", flush=True)

    def record(name: str, value: float) -> None:
        results[name] = value
        payload["runtime_s"] = time.perf_counter() - started
        write_json(out, payload)
        print(f"  {name:<28} {value:8.3f}", flush=True)

    record("warmup_batch_1_s", warm_up(measured, warmup, len(prompt), 1, cache))
    record("one_sample_s", median_of(lambda: fdm(source, ACTION, **sampling), device, args.repeats))
    record(f"warmup_batch_{n}_s", warm_up(measured, warmup, len(prompt), n, cache))
    candidates = fdm(source, ACTION, num_candidates=n, return_candidates=True, **sampling)["candidates"]
    record(f"warmup_scoring_{n}_s", seconds(lambda: idm.score(source, candidates, ACTION), device))
    best = median_of(lambda: fdm(source, ACTION, num_candidates=n, verifier=idm, **sampling), device, args.repeats)
    record(f"best_of_{n}_s", best)
    generation = lambda: generate_images(measured, [prompt], n, decode=False, **sampling)  # noqa: E731
    record(f"generation_{n}_s", median_of(generation, device, args.repeats))
    ids = generate_images(measured, [prompt], n, decode=False, **sampling).image_ids[0]
    record(f"vq_decode_{n}_s", median_of(lambda: measured.decode_images(ids), device, args.repeats))
    record(f"scoring_{n}_s", median_of(lambda: idm.score(source, candidates, ACTION), device, args.repeats))
    if args.sequential:
        record(
            f"{n}_sequential_samples_s", seconds(lambda: [fdm(source, ACTION, **sampling) for _ in range(n)], device)
        )
    one = results["one_sample_s"]
    steps = len(measured.generation_layout())
    payload["ratios"] = {
        f"best_of_{n}_over_one_sample": best / one,
        f"generation_{n}_over_one_sample": results[f"generation_{n}_s"] / one,
        f"scoring_share_of_best_of_{n}": results[f"scoring_{n}_s"] / best,
        "one_sample_ms_per_generated_token": one / steps * 1000,
    }
    if args.sequential:
        payload["ratios"][f"{n}_sequential_samples_over_best_of_{n}"] = results[f"{n}_sequential_samples_s"] / best
    payload["goals_met"] = {
        "one_sample_s": one <= GOAL_ONE_SAMPLE_S,
        f"best_of_{n}_over_one_sample": best / one <= GOAL_BEST_OF_N_RATIO,
    }
    payload["runtime_s"] = time.perf_counter() - started
    write_json(out, payload)
    print()
    for name, value in payload["ratios"].items():
        print(f"  {name:<40} {value:8.3f}")
    if not args.tiny:
        print(f"goals: one sample <= {GOAL_ONE_SAMPLE_S} s, best-of-{n} <= {GOAL_BEST_OF_N_RATIO}x one sample:")
        print(f"  {payload['goals_met']}")
    print(f"\ntotal runtime {payload['runtime_s']:.1f} s; wrote {out}")


if __name__ == "__main__":
    main()
