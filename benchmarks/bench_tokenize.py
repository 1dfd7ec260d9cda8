"""CPU benchmark of pre-tokenisation: triplets/s through ``pretokenize`` with a tiny backbone, and the cache hit.

For each tiny preset: build a Parquet file of triplets from real AURORA-BENCH images (generated images when the
samples are absent), load it with ``datasets`` (file-backed, so ``map`` caches), then time

- ``pretokenize`` at ``batch_size`` 1 and 16 (fresh cache each time): rows/s, and the batching ratio;
- a second ``pretokenize`` call with the same inputs: served from the fingerprinted cache (time ratio vs compute);
- the IDM's sequences after the FDM's, from the images the FDM run encoded (``encode_triplets`` is cached apart from
  the task), against the IDM alone on a fresh cache: what the demo saves on its second fine-tune.

Only ratios within one run are meaningful on CPU. Usage::

    .venv/bin/python benchmarks/bench_tokenize.py [--archs chameleon liquid emu3] [--rows 96]
        [--out benchmarks/results/tokenize_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_backbone.py: spinning OpenMP threads distort timings

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from wm_hub.data.schema import TRIPLET_FEATURES, make_triplet  # noqa: E402
from wm_hub.models.tiny import build_tiny_backbone  # noqa: E402
from wm_hub.training.pretokenize import PretokenizeConfig, pretokenize  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = REPO_ROOT.parent / "shared" / "data" / "aurora-bench-mini" / "data"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "tokenize_cpu.json"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["chameleon", "liquid", "emu3"], help="Tiny presets to run.")
    parser.add_argument("--rows", type=int, default=96, help="Triplets to pre-tokenise.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file.")
    return parser.parse_args()


def source_images(count: int) -> tuple[list[Image.Image], str]:
    """Real AURORA-BENCH images (cycled) or generated noise images when they are absent."""
    paths = (
        sorted(DEFAULT_IMAGES.glob("*/images/**/*.png"))[:24] + sorted(DEFAULT_IMAGES.glob("*/images/**/*.jpg"))[:8]
    )
    if paths:
        images = [Image.open(path).convert("RGB") for path in paths]
        return [images[index % len(images)] for index in range(count)], f"{len(paths)} AURORA-BENCH-mini files"
    rng = np.random.default_rng(0)
    noise = [Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)) for _ in range(count)]
    return noise, "generated"


def write_triplets(path: Path, rows: int) -> str:
    images, origin = source_images(rows + 1)
    triplets = [make_triplet(str(i), images[i], images[i + 1], f"action number {i}", "bench") for i in range(rows)]
    datasets.Dataset.from_list(triplets, features=TRIPLET_FEATURES).to_parquet(path)
    return origin


def timed_pretokenize(parquet: Path, cache: Path, backbone, config: PretokenizeConfig) -> tuple[float, Any]:
    """Load the triplets (file-backed, cache in ``cache``) and pre-tokenise them; wall time and result."""
    start = time.perf_counter()
    triplets = datasets.load_dataset("parquet", data_files=str(parquet), split="train", cache_dir=str(cache))
    result = pretokenize(triplets, backbone, config)
    return time.perf_counter() - start, result


def bench_arch(arch: str, parquet: Path, rows: int, work: Path) -> dict[str, Any]:
    backbone = build_tiny_backbone(arch)
    result: dict[str, Any] = {}
    for batch_size in (1, 16):
        cache = work / f"{arch}-b{batch_size}"
        config = PretokenizeConfig(task="fdm", loss_weighting="l2", batch_size=batch_size)
        compute_s, first = timed_pretokenize(parquet, cache, backbone, config)
        hit_s, second = timed_pretokenize(parquet, cache, backbone, config)
        assert second["input_ids"] == first["input_ids"]
        result[f"batch_{batch_size}"] = {
            "compute_s": compute_s,
            "rows_per_s": rows / compute_s,
            "cache_hit_s": hit_s,
            "cache_hit_time_ratio": hit_s / compute_s,
            "tokens_per_row": sum(len(ids) for ids in first["input_ids"]) / rows,
        }
    result["batching_speedup"] = result["batch_16"]["rows_per_s"] / result["batch_1"]["rows_per_s"]
    idm = PretokenizeConfig(task="idm", loss_weighting="none", batch_size=16)
    shared_s, shared = timed_pretokenize(parquet, work / f"{arch}-b16", backbone, idm)
    fresh_s, fresh = timed_pretokenize(parquet, work / f"{arch}-idm", backbone, idm)
    assert shared["input_ids"] == fresh["input_ids"]
    result["second_task"] = {
        "from_shared_encoding_s": shared_s,
        "fresh_s": fresh_s,
        "time_ratio": shared_s / fresh_s,
    }
    return result


def main() -> None:
    args = parse_args()
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        parquet = work / "triplets.parquet"
        images = write_triplets(parquet, args.rows)
        results = {arch: bench_arch(arch, parquet, args.rows, work) for arch in args.archs}
    payload = {
        "note": "CPU figures: compare ratios within this run only.",
        "machine": {
            "torch": torch.__version__,
            "datasets": datasets.__version__,
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "settings": {"rows": args.rows, "images": images, "task": "fdm", "loss_weighting": "l2"},
        "results": results,
    }
    print(
        f"{'arch':<10} {'rows/s b1':>10} {'rows/s b16':>11} {'batching x':>11} {'cache hit / compute':>20} "
        f"{'IDM after FDM / IDM alone':>26}"
    )
    for arch, result in results.items():
        b1, b16 = result["batch_1"], result["batch_16"]
        print(
            f"{arch:<10} {b1['rows_per_s']:>10.1f} {b16['rows_per_s']:>11.1f} {result['batching_speedup']:>11.2f} "
            f"{b16['cache_hit_time_ratio']:>20.4f} {result['second_task']['time_ratio']:>26.4f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_name(args.out.name + ".tmp")
    tmp_out.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp_out, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
