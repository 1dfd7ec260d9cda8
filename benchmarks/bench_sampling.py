"""CPU A/B of how image codes are sampled: ``GumbelMaxSampler`` + greedy ``generate`` (what ``generate_images``
does) against ``generate(do_sample=True)`` (``torch.multinomial``), through ``pipeline("forward-dynamics")``.

For each tiny family (random weights, the FDM also as the shared-VQ verifier, as in ``bench_verification.py``), one
process times ``one_sample`` and ``best_of_N_shared_vq`` with either sampler, round by round (both samplers in every
round), and reports the medians and the per-round paired ratio best-of-N / one sample. The multinomial arm swaps
the sampler and the generation config of :mod:`wm_hub.inference.generation` for the duration of its calls: the
processors, the prompt, the cache and the pipeline are the same. ``torch.multinomial`` draws one double-precision
exponential variable per vocabulary entry and row, one at a time, which makes it the cost that grows fastest with
the N rows of best-of-N on a CPU. Usage::

    .venv/bin/python benchmarks/bench_sampling.py [--archs chameleon liquid emu3] [--candidates 8] [--repeats 15]
        [--threads 1] [--out benchmarks/results/sampling_cpu.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (see bench_backbone.py)

import torch  # noqa: E402
from bench_backbone import machine_info, paired_ratio, write_json  # noqa: E402
from transformers import GenerationConfig, LogitsProcessor, pipeline  # noqa: E402

import wm_hub  # noqa: E402, F401  (registers the pipeline tasks)
from wm_hub.data.shapes_world import ShapesWorld, WorldConfig  # noqa: E402
from wm_hub.inference import generation  # noqa: E402
from wm_hub.models.tiny import TinySpec, build_tiny_backbone  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "sampling_cpu.json"
SEED = 0


class _Unchanged(LogitsProcessor):
    """Stands in for ``GumbelMaxSampler`` in the multinomial arm: the scores go to ``torch.multinomial`` as warped."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return scores


def _multinomial_config(**settings: Any) -> GenerationConfig:
    """``generate_images``' generation config with ``do_sample=True`` and neutral warpers (its own apply)."""
    return GenerationConfig(**{**settings, "do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0})


@contextmanager
def multinomial_sampling() -> Iterator[None]:
    """``generate_images`` samples with ``generate(do_sample=True)`` inside this block."""
    saved = generation.GumbelMaxSampler, generation.GenerationConfig
    generation.GumbelMaxSampler, generation.GenerationConfig = _Unchanged, _multinomial_config
    try:
        yield
    finally:
        generation.GumbelMaxSampler, generation.GenerationConfig = saved


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["chameleon", "liquid", "emu3"], help="Tiny families to run.")
    parser.add_argument("--candidates", type=int, default=8, help="N of best-of-N.")
    parser.add_argument("--repeats", type=int, default=15, help="Timed rounds (medians are reported).")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file.")
    return parser.parse_args()


def bench_arch(arch: str, candidates: int, repeats: int) -> dict[str, Any]:
    """Medians (s) of one sample and best-of-N per sampler, and the paired ratios."""
    backbone = build_tiny_backbone(arch, TinySpec(seed=0))
    fdm = pipeline("forward-dynamics", model=backbone, device="cpu")
    verifier = pipeline("inverse-dynamics", model=backbone, device="cpu")
    example = ShapesWorld(WorldConfig(image_size=backbone.config.image_size)).triplet("test", 0)
    source, action = example.source, example.action.text
    calls: dict[str, Callable[[], Any]] = {
        "one_sample": lambda: fdm(source, action, seed=SEED),
        f"best_of_{candidates}_shared_vq": lambda: fdm(
            source, action, num_candidates=candidates, verifier=verifier, seed=SEED
        ),
    }
    arms = {"gumbel_max": nullcontext, "multinomial": multinomial_sampling}
    times: dict[str, dict[str, list[float]]] = {arm: {name: [] for name in calls} for arm in arms}
    for round_index in range(repeats + 1):  # round 0 warms up
        for arm, context in arms.items():
            with context():
                for name, call in calls.items():
                    start = time.perf_counter()
                    call()
                    if round_index:
                        times[arm][name].append(time.perf_counter() - start)
    best = f"best_of_{candidates}_shared_vq"
    return {
        arm: {
            **{f"{name}_median_s": statistics.median(values) for name, values in arm_times.items()},
            f"{best}_over_one_sample_paired": paired_ratio(arm_times[best], arm_times["one_sample"]),
        }
        for arm, arm_times in times.items()
    }


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    results = {}
    for arch in args.archs:
        print(f"running {arch}...", flush=True)
        results[arch] = bench_arch(arch, args.candidates, args.repeats)
        for arm, figures in results[arch].items():
            print(f"  {arm:<12} " + "  ".join(f"{name} {value:.4f}" for name, value in figures.items()))
    write_json(
        args.out,
        {
            "note": "CPU figures with random tiny models: compare the two samplers within this run only.",
            "machine": {**machine_info(args.threads), "load_average_at_end": os.getloadavg()},
            "settings": {"candidates": args.candidates, "repeats": args.repeats, "seed": SEED},
            "results": results,
            "runtime_s": time.perf_counter() - started,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
