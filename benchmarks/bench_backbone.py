"""CPU benchmark of the tiny backbones: VQ encode/decode throughput and sampling speed through ``generate_images``.

Runs every requested tiny preset (``wm_hub.models.tiny``; an arch without a preset is skipped with a note) and
measures, each as the median of a few repeats after a warm-up (the cases of a group are timed round-robin, so that
interference from other processes hits them alike):

- encode: ``Backbone.encode_images`` on a batch of real images (AURORA-BENCH-mini when present, else generated),
  and the share of it spent in ``Backbone.preprocess`` (PIL resizing and scaling);
- decode: ``Backbone.decode_images`` of that batch's token ids;
- sampling: ``generate_images`` of one FDM prompt with 1 and 4 candidates, dynamic and static KV cache, and with
  one thread (tokens/s counts every generated layout token of every candidate).

Absolute CPU numbers depend on the machine and on whatever else runs on it; only the ratios printed within one run
are meant to be compared. ``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` here (see below). Usage::

    .venv/bin/python benchmarks/bench_backbone.py [--archs chameleon liquid emu3] [--threads N]
        [--out benchmarks/results/backbone_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Set before torch loads OpenMP. With the default (spinning) wait policy, 2 torch threads on a 2-core machine where
# another process keeps one core busy ran generate_images 30-70x slower than 1 thread; PASSIVE removes that.
# An explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from PIL import Image  # noqa: E402

from wm_hub.inference.generation import generate_images  # noqa: E402
from wm_hub.models.base import Backbone  # noqa: E402
from wm_hub.models.tiny import TINY_PRESETS, build_tiny_backbone  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "aurora-bench-mini"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "backbone_cpu.json"
ACTION = "Move the red cube to the left of the cup."
SEED = 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["chameleon", "liquid", "emu3"], help="Tiny presets to run.")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads (default: all).")
    parser.add_argument("--batch", type=int, default=8, help="Images per encode/decode call.")
    parser.add_argument("--candidates", type=int, default=4, help="Candidates per prompt of the batched sampling.")
    parser.add_argument("--repeats", type=int, default=5, help="Timed rounds (medians are reported).")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="AURORA-BENCH-mini folder (test.json).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file.")
    return parser.parse_args()


def interleaved_timings(cases: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict[str, float]]:
    """Time several cases in round-robin order after one warm-up call each.

    Interleaving spreads interference from other processes over all cases alike, which keeps the ratios between
    them meaningful on a shared machine.

    Returns:
        Per case: median, min and max wall time in seconds, and every round's (``samples_s``, in round order, for
        ratios paired within a round).
    """
    for fn in cases.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {
        name: {"median_s": statistics.median(values), "min_s": min(values), "max_s": max(values), "samples_s": values}
        for name, values in times.items()
    }


def paired_ratio(numerators: list[float], denominators: list[float]) -> float:
    """Median over rounds of ``numerators[i] / denominators[i]``: two cases timed in the same round share that
    round's machine speed, so their ratio cancels most of a shared machine's slow periods."""
    return statistics.median(top / bottom for top, bottom in zip(numerators, denominators, strict=True))


def single_threaded(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` run with one torch thread (the previous thread count is restored afterwards)."""

    def run() -> Any:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn()
        finally:
            torch.set_num_threads(threads)

    return run


def load_images(data_dir: Path, count: int) -> tuple[list[Image.Image], str]:
    """``count`` distinct input images of AURORA-BENCH-mini (cycled if fewer), else generated ones.

    Returns:
        The RGB images and a description of where they came from.
    """
    index = data_dir / "test.json"
    if index.is_file():
        paths = list(dict.fromkeys(data_dir / row["input"] for row in json.loads(index.read_text())))
        paths = [path for path in paths if path.is_file()]
        if paths:
            # One image per task first (the rows are grouped by task), so sizes and formats vary.
            picked = list(dict.fromkeys(paths[::6] + paths))[:count]
            images = [Image.open(path).convert("RGB") for path in picked]
            return (images * count)[:count], f"{data_dir} ({len(set(picked))} files)"
    return synthetic_images(count), "generated (AURORA-BENCH-mini not found)"


def synthetic_images(count: int, size: tuple[int, int] = (640, 480)) -> list[Image.Image]:
    """Smooth colour gradients plus noise, so resizing and the encoder see non-trivial content."""
    rng = np.random.default_rng(SEED)
    width, height = size
    ramp_x = np.linspace(0, 255, width)[None, :, None]
    ramp_y = np.linspace(0, 255, height)[:, None, None]
    images = []
    for _ in range(count):
        mix = rng.uniform(0, 1, size=(1, 1, 3))
        base = mix * ramp_x + (1 - mix) * ramp_y + rng.normal(0, 20, size=(height, width, 3))
        images.append(Image.fromarray(base.clip(0, 255).astype(np.uint8), mode="RGB"))
    return images


def bench_images(backbone: Backbone, images: list[Image.Image], repeats: int) -> dict[str, Any]:
    """Encode/decode throughput (images/s) and the preprocessing share of the encode time."""
    ids = backbone.encode_images(images)
    timings = interleaved_timings(
        {
            "encode": lambda: backbone.encode_images(images),
            "preprocess": lambda: backbone.preprocess(images),
            "decode": lambda: backbone.decode_images(ids),
        },
        repeats,
    )
    per_s = {name: len(images) / timing["median_s"] for name, timing in timings.items()}
    return {
        "encode_images_per_s": per_s["encode"],
        "preprocess_images_per_s": per_s["preprocess"],
        "decode_images_per_s": per_s["decode"],
        "preprocess_share_of_encode": timings["preprocess"]["median_s"] / timings["encode"]["median_s"],
        "timings": timings,
    }


def bench_sampling(backbone: Backbone, prompt: list[int], candidates: int, repeats: int) -> dict[str, Any]:
    """Tokens/s of ``generate_images`` (no VQ decoding) at batch 1 and ``candidates``, per cache and thread count.

    Tokens/s counts every generated layout token (image codes and forced layout tokens) of every candidate.
    """
    steps = len(backbone.generation_layout())

    def sample(num_candidates: int, cache: str | None) -> Callable[[], Any]:
        return lambda: generate_images(
            backbone, [prompt], num_candidates=num_candidates, seed=SEED, cache_implementation=cache, decode=False
        )

    cases = {
        "batch1_dynamic": (1, sample(1, None)),
        f"batch{candidates}_dynamic": (candidates, sample(candidates, None)),
        f"batch{candidates}_static": (candidates, sample(candidates, "static")),
        f"batch{candidates}_dynamic_1thread": (candidates, single_threaded(sample(candidates, None))),
    }
    timings = interleaved_timings({name: fn for name, (_, fn) in cases.items()}, repeats)
    return {
        name: {"steps": steps, "tokens_per_s": batch * steps / timings[name]["median_s"], **timings[name]}
        for name, (batch, _) in cases.items()
    }


def fdm_prompt(backbone: Backbone) -> list[int]:
    """An FDM generation prompt around a random source image."""
    generator = torch.Generator().manual_seed(SEED)
    num_codes = len(backbone.image_token_ids)
    source = backbone.codes_to_ids(torch.randint(0, num_codes, (backbone.image_seq_len,), generator=generator))
    return backbone.build_fdm_sequence(source, ACTION).input_ids


def bench_arch(arch: str, images: list[Image.Image], args: argparse.Namespace) -> dict[str, Any]:
    """All measurements of one tiny preset."""
    backbone = build_tiny_backbone(arch)
    prompt = fdm_prompt(backbone)
    return {
        "image_size": backbone.config.image_size,
        "image_seq_len": backbone.image_seq_len,
        "prompt_len": len(prompt),
        "lm_parameters": sum(p.numel() for p in backbone.model.parameters()),
        "images": bench_images(backbone, images, args.repeats),
        "sampling": bench_sampling(backbone, prompt, args.candidates, args.repeats),
    }


def arch_ratios(result: dict[str, Any], candidates: int, threads: int) -> dict[str, float]:
    """Ratios within one arch's run (the only CPU figures worth comparing)."""
    sampling = result["sampling"]
    batched = sampling[f"batch{candidates}_dynamic"]["tokens_per_s"]
    return {
        f"sampling_tokens_per_s_batch{candidates}_over_batch1": batched / sampling["batch1_dynamic"]["tokens_per_s"],
        "sampling_tokens_per_s_static_over_dynamic": sampling[f"batch{candidates}_static"]["tokens_per_s"] / batched,
        f"sampling_tokens_per_s_{threads}threads_over_1thread": batched
        / sampling[f"batch{candidates}_dynamic_1thread"]["tokens_per_s"],
        "decode_over_encode_images_per_s": result["images"]["decode_images_per_s"]
        / result["images"]["encode_images_per_s"],
        "preprocess_share_of_encode": result["images"]["preprocess_share_of_encode"],
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically: a temporary file in the same folder, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def machine_info(threads: int) -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
        "load_average_at_start": os.getloadavg(),
    }


def worst_spread(result: dict[str, Any]) -> float:
    """The largest max/min ratio of any timed case of one arch: how much interference the run saw."""
    timings = [*result["images"]["timings"].values(), *result["sampling"].values()]
    return max(timing["max_s"] / timing["min_s"] for timing in timings)


def print_report(results: dict[str, Any], ratios: dict[str, dict[str, float]], candidates: int) -> None:
    header = (
        f"{'arch':<10} {'enc img/s':>10} {'dec img/s':>10} {'tok/s b1':>9} {f'tok/s b{candidates}':>9} "
        f"{'static':>9} {'1 thread':>9} {'spread':>7}"
    )
    print(header)
    print("-" * len(header))
    for arch, result in results.items():
        sampling = result["sampling"]
        row = [
            result["images"]["encode_images_per_s"],
            result["images"]["decode_images_per_s"],
            sampling["batch1_dynamic"]["tokens_per_s"],
            sampling[f"batch{candidates}_dynamic"]["tokens_per_s"],
            sampling[f"batch{candidates}_static"]["tokens_per_s"],
            sampling[f"batch{candidates}_dynamic_1thread"]["tokens_per_s"],
        ]
        cells = " ".join(f"{value:>{10 if i < 2 else 9}.1f}" for i, value in enumerate(row))
        print(f"{arch:<10} {cells} {worst_spread(result):>7.2f}")
    print("spread: the largest max/min time ratio over this arch's repeats (1.0 = no interference).")
    print("\nRatios (same run, same machine, interleaved repeats):")
    for arch, values in ratios.items():
        for name, value in values.items():
            print(f"  {arch:<10} {name:<52} {value:6.2f}")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    info = machine_info(args.threads)
    images, image_source = load_images(args.data, args.batch)
    results, skipped = {}, []
    for arch in args.archs:
        if arch not in TINY_PRESETS:
            print(f"note: no tiny preset for {arch!r} yet (have {sorted(TINY_PRESETS)}); skipped")
            skipped.append(arch)
            continue
        print(f"running {arch}...", flush=True)
        results[arch] = bench_arch(arch, images, args)
    ratios = {arch: arch_ratios(result, args.candidates, args.threads) for arch, result in results.items()}
    print()
    print_report(results, ratios, args.candidates)
    info["load_average_at_end"] = os.getloadavg()
    runtime = time.perf_counter() - started
    print(f"\ntotal runtime {runtime:.1f} s; images: {image_source}")
    write_json(
        args.out,
        {
            "note": "CPU figures: compare ratios within this run only, not absolute numbers across machines.",
            "machine": info,
            "settings": {
                "batch": args.batch,
                "candidates": args.candidates,
                "repeats": args.repeats,
                "images": image_source,
                "action": ACTION,
                "seed": SEED,
            },
            "skipped_archs": skipped,
            "results": results,
            "ratios": ratios,
            "runtime_s": runtime,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
